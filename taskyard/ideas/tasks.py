"""The taskyard tasks an idea runs as: its planner (one per plan version) and one change task
per task of its plan. Their ids come from the idea and what they are, so a scheduler that runs
again (after a crash) finds the task it made, never a second one."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from taskyard.config import Settings
from taskyard.config.routes import reviewer_for
from taskyard.idea import Idea, IdeaTask
from taskyard.lifecycle import GATE_ORDER, workflow_id
from taskyard.models import Decision, Priority, RouteDecision, Task, TaskStatus
from taskyard.routing.job import change_spec
from taskyard.routing.spec import TaskSpec

PLAN_PROMPT, TASK_PROMPT = "_idea-plan", "_idea-task"
_PRIORITY = {"P0": Priority.P0, "P1": Priority.P1, "P2": Priority.P2, "P3": Priority.P3}


def task_id_of(idea_id: str, what: str) -> str:
    return hashlib.sha256(f"{idea_id}\0{what}".encode()).hexdigest()[:32]


def planner_schema(plan_schema: Mapping[str, Any]) -> dict[str, Any]:
    """What the planner answers: the plan, and one sentence about it."""
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["plan", "summary"],
        "properties": {"plan": dict(plan_schema), "summary": {"type": "string"}},
    }


def planner_task(
    idea: Idea,
    version: int,
    errors: list[str],
    settings: Settings,
    plan_schema: Mapping[str, Any],
    now: float,
) -> tuple[Task, RouteDecision]:
    """The planner of plan `version`, told the errors of the version before."""
    route = f"idea-plan-v{version}"
    agent = settings.ideas.planner_agent
    spec = TaskSpec(
        route=route,
        agent=agent,
        prompt=PLAN_PROMPT,
        repo={"full_name": idea.repo} if idea.repo else None,
        result_schema=planner_schema(plan_schema),
        idea={"id": idea.id, "role": "plan", "version": version, "errors": errors,
              "shape": idea.shape},
    )  # fmt: skip
    return _task(idea, f"plan-v{version}", route, agent, spec, now)


def change_task(
    idea: Idea,
    item: IdeaTask,
    head: str,
    settings: Settings,
    now: float,
    redo: int = 0,
    conflict: Mapping[str, Any] | None = None,
) -> tuple[Task, RouteDecision]:
    """The change task of plan task `item`, on the idea's branch at `head` (`redo` > 0: done
    again, its earlier change having conflicted as `conflict` says)."""
    from taskyard.ideas.integrate import idea_branch

    template = next((r for r in settings.routes if r.name == settings.ideas.route), None)
    agent = template.agent if template is not None else settings.ideas.planner_agent
    change = change_spec(template, settings, idea.repo) if template is not None else None
    if change is None:
        kinds = {name: a.kind for name, a in settings.agents.items()}
        own = settings.changes.for_repository(idea.repo)
        change = {
            "gates": [str(g) for g in GATE_ORDER],
            "reviewer": _reviewer(agent, kinds),
            "test_commands": list(own.test_commands),
            "max_revisions": settings.changes.max_revisions,
        }
    change = {**change, "mode": "branch"}  # its commit goes to its branch: `ideas.deliver`
    route = f"idea-task-{item.key}" + (f"-redo{redo}" if redo else "")
    spec = TaskSpec(
        route=route,
        agent=agent,
        prompt=TASK_PROMPT,
        repo={"full_name": idea.repo, "sha": head, "ref": idea_branch(idea.id)},
        change=change,
        idea={"id": idea.id, "role": "task", "key": item.key, "task": item.spec,
              "goal": idea.goal, "redo": redo, "conflict": dict(conflict or {})},
    )  # fmt: skip
    what = f"task-{item.key}" + (f"-redo{redo}" if redo else "")
    return _task(idea, what, route, agent, spec, now)


def _reviewer(agent: str, kinds: Mapping[str, str]) -> str | None:
    from taskyard.config.routes import RouteConfig

    probe = RouteConfig(name="probe", on=("taskyard:idea.*",), agent=agent)
    return reviewer_for(probe, kinds)


def _task(
    idea: Idea, what: str, route: str, agent: str, spec: TaskSpec, now: float
) -> tuple[Task, RouteDecision]:
    task_id = task_id_of(idea.id, what)
    priority = _PRIORITY.get(str(idea.shape.get("priority") or "P2"), Priority.P2)
    task = Task(
        id=task_id,
        event_id=idea.event_id,
        route=route,
        agent=agent,
        status=TaskStatus.QUEUED,
        priority=priority,
        created_at=now,
        updated_at=now,
        workflow_id=workflow_id(task_id),
        spec=spec.to_json(),
    )
    why = f"idea {idea.id}: {what}"
    return task, RouteDecision(idea.event_id, route, Decision.STARTED, why, task_id, now)
