"""Put a task in a state the way taskyard does: through the lifecycle's own transitions.

Tests that need a task `running`, `failed` or `awaiting_approval` reach it by a path of real
transitions (`taskyard.lifecycle.TRANSITIONS`), so a state no transition leads to cannot be set
up by accident, and every write goes through the same guarded `Store.transition` as in a run.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

from taskyard.lifecycle import TRANSITIONS, Kind, Transition
from taskyard.models import TaskStatus
from taskyard.store import Store

MAX_STEPS = 5


class NoPath(LookupError):
    """No path of transitions reaches the status with every field set."""


def allowed(step: Transition) -> frozenset[str]:
    """The columns a caller may give the transition (`updated_at` aside)."""
    return step.fields | ({"workflow_id"} if step.mints_workflow else frozenset())


def path_to(
    start: TaskStatus, status: TaskStatus, fields: Sequence[str] = ()
) -> list[tuple[Kind, frozenset[str]]]:
    """The shortest path (at least one step) of transitions from `start` to `status` that can
    set every one of `fields`: each step with the fields it is given, each field given to the
    last step that allows it and not reset by a later step's fixed columns. A step that only
    flags the task (`request_cancel`) is never taken: a test asks for it by name."""
    wanted = frozenset(fields)
    # A state is (status, the fields set so far and still standing); the path that got there.
    queue: deque[tuple[TaskStatus, frozenset[str], tuple[Kind, ...]]] = deque(
        [(start, frozenset(), ())]
    )
    seen: set[tuple[TaskStatus, frozenset[str]]] = set()  # the start: seen after one step
    while queue:
        at, done, path = queue.popleft()
        if path and at is status and done == wanted:
            return _assign(path, wanted)
        if len(path) == MAX_STEPS:
            continue
        for kind, step in TRANSITIONS.items():
            if at not in step.sources or step.target is None:
                continue
            state = (step.target, done.difference(step.fixed) | (allowed(step) & wanted))
            if state not in seen:
                seen.add(state)
                queue.append((*state, (*path, kind)))
    raise NoPath(
        f"no path of at most {MAX_STEPS} transitions from {start} to {status} sets {sorted(wanted)}"
    )


def _assign(path: Sequence[Kind], wanted: frozenset[str]) -> list[tuple[Kind, frozenset[str]]]:
    left = set(wanted)
    steps: list[tuple[Kind, frozenset[str]]] = []
    for kind in reversed(path):
        mine = frozenset(left & allowed(TRANSITIONS[kind]))
        left -= mine
        steps.append((kind, mine))
    return steps[::-1]


def drive(store: Store, task_id: str, status: TaskStatus | None = None, **fields: Any) -> bool:
    """Move the task to `status` (None: the one it has, by a step that keeps or returns to it)
    with `fields` set, by the shortest path of transitions; True if every step applied.
    `updated_at` is written on every step; by default it keeps the task's own, so a test's
    clock stays the one it set up."""
    task = store.get_task(task_id)
    stamp = fields.pop("updated_at", task.updated_at)
    steps = path_to(task.status, status or task.status, tuple(fields))
    return all(
        store.transition(task_id, kind, updated_at=stamp, **_pick(fields, names))
        for kind, names in steps
    )


def _pick(fields: Mapping[str, Any], names: frozenset[str]) -> dict[str, Any]:
    return {name: fields[name] for name in names}
