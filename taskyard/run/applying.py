"""Applying a run's result: the result stored (the task is `applying` from then on), its
actions applied, and the task paused while some wait for a person, or handed back to apply
what is left (`Applying.resume`). Actions already applied are never sent twice (see
`taskyard.actions.apply`)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import Any

from taskyard.actions.service import TaskActions, outcome_of
from taskyard.exceptions import TaskyardError
from taskyard.lifecycle import EndingKind, Kind
from taskyard.models import Event, Task, TaskStatus
from taskyard.observe.tracing import Tracing
from taskyard.records import ApprovalStatus
from taskyard.run.ending import Ending, internal_error, usage_columns
from taskyard.run.finishing import Finishing
from taskyard.run.taskspec import TaskSpec
from taskyard.store.base import Store
from taskyard.util.loops import AppliedSignals

log = logging.getLogger(__name__)

ActionsFor = Callable[[Task, Event], TaskActions | None]

# How applying its actions ended a task whose agent succeeded.
_APPLIED_AS = {
    TaskStatus.SUCCEEDED: EndingKind.SUCCEEDED,
    TaskStatus.FAILED: EndingKind.ACTIONS_FAILED,
    TaskStatus.EXPIRED: EndingKind.APPROVAL_EXPIRED,
}


class Applying:
    """Applies results' actions. `applied` is told each time a task handed back has applied
    (or stopped applying for any reason)."""

    def __init__(
        self,
        store: Store,
        finishing: Finishing,
        actions_for: ActionsFor,
        applied: AppliedSignals,
        tracing: Tracing,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.finishing = finishing
        self.actions_for = actions_for
        self.applied = applied
        self.tracing = tracing
        self.clock = clock

    async def apply(
        self, task: Task, acts: TaskActions, ending: Ending, *, stored: bool = False
    ) -> Ending:
        """Store the result (the task is `applying` from now on; `stored`: it is already),
        then apply its actions."""
        result = dict(ending.result or {})
        changes: dict[str, Any] = {"result": result, "updated_at": self.clock()}
        changes |= usage_columns(ending.outcome)
        if not stored:
            await asyncio.to_thread(
                partial(self.store.transition, task.id, Kind.STORE_RESULT, **changes)
            )
        proposed = result.get("actions")
        with self.tracing.span("apply", task.event_id, task.id, {"taskyard.route": task.route}):
            records = await acts.apply_result(proposed if isinstance(proposed, list) else [])
        # In dry-run nothing was attempted: what could not be planned (a Linear name without
        # credentials to resolve it) is in the records, and the task still succeeds.
        status, reason = outcome_of(records, acts.dry_run)
        # A dry run that could plan none of its actions failed as a run, not as its actions.
        unplanned = acts.dry_run and status is TaskStatus.FAILED
        kind = EndingKind.FAILED if unplanned else _APPLIED_AS.get(status, ending.kind)
        return replace(ending, status=status, reason=reason, kind=kind, actions=tuple(records))

    async def pause(self, task: Task, ending: Ending, workspace: str | None) -> TaskStatus:
        """Some actions wait for a person: the task holds no worker and no agent until a
        decision hands it back (`applying`); its workspace is done with (`workspace`: where
        it went, the log is there)."""
        changes: dict[str, Any] = {"reason": ending.reason, "updated_at": self.clock()}
        if workspace is not None:
            changes["workspace"] = workspace
        await asyncio.to_thread(
            partial(self.store.transition, task.id, Kind.AWAIT_APPROVAL, **changes)
        )
        log.info(
            "task awaiting approval",
            extra={"task_id": task.id, "route": task.route, "reason": ending.reason},
        )
        # A decision that came before this task was waiting could not resume it: resume now.
        pending = await asyncio.to_thread(
            self.store.list_approvals, ApprovalStatus.PENDING, task.id
        )
        if not pending:
            resumed = await asyncio.to_thread(
                partial(self.store.transition, task.id, Kind.RESUME, updated_at=self.clock())
            )
            if resumed:
                return TaskStatus.APPLYING
        return TaskStatus.AWAITING_APPROVAL

    async def resume(self, task: Task) -> TaskStatus:
        """A decision handed the task back, the worker died while applying, or `tasks retry`
        asked to apply again: apply what is left of the stored result (applied actions are
        never sent twice), then pause again or end the task."""
        log.info("applying the stored result's actions", extra={"task_id": task.id})
        event = await asyncio.to_thread(self.store.get_event, task.event_id)
        spec = TaskSpec.from_json(task.spec)
        ending = Ending(TaskStatus.SUCCEEDED, None, result=task.result, kind=EndingKind.SUCCEEDED)
        acts = None
        try:
            acts = self.actions_for(task, event)
            if acts is not None:
                ending = await self.apply(task, acts, ending, stored=True)
        except TaskyardError as exc:
            ending = Ending(TaskStatus.FAILED, str(exc), result=task.result)
        except Exception as exc:  # a bug must still end the task in a clear state
            log.exception("resumed apply crashed", extra={"task_id": task.id})
            ending = internal_error(exc, result=task.result)
        self.applied.applied(task.id)
        dirs = self.finishing.workspaces.dirs(task.id)
        found = dirs if dirs.root.exists() else None  # a worker died while applying
        if ending.status is TaskStatus.AWAITING_APPROVAL:
            kept = None
            if found is not None:
                kept = await self.finishing.finish_workspace(task, ending, found)
            return await self.pause(task, ending, kept)
        await self.finishing.report_end(acts, event, ending)
        workspace = None
        if found is not None:
            workspace = await self.finishing.finish_workspace(task, ending, found) or str(dirs.root)
        return await self.finishing.end(task, ending, event=event, spec=spec, workspace=workspace)
