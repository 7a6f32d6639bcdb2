"""An idea built through the store's own API, as the scheduler leaves one mid-run: a diamond
plan (A → B, A → C, B + C → D) whose scheduled tasks are real taskyard tasks, each brought
to its state by the lifecycle's transitions (`tests.lifecycle_paths.drive`)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from taskyard.idea import Idea, IdeaStatus, IdeaStep, IdeaTask
from taskyard.models import (
    Decision,
    Event,
    Priority,
    RouteDecision,
    Task,
    TaskStatus,
)
from taskyard.store.base import FOREVER, NewEvent, Store
from tests.lifecycle_paths import drive

T0 = 1_700_000_000.0
DIAMOND = {"A": (), "B": ("A",), "C": ("A",), "D": ("B", "C")}
TITLES = {"A": "schema for saved searches", "B": "search API", "C": "search page", "D": "docs"}


def _event(event_id: str, at: float) -> Event:
    body = b'{"goal": "saved searches"}'
    return Event(
        id=event_id,
        source="taskyard",
        type="taskyard:idea.registered",
        delivery_id=f"idea:{event_id}",
        subject=f"idea {event_id}",
        actor=None,
        received_at=at,
        priority=Priority.P2,
        headers={},
        body=body,
        content_hash=hashlib.sha256(body).hexdigest(),
    )


def _task(task_id: str, event_id: str, key: str, at: float) -> Task:
    return Task(
        id=task_id,
        event_id=event_id,
        route=f"idea-{key}",
        agent="codex",
        status=TaskStatus.QUEUED,
        priority=Priority.P2,
        created_at=at,
        updated_at=at,
        workflow_id=f"task-{task_id}",
        spec={"route": f"idea-{key}"},
    )


def running_idea(store: Store, idea_id: str, at: float = T0) -> Idea:
    """A registered idea stepped to `running` with plan version 1 accepted (after version 0
    was sent back), its diamond's tasks set, none scheduled yet."""
    event_id = f"ev-{idea_id}"
    store.insert_events([NewEvent(_event(event_id, at), f"idea:{idea_id}", FOREVER)], at)
    shape = {"goal": "saved searches", "priority": "P2"}
    store.create_idea(
        Idea(idea_id, IdeaStatus.REGISTERED, shape, {"platform": "cli"}, event_id, at, at),
        {"goal": "saved searches"},
    )
    store.idea_transition(idea_id, IdeaStep.PLAN, "planning", {}, at + 1)
    store.add_idea_plan(idea_id, 0, {"tasks": []}, ["task D depends on missing E"], at + 2)
    store.idea_transition(idea_id, IdeaStep.REPLAN, "plan_rejected", {}, at + 2, plan_version=1)
    plan = {
        "tasks": [
            {"id": k, "title": TITLES[k], "dependencies": list(d)} for k, d in DIAMOND.items()
        ]
    }
    store.add_idea_plan(idea_id, 1, plan, [], at + 3)
    store.idea_transition(idea_id, IdeaStep.PLAN_READY, "plan_ready", {"tasks": 4}, at + 3)
    tasks = [IdeaTask(idea_id, k, TITLES[k], d, 1, {"id": k}) for k, d in DIAMOND.items()]
    store.set_idea_tasks(idea_id, tasks)
    done = store.idea_transition(idea_id, IdeaStep.RUN, "running", {}, at + 4)
    assert done is not None
    return done


def schedule(
    store: Store, idea: Idea, key: str, status: TaskStatus, cost: float | None = None
) -> str:
    """Start the idea's task `key` as a taskyard task and drive it to `status`: its id."""
    task_id = f"{idea.id}-{key}".ljust(32, "0")[:32]
    at = idea.updated_at + 1
    decision = RouteDecision(idea.event_id, f"idea-{key}", Decision.STARTED, None, task_id, at)
    store.record_routing([decision], [_task(task_id, idea.event_id, key, at)])
    branch = f"taskyard/idea-{idea.id}/{key}"
    assert store.update_idea_task(idea.id, key, task_id=task_id, branch=branch)
    changes: dict[str, object] = {"cost_usd": cost} if cost is not None else {}
    if status is not TaskStatus.QUEUED:
        assert drive(store, task_id, status, **changes)
    return task_id


def mixed_diamond(store: Store, idea_id: str = "idea-diamond") -> tuple[Idea, Mapping[str, str]]:
    """A succeeded ($0.50), B running, C failed ($0.25), D not scheduled (so blocked)."""
    idea = running_idea(store, idea_id)
    ids = {
        "A": schedule(store, idea, "A", TaskStatus.SUCCEEDED, 0.5),
        "B": schedule(store, idea, "B", TaskStatus.RUNNING),
        "C": schedule(store, idea, "C", TaskStatus.FAILED, 0.25),
    }
    return store.get_idea(idea_id), ids
