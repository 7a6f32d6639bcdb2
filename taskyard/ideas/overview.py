"""What `taskyard ideas show`, `GET /api/ideas/{id}` and the idea page read: an idea with
its plan's tasks, each in the state of the taskyard task it runs as, and what it waits on.

A task not scheduled yet is `pending`, or `blocked` when a task it depends on (directly or
through others) ended without succeeding: the scheduler will never start it, and the page
says so instead of showing it as merely waiting.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from taskyard.idea import IdeaEvent, IdeaTask
from taskyard.ideas.views import idea_json
from taskyard.models import Task, TaskStatus
from taskyard.records import iso
from taskyard.store.base import Store

EVENTS_SHOWN = 50
PENDING, BLOCKED = "pending", "blocked"
SUCCEEDED = str(TaskStatus.SUCCEEDED)
# Ended without succeeding (failed, timed out, cancelled, expired), or blocked by one that did.
_BLOCKING = frozenset({BLOCKED} | {str(s) for s in TaskStatus if s.terminal} - {SUCCEEDED})


def idea_overview(store: Store, idea_id: str) -> dict[str, Any]:
    """The idea (`idea_json`), its tasks, the last EVENTS_SHOWN events of its log, what its
    tasks cost so far, and every version of its plan with the errors it was sent back for.
    NotFound for an unknown id."""
    idea = store.get_idea(idea_id)
    planned = store.idea_tasks(idea_id)
    runs = {t.task_id: store.get_task(t.task_id) for t in planned if t.task_id}
    tasks = task_rows(planned, runs)
    events = store.idea_events(idea_id, after_seq=max(0, idea.last_seq - EVENTS_SHOWN))
    return {
        "idea": idea_json(idea),
        "tasks": tasks,
        "events": [event_json(e) for e in events[-EVENTS_SHOWN:]],
        "cost_usd": round(sum(t["cost_usd"] or 0.0 for t in tasks), 6),
        "plans": [_plan_json(p) for p in store.idea_plans(idea_id)],
    }


def task_rows(planned: Sequence[IdeaTask], runs: Mapping[str, Task]) -> list[dict[str, Any]]:
    """Each planned task with its state (`runs`: the taskyard tasks, by id), in plan order."""
    states = _states(planned, runs)
    return [
        {
            "key": t.key,
            "title": t.title,
            "depends_on": list(t.depends_on),
            "task_id": t.task_id,
            "status": states[t.key],
            "branch": t.branch,
            "cost_usd": run.cost_usd if (run := _run(t, runs)) else None,
            "waits_on": [d for d in t.depends_on if states.get(d) != SUCCEEDED],
        }
        for t in planned
    ]


def _run(task: IdeaTask, runs: Mapping[str, Task]) -> Task | None:
    return runs.get(task.task_id) if task.task_id else None


def _states(planned: Sequence[IdeaTask], runs: Mapping[str, Task]) -> dict[str, str]:
    """Every task's state: its run's status, else blocked or pending (see the module)."""
    by_key = {t.key: t for t in planned}
    states: dict[str, str] = {}

    def state(key: str, seen: frozenset[str]) -> str:
        if key not in states:
            task, run = by_key[key], _run(by_key[key], runs)
            if run is not None:
                states[key] = str(run.status)
            else:  # a dependency missing from the plan, or a cycle, blocks nothing
                deps = [d for d in task.depends_on if d in by_key and d not in seen]
                failed = any(state(d, seen | {key}) in _BLOCKING for d in deps)
                states[key] = BLOCKED if failed else PENDING
        return states[key]

    for key in by_key:
        state(key, frozenset())
    return states


def event_json(e: IdeaEvent) -> dict[str, Any]:
    return {
        "seq": e.seq,
        "at": iso(e.at),
        "subject": e.subject,
        "kind": e.kind,
        "data": e.data,
        "published": e.published_at is not None,
    }


def _plan_json(plan: Mapping[str, Any]) -> dict[str, Any]:
    """A plan version as shown: not the plan itself (the agent's file, possibly long)."""
    tasks = plan["plan"].get("tasks") if isinstance(plan["plan"], Mapping) else None
    return {
        "version": plan["version"],
        "accepted": not plan["errors"],
        "errors": list(plan["errors"]),
        "tasks": len(tasks) if isinstance(tasks, list) else 0,
        "created_at": iso(plan["created_at"]),
    }
