"""The actions of one task, end to end: what its result proposes, what its agent asks for
through the MCP tools, and what taskyard itself says back where the task came from.

`ActionService` is built once per worker (writers, planners, lookup, store); `for_task` gives
a `TaskActions` bound to one task, its route and the `Target` its event names. Every path goes
through `apply_actions`: validation, the policy, dry-run, idempotency keys, audit records.

Indexes (part of each idempotency key) say where an action came from:

- `0..n-1`: the result's `actions[]`, in order;
- `TOOL_INDEX`: a tool call (two calls with the same type and params are one action: the
  second answers with the first's outcome, never applies twice);
- `ReportKind` (negative): taskyard's own reports (`START`, `END`, `NOTIFY`: the start
  reaction or note, the summary or failure where the task came from, the Slack notification;
  `WAIT`, `WAIT_NOTIFY`: that the task waits, the monthly budget being spent). They are
  configured by the operator, not proposed by an agent, so no allow-list applies to them;
  dry-run does.

A result action equal to one a tool call already applied (same type and params) is recorded
`skipped` ("already applied …") instead of being applied again.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from taskyard.actions.apply import ApprovalGate, MarkerLookup, Planner, apply_actions
from taskyard.actions.keys import action_key
from taskyard.actions.models import InvalidAction, ParsedAction, Target, parse_action
from taskyard.actions.policy import ActionPolicy, AllowListPolicy, Assessment, Verdict
from taskyard.actions.target import target_from_event
from taskyard.config import ReportingConfig, Settings
from taskyard.lifecycle import EndingKind
from taskyard.models import Event, TaskStatus
from taskyard.platforms.writes import PlatformWriter
from taskyard.records import (
    TOOL_INDEX,
    ActionRecord,
    ActionStatus,
    ReportKind,
    SkipKind,
    action_kind,
    is_report,
)
from taskyard.store.base import Store

log = logging.getLogger(__name__)

# Actions that post a message where the task came from: after one of them, no summary.
_POSTS_AT_SOURCE = frozenset({"comment", "review", "mention_users"})
_DONE = frozenset({ActionStatus.APPLIED, ActionStatus.DRY_RUN})
ALREADY_APPLIED = "already applied"
_MAX_POST = 3000  # characters of a summary or reason posted back


class PlannerSource(Protocol):
    """The planner for a target (it may need the target's Linear team's names and ids). A
    dry-run planner never fails for a missing credential (names it cannot resolve stay
    names)."""

    async def planner(self, target: Target, *, dry_run: bool = False) -> Planner: ...


class _Reports:
    """Taskyard's own reports are configured by the operator: always allowed."""

    def assess(self, route: str, action: ParsedAction, target: Target) -> Assessment:
        return Assessment(Verdict.ALLOW)


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret (of 4 characters or more) replaced by `***`."""
    for secret in secrets:
        if len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


def plain_reason(status: TaskStatus, reason: str | None, kind: str | None = None) -> str:
    """Why a task did not succeed, for the people who will read it where it came from
    (`kind`: how it ended, `taskyard.lifecycle.EndingKind`)."""
    why = (reason or "").strip()
    if kind == EndingKind.TESTS_FAILED:  # a change's test gate (taskyard.run.change)
        return f"The tests taskyard ran did not pass: {why.removeprefix('test:').strip()}"
    if kind in (EndingKind.CHANGE_REFUSED, EndingKind.REVIEW_REFUSED):  # its later gates
        return f"taskyard refused the change: {why}"
    if status is TaskStatus.TIMED_OUT:
        return f"The agent ran out of time ({why or 'timed out'})."
    if status is TaskStatus.CANCELLED:
        return f"The task was cancelled ({why or 'by an operator'})."
    if status is TaskStatus.EXPIRED:
        return f"Nobody decided in time, so nothing risky was done ({why or 'approval expired'})."
    lowered = why.lower()
    if lowered.startswith("tool-call budget"):
        return f"The agent used up its budget: {why}."
    if lowered.startswith("cost ceiling"):
        return f"The agent was stopped at the cost ceiling of one task: {why}."
    if lowered.startswith("actions:"):
        return f"The agent's work could not be applied: {why.removeprefix('actions:').strip()}"
    if "rate limit" in lowered or "429" in lowered:
        return f"A platform rate-limited taskyard: {why}"
    if lowered.startswith("invalid result") or lowered.startswith("the agent returned no"):
        return f"The agent's answer was not usable: {why}"
    if lowered.startswith("context:"):
        return f"taskyard could not gather what the agent needed: {why.removeprefix('context:')}"
    if lowered.startswith("worker lost"):
        return f"The worker running the task stopped: {why}"
    return f"The agent failed: {why or 'no reason given'}"


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_POST else text[: _MAX_POST - 1] + "…"


@dataclass(frozen=True, slots=True)
class ActionService:
    settings: Settings
    store: Store
    writers: Mapping[str, PlatformWriter]
    planners: PlannerSource
    lookup: MarkerLookup | None = None
    secrets: tuple[str, ...] = ()
    clock: Callable[[], float] = time.time
    # None: the route's allow-list alone (taskyard.approvals puts risk rules behind it).
    risk_policy: ActionPolicy | None = None
    gate: ApprovalGate | None = None  # where actions needing a person's decision wait
    # Called with each action's record once it has an outcome (metrics).
    on_outcome: list[Callable[[ActionRecord], None]] = field(default_factory=list)
    policy: ActionPolicy = field(init=False)  # risk_policy, else the allow-list alone

    def __post_init__(self) -> None:
        chosen = self.risk_policy or AllowListPolicy(self.settings.actions.allow)
        object.__setattr__(self, "policy", chosen)  # built once, not per action

    def dry_run_for(self, route: str) -> bool:
        return self.settings.actions.dry_run_for(route, self.settings.platforms.can_write)

    def target_of(self, event: Event, payload: Mapping[str, Any]) -> Target:
        team = self.settings.actions.default_linear_team
        return target_from_event(event, payload, default_linear_team=team)

    def for_task(
        self, task_id: str, route: str, event: Event, payload: Mapping[str, Any]
    ) -> TaskActions:
        target = self.target_of(event, payload)
        return TaskActions(self, task_id, route, target, self.dry_run_for(route))


@dataclass(slots=True)
class TaskActions:
    service: ActionService
    task_id: str
    route: str
    target: Target
    dry_run: bool
    _planner: Planner | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def reporting(self) -> ReportingConfig:
        return self.service.settings.reporting

    async def planner(self) -> Planner:
        if self._planner is None:
            self._planner = await self.service.planners.planner(self.target, dry_run=self.dry_run)
        return self._planner

    async def _apply(
        self, actions: Sequence[ParsedAction | InvalidAction], policy: ActionPolicy
    ) -> list[ActionRecord]:
        async with self._lock:  # tool calls may come while another applies
            records = await apply_actions(
                self.task_id,
                self.route,
                actions,
                self.target,
                planner=await self.planner(),
                writers=self.service.writers,
                policy=policy,
                store=self.service.store,
                dry_run=self.dry_run,
                lookup=self.service.lookup,
                clock=self.service.clock,
                gate=self.service.gate,
                approvals_in_dry_run=self.service.settings.approvals.in_dry_run,
            )
        for record in records:
            for listener in self.service.on_outcome:
                listener(record)
        return records

    # --- what the agent proposes ----------------------------------------------------------

    async def apply_result(self, proposed: Sequence[Any]) -> list[ActionRecord]:
        """Apply the result's `actions[]` in order; one record per action. A text param may
        name what an earlier action created: `{{actions.N.url}}` / `{{actions.N.id}}` (e.g. a
        Slack reply that links the Linear issue action 0 created)."""
        records: list[ActionRecord] = []
        for index, raw in enumerate(proposed):
            action = parse_action(self.task_id, index, raw)
            done = await self._applied_by_tool(action)
            if done is not None and isinstance(action, ParsedAction):
                records.append(await self._skip_as_done(action, done))
                continue
            if isinstance(action, ParsedAction):
                action = _with_outcomes(action, records)
            records.extend(await self._apply([action], self.service.policy))
        return records

    async def apply_tool_call(
        self, action_type: str, params: Mapping[str, Any], reasoning: str = ""
    ) -> ActionRecord:
        """One action the agent asked for through its tools: the same validation, policy,
        dry-run and audit as a result's actions."""
        raw = {"type": action_type, "params": dict(params), "reasoning": reasoning}
        action = parse_action(self.task_id, TOOL_INDEX, raw)
        [record] = await self._apply([action], self.service.policy)
        return record

    async def _applied_by_tool(self, action: ParsedAction | InvalidAction) -> ActionRecord | None:
        if isinstance(action, InvalidAction):
            return None
        key = action_key(self.task_id, TOOL_INDEX, action.type, action.params_json())
        found = await asyncio.to_thread(self.service.store.get_action_by_key, key)
        return found if found is not None and found.status in _DONE else None

    async def _skip_as_done(self, action: ParsedAction, done: ActionRecord) -> ActionRecord:
        existing = await asyncio.to_thread(self.service.store.get_action_by_key, action.key)
        if existing is not None and existing.status is ActionStatus.SKIPPED:
            return existing
        now = self.service.clock()
        record = ActionRecord(
            key=action.key,
            task_id=self.task_id,
            index=action.index,
            route=self.route,
            type=action.type,
            params=action.params_json(),
            status=ActionStatus.SKIPPED,
            created_at=now,
            updated_at=now,
            reasoning=action.reasoning,
            reason=f"{ALREADY_APPLIED} through the {done.type} tool ({done.key})",
            skipped_as=SkipKind.ALREADY_APPLIED,
            external_id=done.external_id,
            url=done.url,
        )
        return await asyncio.to_thread(self.service.store.record_action, record)

    # --- what taskyard says back ------------------------------------------------------------

    async def report_start(self) -> list[ActionRecord]:
        """A reaction (GitHub, Slack) or a short note (Linear) where the task came from."""
        start = self.reporting.start
        t = self.target
        react = (t.platform == "github" and start.github and t.number is not None) or (
            t.platform == "slack" and start.slack and t.message_ts is not None
        )
        raw: dict[str, Any] | None = None
        if react:
            raw = {"type": "react", "params": {"emoji": start.react_with}}
        elif t.platform == "linear" and start.linear and t.issue_id is not None:
            raw = {"type": "comment", "params": {"body": start.linear_text}}
        if raw is None:
            return []
        return await self._report(ReportKind.START, raw)

    async def report_end(
        self,
        status: TaskStatus,
        reason: str | None,
        summary: str | None,
        records: Sequence[ActionRecord],
        subject: str | None = None,
        kind: str | None = None,
    ) -> list[ActionRecord]:
        """The summary (when the task's own actions posted nothing there) or the failure, in
        plain words, where the task came from; then the notification channel, if any."""
        out: list[ActionRecord] = []
        succeeded = status is TaskStatus.SUCCEEDED
        text = None
        # What the task said there: its result's actions and its tool calls alike.
        stored = await asyncio.to_thread(self.service.store.actions_of, self.task_id)
        said = _posted([*records, *stored])
        denied = [r for r in stored if r.skipped_as is SkipKind.DENIED and not is_report(r.index)]
        if succeeded and denied:  # a denial is always reported, with the summary
            refused = "; ".join(f"{r.type} ({r.reason})" for r in denied)
            text = f"**taskyard** ({self.route}): {(summary or 'done').strip()}"
            text += f"\n\nNot applied: {refused}."
        elif succeeded and self.reporting.summary and summary and not said:
            text = f"**taskyard** ({self.route}): {summary.strip()}"
        elif not succeeded and self.reporting.failures:
            said_why = plain_reason(status, reason, kind)
            text = f"**taskyard** could not finish {self.route}. {said_why}"
        if text is not None and self._can_post_at_source():
            raw = {"type": "comment", "params": {"body": self._safe(text)}}
            out.extend(await self._report(ReportKind.END, raw))
        channel = self.reporting.notify_channel
        if channel:
            what = subject or self.target.platform
            if succeeded:
                note = f"✅ {self.route} finished for {what}: {summary or 'done'}"
            else:
                note = f"❌ {self.route} failed for {what}: {plain_reason(status, reason)}"
            raw = {"type": "post_channel", "params": {"text": self._safe(note), "channel": channel}}
            out.extend(await self._report(ReportKind.NOTIFY, raw))
        return out

    async def report_waiting(self, text: str, subject: str | None = None) -> list[ActionRecord]:
        """That the task waits, and why (`text`), where it came from (a comment or thread
        reply) and on the notification channel. The same text for the same task is one
        action (its idempotency key): telling it again posts nothing."""
        out: list[ActionRecord] = []
        if self._can_post_at_source():
            body = self._safe(f"**taskyard** ({self.route}): {text}")
            out.extend(
                await self._report(ReportKind.WAIT, {"type": "comment", "params": {"body": body}})
            )
        channel = self.reporting.notify_channel
        if channel:
            note = self._safe(f"⏸ {self.route} waits for {subject or self.target.platform}: {text}")
            raw = {"type": "post_channel", "params": {"text": note, "channel": channel}}
            out.extend(await self._report(ReportKind.WAIT_NOTIFY, raw))
        return out

    def _can_post_at_source(self) -> bool:
        t = self.target
        return bool(
            (t.platform == "github" and t.repo and t.number is not None)
            or (t.platform == "linear" and t.issue_id)
            or (t.platform == "slack" and t.channel)
        )

    def _safe(self, text: str) -> str:
        return _clip(redact(text, self.service.secrets))

    async def _report(self, kind: ReportKind, raw: Mapping[str, Any]) -> list[ActionRecord]:
        action = parse_action(self.task_id, int(kind), raw)
        try:
            records = await self._apply([action], _Reports())
        except Exception:  # a report must never change how the task ends
            log.exception("report failed", extra={"task_id": self.task_id})
            return []
        for record in records:
            if record.status is ActionStatus.FAILED:
                log.warning(
                    "report not delivered",
                    extra={"task_id": self.task_id, "action": record.type, "reason": record.reason},
                )
        return records


_OUTCOME_REF = re.compile(r"\{\{\s*actions\.(\d+)\.(url|id)\s*\}\}")


def _with_outcomes(action: ParsedAction, earlier: Sequence[ActionRecord]) -> ParsedAction:
    """`action` with each `{{actions.N.url|id}}` in its text params replaced by what action N
    created (its URL or id); a reference to nothing is left as it is. The key stays the one
    of the params as proposed."""
    by_index = {r.index: r for r in earlier}

    def fill(match: re.Match[str]) -> str:
        record = by_index.get(int(match.group(1)))
        if record is None:
            return match.group(0)
        value = record.url if match.group(2) == "url" else record.external_id
        return value or match.group(0)

    changes = {
        name: _OUTCOME_REF.sub(fill, value)
        for name, value in action.params
        if isinstance(value, str) and _OUTCOME_REF.search(value)
    }
    if not changes:
        return action
    return replace(action, params=action.params.model_copy(update=changes))


def _posted(records: Sequence[ActionRecord]) -> bool:
    """Whether one of the agent's actions (not taskyard's own reports) posted a message where
    the task came from."""
    return any(
        not is_report(r.index) and r.type in _POSTS_AT_SOURCE and r.status in _DONE for r in records
    )


def outcome_of(records: Sequence[ActionRecord], dry_run: bool) -> tuple[TaskStatus, str | None]:
    """How a task stands after applying its actions: waiting for a person while any action
    is; else failed when any failed (in a dry run, where nothing was attempted, only when
    none of the agent's actions could be planned); else expired when an approval expired;
    else succeeded."""
    waiting = [r for r in records if r.status is ActionStatus.AWAITING_APPROVAL]
    if waiting:
        return TaskStatus.AWAITING_APPROVAL, "waiting for approval: " + "; ".join(
            f"{r.type} ({action_kind(r.index)})" for r in waiting
        )
    failed = _dry_run_failures(records) if dry_run else failures_of(records)
    if failed:
        return TaskStatus.FAILED, failed
    expired = [r for r in records if r.status is ActionStatus.EXPIRED]
    if expired:
        return TaskStatus.EXPIRED, "approval expired, not applied: " + "; ".join(
            f"{r.type} ({action_kind(r.index)})" for r in expired
        )
    return TaskStatus.SUCCEEDED, None


def _dry_run_failures(records: Sequence[ActionRecord]) -> str | None:
    """A dry run's reason to fail: the agent proposed actions, some failed and none could
    be planned (the run shows nothing of what a live run would send)."""
    proposed = [r for r in records if not is_report(r.index)]
    if any(r.status is not ActionStatus.FAILED for r in proposed):
        return None
    failed = failures_of(proposed)
    return None if failed is None else f"dry run: no action could be planned; {failed}"


def failures_of(records: Sequence[ActionRecord]) -> str | None:
    """The task's reason when some of its actions failed (`actions: …`), else None."""
    failed = [r for r in records if r.status is ActionStatus.FAILED]
    if not failed:
        return None
    parts = [f"{r.type} ({action_kind(r.index)}) failed: {r.reason}" for r in failed]
    return "actions: " + "; ".join(parts)
