"""What an operator does to a task, from the CLI (`taskyard tasks …`) or the management API:
cancel it, run it again, find its agent's log. Both call these, so both behave alike."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from taskyard.lifecycle import LIVE, EndingKind, Kind, workflow_id
from taskyard.models import Task, TaskStatus
from taskyard.store.base import Store


@dataclass(frozen=True, slots=True)
class Cancel:
    """What `cancel_task` did. `done`: the cancel was taken (`ended_now`: the task was
    awaiting approval, held nothing, and ended `cancelled` at once; otherwise its worker stops
    the agent and ends it); else `why` says why not. `status`: the task's status after it."""

    task_id: str
    done: bool
    status: TaskStatus
    ended_now: bool = False
    why: str | None = None


@dataclass(frozen=True, slots=True)
class Retry:
    """What `retry_task` did. `done`: queued again under `workflow_id`; `reapply`: only its
    actions are applied again (the agent does not run). Else `why` says why not."""

    task_id: str
    done: bool
    status: TaskStatus
    workflow_id: str | None = None
    reapply: bool = False
    why: str | None = None


# Held by no worker: a decision (awaiting approval) or its subtasks (waiting) hand it back.
_HELD = frozenset({TaskStatus.AWAITING_APPROVAL, TaskStatus.WAITING})


def cancel_task(store: Store, task_id: str, now: float) -> Cancel:
    """Stop a queued or running task, or end one awaiting approval or its subtasks (which
    are cancelled with it). NotFound for an unknown id; refused (`done` False) while it
    applies its actions, or once it has ended."""
    done = _cancel(store, task_id, now)
    if done.done:
        for child in store.subtasks_of(task_id):
            if not child.status.terminal:
                cancel_task(store, child.id, now)
    return done


def _cancel(store: Store, task_id: str, now: float) -> Cancel:
    if store.transition(task_id, Kind.REQUEST_CANCEL, updated_at=now):
        return Cancel(task_id, True, store.get_task(task_id).status)
    status = store.get_task(task_id).status
    if status in _HELD:  # nothing runs: it ends here and now
        reason = f"cancelled while {status.replace('_', ' ')}"
        if store.transition(
            task_id, Kind.CANCEL_WAITING, reason=reason, finished_at=now, updated_at=now
        ):
            return Cancel(task_id, True, TaskStatus.CANCELLED, ended_now=True)
        status = store.get_task(task_id).status  # a decision resumed it meanwhile
    return Cancel(task_id, False, status, why=_cannot_cancel(task_id, status))


def _cannot_cancel(task_id: str, status: TaskStatus) -> str:
    if status is TaskStatus.APPLYING:
        return f"task {task_id} is applying its actions and cannot be cancelled now"
    if status in LIVE or status in _HELD:
        return f"task {task_id} changed state meanwhile ({status}); try again"
    return f"task {task_id} has already ended ({status})"


def retry_task(store: Store, task_id: str, now: float, rerun: bool = False) -> Retry:
    """Run an ended task again (a new attempt, same route and event). A task whose agent
    succeeded but some of whose actions failed only applies its actions again (the applied
    ones are not sent twice), unless `rerun`. NotFound for an unknown id; refused (`done`
    False) while it has not ended."""
    task = store.get_task(task_id)
    reapply = (
        not rerun
        and task.status is TaskStatus.FAILED
        and task.result is not None
        and task.ending == EndingKind.ACTIONS_FAILED
    )
    kind = Kind.REAPPLY if reapply else Kind.RETRY
    workflow = workflow_id(task_id, kind)
    if store.transition(task_id, kind, workflow_id=workflow, updated_at=now):
        status = TaskStatus.APPLYING if reapply else TaskStatus.QUEUED
        return Retry(task_id, True, status, workflow, reapply)
    current = store.get_task(task_id).status
    return Retry(task_id, False, current, why=f"task {task_id} has not ended ({current})")


def log_file(task: Task) -> Path | None:
    """Where the agent's event stream of the task is in its workspace (`outputs/log.jsonl`),
    if it is there and safe to open; None otherwise. Readers open it with
    `taskyard.run.tasklogs.TaskLogs` (which also finds the copy kept once the workspace is gone,
    and refuses a link or a file that is not taskyard's); this only looks (`lstat`)."""
    if not task.workspace:
        return None
    root = Path(task.workspace)
    path = root / "outputs" / "log.jsonl"
    try:
        info = path.lstat()
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1 or info.st_uid != os.geteuid():
        return None
    return path if path.resolve().is_relative_to(root.resolve()) else None
