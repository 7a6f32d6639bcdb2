"""Finishing a run: its workspace kept or removed (its agent's log kept first), the ending
written (`ends_in`), the task's note, the report back to where it came from, and the listeners
told (metrics, the dispatcher)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from taskyard.actions.service import TaskActions
from taskyard.exceptions import LogRefused, TaskyardError
from taskyard.lifecycle import ends_in
from taskyard.models import Event, Task, TaskStatus
from taskyard.run.budget import BudgetGuard
from taskyard.run.ending import Ending, usage_columns
from taskyard.run.results import note_path, render_note
from taskyard.run.tasklogs import TaskLogs
from taskyard.run.taskspec import TaskSpec
from taskyard.run.workspace import TaskDirs, Workspaces
from taskyard.store.base import Store

log = logging.getLogger(__name__)


class Finishing:
    """Ends tasks. `on_finished` listeners get each ended task as the store now has it."""

    def __init__(
        self,
        store: Store,
        workspaces: Workspaces,
        task_logs: TaskLogs,
        budget: BudgetGuard,
        notes_dir: Path,
        on_finished: list[Callable[[Task], None]],
        *,
        keep_workspaces: bool,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.workspaces = workspaces
        self.task_logs = task_logs
        self.budget = budget
        self.notes_dir = notes_dir
        self.on_finished = on_finished
        self.keep_workspaces = keep_workspaces
        self.clock = clock

    async def end(
        self,
        task: Task,
        ending: Ending,
        *,
        event: Event | None = None,
        spec: TaskSpec | None = None,
        workspace: str | None = None,
        began: float | None = None,
    ) -> TaskStatus:
        """Write the ending (and `workspace`, where the task's workspace is now or was), then
        the note (when the run got as far as its event), the log line, the budget alert, and
        the listeners. `began`: when the attempt began (monotonic), for its timings."""
        now = self.clock()
        changes: dict[str, Any] = {
            "reason": ending.reason,
            "ending": ending.kind,
            "finished_at": now,
            "updated_at": now,
        }
        changes |= usage_columns(ending.outcome)
        if ending.result is not None:
            changes["result"] = dict(ending.result)
        if workspace is not None:
            changes["workspace"] = workspace
        await asyncio.to_thread(
            partial(self.store.transition, task.id, ends_in(ending.status), **changes)
        )
        done = await asyncio.to_thread(self.store.get_task, task.id)
        if event is not None:
            await asyncio.to_thread(self._write_note, done, event, spec)
        log_fn = log.info if ending.status is TaskStatus.SUCCEEDED else log.warning
        log_fn(
            "task finished",
            extra={
                "task_id": task.id,
                "route": task.route,
                "status": str(ending.status),
                "reason": ending.reason,
                "attempt": done.attempts,
                **_timings(began, ending.agent_seconds),
            },
        )
        if done.cost_usd:  # logs the alert as soon as a task's cost reaches it
            await asyncio.to_thread(self.budget.check)
        for listener in self.on_finished:
            listener(done)
        return ending.status

    async def finish_workspace(self, task: Task, ending: Ending, dirs: TaskDirs) -> str | None:
        """Keep the agent's log, then archive the workspace (a run that did not succeed, or
        every run by setting) or remove it. Where it is now: the archive, its old place when
        it could not be finished, None when removed."""
        keep = self.keep_workspaces or ending.status is not TaskStatus.SUCCEEDED
        await self.keep_log(task.id, dirs)
        try:
            kept = await self.workspaces.finish(task.id, keep=keep)
        except TaskyardError as exc:
            log.error("workspace cleanup failed", extra={"task_id": task.id, "error": str(exc)})
            return str(dirs.root)
        return str(kept) if kept is not None else None

    async def keep_log(self, task_id: str, dirs: TaskDirs) -> None:
        """The agent's log, copied beside the task's record before its workspace goes
        (`taskyard.run.tasklogs`); a log that cannot be kept is logged, the task goes on."""
        try:
            await asyncio.to_thread(self.task_logs.keep, task_id, dirs.root)
        except (OSError, LogRefused) as exc:
            log.warning("agent log not kept", extra={"task_id": task_id, "error": str(exc)})

    async def report_end(self, acts: TaskActions | None, event: Event, ending: Ending) -> None:
        """Say where the task came from how it ended: its summary, or why it failed."""
        if acts is None:
            return
        summary = ending.result.get("summary") if ending.result else None
        await acts.report_end(
            ending.status,
            ending.reason,
            summary if isinstance(summary, str) else None,
            ending.actions,
            subject=event.subject,
            kind=ending.kind,
        )

    def _write_note(self, task: Task, event: Event, spec: TaskSpec | None) -> None:
        self.notes_dir.mkdir(parents=True, exist_ok=True)
        path = note_path(self.notes_dir, task, event)
        path.write_text(render_note(task, event, list(spec.context if spec else ())), "utf-8")


def _timings(began: float | None, agent_seconds: float | None) -> dict[str, float]:
    """The attempt's wall time and taskyard's own share of it (all but the agent's run)."""
    if began is None:
        return {}
    total = time.monotonic() - began
    return {
        "seconds": round(total, 4),
        "agent_seconds": round(agent_seconds or 0.0, 4),
        "overhead_ms": round((total - (agent_seconds or 0.0)) * 1000, 2),
    }
