"""The apply step after a task: validate, assess, plan, then send or record a dry run.

Each action is recorded by its idempotency key BEFORE anything is sent (status `proposed`,
`in_doubt` set) and updated after each confirmed request, so a crash between two actions or
two requests is visible to the next apply of the same task:

- `applied` is final: never sent again.
- `skipped`, `dry_run`, and `failed` with a platform answer (`in_doubt` false: the platform
  refused, or rate-limited us) are evaluated again: nothing reached the platform.
- In doubt (a record left `proposed` by a crash, or `failed` after a timeout/5xx/unexpected
  error, i.e. request number `sent` may have gone through):
  * an idempotent action (add/remove labels, priority, state, assign, close) is re-sent;
  * an action whose body carries the hidden key marker is looked up with the injected
    `MarkerLookup`: found → `applied` with what was found; not found → re-sent;
  * anything else is NOT re-sent: `failed` with "outcome unknown after a crash or an
    unanswered request"; an operator checks the platform and decides.

The apply step does not retry by itself: the writers retry 429/5xx with backoff. A rate limit
that still reaches this step ends `failed` (not in doubt) and is sent on the next apply.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from taskyard.actions.models import (
    InvalidAction,
    ParsedAction,
    Target,
)
from taskyard.actions.policy import ActionPolicy, Assessment, Verdict
from taskyard.exceptions import (
    ActionError,
    PlatformError,
    PlatformPermanentError,
    PlatformRateLimited,
    TaskyardError,
)
from taskyard.platforms.writes import PlannedRequest, PlatformWriter, WriteResult
from taskyard.records import ActionRecord, ActionStatus, Approval, ApprovalStatus, SkipKind

if TYPE_CHECKING:
    from taskyard.store.base import Store

log = logging.getLogger(__name__)

OUTCOME_UNKNOWN = "outcome unknown after a crash or an unanswered request"


class Planner(Protocol):
    """Turns one action into the platform requests that carry it out (pure: sends nothing).
    Raises ActionError when the action means nothing for the target."""

    def plan(self, action: ParsedAction, target: Target) -> list[PlannedRequest]: ...


class ApprovalGate(Protocol):
    """Where actions that need a person's decision wait (`taskyard.approvals.gate`)."""

    async def latest(self, action: ParsedAction) -> Approval | None:
        """The newest approval request for the action (by its key), if any."""
        ...

    async def request(
        self,
        task_id: str,
        route: str,
        action: ParsedAction,
        target: Target,
        assessment: Assessment,
        requests: list[PlannedRequest],
        *,
        dry_run: bool = False,
    ) -> Approval:
        """Ask for a decision (or return the pending request already asking). A dry run's
        request is raised where no token is needed (the CLI, the web UI and API), never
        posted on the platforms' channels."""
        ...


class MarkerLookup(Protocol):
    """Looks on the platform for what `request` (of `action`) created: by the key's hidden
    marker in a posted body (GitHub), or by the id taskyard chose for it (Linear). Returns
    None when it surely does not exist; raises ActionError when it cannot look for this kind
    of request, PlatformError when the platform fails."""

    async def find(
        self, action: ParsedAction, target: Target, request: PlannedRequest
    ) -> WriteResult | None: ...


def _risk(assessment: Assessment) -> str:
    return f"{assessment.risk or 'risk unknown'}: {assessment.rule or assessment.reason or '?'}"


@dataclass(frozen=True, slots=True)
class _Failure:
    reason: str
    in_doubt: bool


async def apply_actions(
    task_id: str,
    route: str,
    actions: Sequence[ParsedAction | InvalidAction],
    target: Target,
    *,
    planner: Planner,
    writers: Mapping[str, PlatformWriter],
    policy: ActionPolicy,
    store: Store,
    dry_run: bool,
    lookup: MarkerLookup | None = None,
    clock: Callable[[], float] = time.time,
    gate: ApprovalGate | None = None,
    approvals_in_dry_run: bool = False,
) -> list[ActionRecord]:
    """Apply `actions` in order; return one record per action. One failure never stops the
    rest; calling it again sends nothing that was applied. An action the policy wants a
    person to decide on waits at `gate` (`awaiting_approval`) and is applied on a later call
    once approved. In a dry run it is recorded "would need approval", or, with
    `approvals_in_dry_run`, waits for a decision too (to rehearse approvals before any token
    is given) and, once approved, is recorded `dry_run` as well: nothing is ever sent."""
    run = _Run(
        task_id,
        route,
        target,
        planner,
        writers,
        policy,
        store,
        dry_run,
        lookup,
        clock,
        gate,
        approvals_in_dry_run,
    )
    return [await run.apply(action) for action in actions]


@dataclass(frozen=True, slots=True)
class _Run:
    task_id: str
    route: str
    target: Target
    planner: Planner
    writers: Mapping[str, PlatformWriter]
    policy: ActionPolicy
    store: Store
    dry_run: bool
    lookup: MarkerLookup | None
    clock: Callable[[], float]
    gate: ApprovalGate | None = None
    approvals_in_dry_run: bool = False

    async def apply(self, action: ParsedAction | InvalidAction) -> ActionRecord:
        existing = await asyncio.to_thread(self.store.get_action_by_key, action.key)
        if existing is not None and existing.status is ActionStatus.APPLIED:
            return existing
        record = self._start(action, existing)
        if isinstance(action, InvalidAction):
            return await self._skip(record, SkipKind.INVALID, action.error)
        assessment = self.policy.assess(self.route, action, self.target)
        if assessment.verdict is Verdict.DENY:
            return await self._skip(record, SkipKind.NOT_ALLOWED, assessment.reason)
        try:
            requests = self.planner.plan(action.for_sending(self.target), self.target)
        except TaskyardError as exc:
            return await self._save(
                record, status=ActionStatus.FAILED, reason=f"cannot plan: {exc}"
            )
        record = replace(record, requests=[r.to_json() for r in requests])
        if self.dry_run:
            return await self._dry_run(action, record, assessment, requests)
        if assessment.verdict is Verdict.ASK:
            waiting = await self._approval(action, record, assessment, requests)
            if waiting is not None:
                return waiting
        return await self._send_all(action, record, requests)

    async def _dry_run(
        self,
        action: ParsedAction,
        record: ActionRecord,
        assessment: Assessment,
        requests: list[PlannedRequest],
    ) -> ActionRecord:
        """Recorded as it would be sent; a gated action is rehearsed at the gate first when
        approvals run in dry-run too (waiting, denied and expired as in a live run)."""
        if assessment.verdict is Verdict.ASK and self.approvals_in_dry_run and self.gate:
            waiting = await self._approval(action, record, assessment, requests, dry_run=True)
            if waiting is not None:
                return waiting
            approval = await self.gate.latest(action)
            who = f" by {approval.decided_by}" if approval and approval.decided_by else ""
            approved = f"approved{who} ({_risk(assessment)}); dry run: nothing sent"
            return await self._save(record, status=ActionStatus.DRY_RUN, reason=approved)
        why = None if assessment.allowed else f"would need approval ({_risk(assessment)})"
        return await self._save(record, status=ActionStatus.DRY_RUN, reason=why)

    async def _approval(
        self,
        action: ParsedAction,
        record: ActionRecord,
        assessment: Assessment,
        requests: list[PlannedRequest],
        *,
        dry_run: bool = False,
    ) -> ActionRecord | None:
        """The record to keep while the action may not be sent (waiting, denied, expired), or
        None when a person approved it."""
        if self.gate is None:
            why = f"needs approval ({_risk(assessment)}) and approvals are not set up"
            return await self._skip(record, SkipKind.NO_APPROVALS, why)
        approval = await self.gate.latest(action)
        if approval is None:
            approval = await self.gate.request(
                self.task_id, self.route, action, self.target, assessment, requests, dry_run=dry_run
            )
        status = ApprovalStatus(approval.status)
        if status is ApprovalStatus.APPROVED:
            return None
        if status is ApprovalStatus.PENDING:
            why = f"waiting for approval {approval.id} ({_risk(assessment)})"
            return await self._save(record, status=ActionStatus.AWAITING_APPROVAL, reason=why)
        who = f"{approval.decided_by} via {approval.decided_via}"
        if status is ApprovalStatus.DENIED:
            why = f"denied by {who}" + (f": {approval.reason}" if approval.reason else "")
            return await self._skip(record, SkipKind.DENIED, why)
        why = f"approval {approval.id} expired before anyone decided; not applied"
        return await self._save(record, status=ActionStatus.EXPIRED, reason=why)

    def _start(
        self, action: ParsedAction | InvalidAction, existing: ActionRecord | None
    ) -> ActionRecord:
        if existing is not None:
            return existing
        now = self.clock()
        params = action.params if isinstance(action, InvalidAction) else action.params_json()
        return ActionRecord(
            key=action.key,
            task_id=self.task_id,
            index=action.index,
            route=self.route,
            type=action.type,
            params=params,
            status=ActionStatus.PROPOSED,
            created_at=now,
            updated_at=now,
            reasoning=action.reasoning,
        )

    async def _skip(self, record: ActionRecord, kind: SkipKind, reason: str | None) -> ActionRecord:
        return await self._save(record, status=ActionStatus.SKIPPED, reason=reason, skipped_as=kind)

    async def _save(
        self, record: ActionRecord, *, status: ActionStatus, reason: str | None, **changes: Any
    ) -> ActionRecord:
        now = self.clock()
        record = replace(record, status=status, reason=reason, updated_at=now, **changes)
        stored = await asyncio.to_thread(self.store.record_action, record)
        log.info(
            "action %s: %s",
            stored.type,
            stored.status,
            extra={
                "task_id": stored.task_id,
                "action_key": stored.key,
                "action": stored.type,
                "status": str(stored.status),
                "reason": stored.reason,
            },
        )
        return stored

    async def _send_all(
        self, action: ParsedAction, record: ActionRecord, requests: list[PlannedRequest]
    ) -> ActionRecord:
        if record.in_doubt:
            resolved = await self._resolve_doubt(action, record, requests)
            if isinstance(resolved, _Failure):
                return await self._save(
                    record, status=ActionStatus.FAILED, reason=resolved.reason, in_doubt=True
                )
            record = resolved
        record = await self._save(
            record,
            status=ActionStatus.PROPOSED,
            reason=None,
            in_doubt=True,
            attempts=record.attempts + 1,
        )
        for i in range(record.sent, len(requests)):
            outcome = await self._send(requests[i])
            if isinstance(outcome, _Failure):
                return await self._save(
                    record,
                    status=ActionStatus.FAILED,
                    reason=outcome.reason,
                    in_doubt=outcome.in_doubt,
                )
            record = replace(
                record,
                sent=i + 1,
                external_id=outcome.external_id or record.external_id,
                url=outcome.url or record.url,
            )
            if i + 1 < len(requests):
                record = await self._save(record, status=ActionStatus.PROPOSED, reason=None)
        return await self._save(record, status=ActionStatus.APPLIED, reason=None, in_doubt=False)

    async def _resolve_doubt(
        self, action: ParsedAction, record: ActionRecord, requests: list[PlannedRequest]
    ) -> ActionRecord | _Failure:
        """Request number `record.sent` may have reached the platform: decide (see the module
        docstring) whether to send it again, count it as done, or stop."""
        if action.spec.idempotent:
            return record
        if self.lookup is not None and record.sent < len(requests):
            try:
                found = await self.lookup.find(action, self.target, requests[record.sent])
            except ActionError as exc:
                return _Failure(f"{OUTCOME_UNKNOWN} ({exc}); not sent again", True)
            except PlatformError as exc:
                return _Failure(f"{OUTCOME_UNKNOWN}: cannot look for it: {exc}", True)
            if found is None:
                return record
            return replace(
                record,
                sent=record.sent + 1,
                external_id=found.external_id or record.external_id,
                url=found.url or record.url,
            )
        previous = f" ({record.reason})" if record.reason else ""
        return _Failure(f"{OUTCOME_UNKNOWN}{previous}; not sent again", True)

    async def _send(self, request: PlannedRequest) -> WriteResult | _Failure:
        writer = self.writers.get(request.platform)
        if writer is None:
            return _Failure(f"no {request.platform} writer (no write credentials)", False)
        try:
            return await writer.send(request)
        except PlatformRateLimited as exc:
            return _Failure(f"rate limited: {exc}", False)
        except PlatformPermanentError as exc:
            return _Failure(str(exc), False)
        except PlatformError as exc:  # timeout, network, 5xx: it may have gone through
            return _Failure(str(exc), True)
        except Exception as exc:  # recorded as the action's outcome and logged
            log.exception(
                "action request failed unexpectedly",
                extra={"task_id": self.task_id, "request": request.description},
            )
            return _Failure(f"unexpected error: {exc!r}", True)
