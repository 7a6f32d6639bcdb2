"""The risk-based policy, the gate where gated actions wait, and the decisions that open it.

- `RiskPolicy` (an `ActionPolicy`): the route's allow-list still says what a route may never
  do; what it may do is assessed by the risk rules, and the approval policy of the risk level
  says whether a person must approve it (`Verdict.ASK`) or not (`Verdict.ALLOW`).
- `StoreGate` (an `ApprovalGate`): creates the request (one pending per action), with its
  expiry from the policy, and announces it on the configured channels.
- `Decisions`: every way a decision arrives (Linear, GitHub, Slack, CLI, API) ends here: the
  decider's role is checked, and that they did not trigger the task themselves (unless the
  level allows self-approval: `taskyard.approvals.duties`), then the store takes the
  decision in one conditional update (of two racing decisions exactly one wins) and hands the
  task back to a worker.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from taskyard.actions.models import ParsedAction, Target
from taskyard.actions.policy import AllowListPolicy, Assessment, Verdict
from taskyard.approvals.duties import SELF_APPROVAL, Trigger, trigger_of
from taskyard.approvals.policies import ApprovalPolicies, Identity
from taskyard.approvals.risk import RiskLevel, RiskRules, subject_of
from taskyard.lifecycle import Kind, workflow_id
from taskyard.models import new_id
from taskyard.platforms.writes import PlannedRequest
from taskyard.records import (
    Approval,
    ApprovalStatus,
    Decision,
    DecisionAttempt,
    DecisionOutcome,
)
from taskyard.store.base import Store

log = logging.getLogger(__name__)

Announce = Callable[[Approval], Awaitable[Approval]]
Listener = Callable[[Approval], None]


@dataclass(frozen=True, slots=True)
class RiskPolicy:
    allow: AllowListPolicy
    rules: RiskRules
    policies: ApprovalPolicies
    environment: str | None = None

    def assess(self, route: str, action: ParsedAction, target: Target) -> Assessment:
        listed = self.allow.assess(route, action, target)
        if not listed.allowed:
            return listed
        risk = self.rules.assess(subject_of(action, target, self.environment))
        level = RiskLevel(risk.level)
        if not self.policies.policy_for(level).approval:
            return Assessment(Verdict.ALLOW, risk=str(level), rule=risk.rule)
        why = f"{level} risk ({risk.rule}) needs a person's approval"
        return Assessment(Verdict.ASK, why, risk=str(level), rule=risk.rule)


def summary_of(action: ParsedAction, requests: Sequence[PlannedRequest]) -> str:
    said = "; ".join(r.description for r in requests if r.description)
    return f"{action.type}: {said}" if said else action.type


@dataclass(frozen=True, slots=True)
class Asked:
    """What a request asks a person to decide: the task, its route, the key of what is asked
    (an action's, or a review's), its type, risk level and rule, in one line."""

    task_id: str
    route: str
    key: str
    type: str
    level: RiskLevel
    rule: str | None
    summary: str


@dataclass
class StoreGate:
    store: Store
    policies: ApprovalPolicies
    announce: Announce | None = None  # posts the request on the channels; returns it updated
    clock: Callable[[], float] = time.time
    on_created: list[Listener] = field(default_factory=list)

    async def latest(self, action: ParsedAction) -> Approval | None:
        return await asyncio.to_thread(self.store.latest_approval_for, action.key)

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
        """A dry run's request (`approvals.in_dry_run`) is marked `details.dry_run` and not
        announced: it is decided with the CLI or the web UI / API, which need no token."""
        details = {
            "params": action.params_json(),
            "reasoning": action.reasoning,
            "requests": [r.to_json() for r in requests],
            "target": _target_json(target),
        }
        level = RiskLevel(assessment.risk or RiskLevel.MEDIUM)
        summary = summary_of(action, requests)
        asked = Asked(task_id, route, action.key, action.type, level, assessment.rule, summary)
        return await self.ask(asked, details, dry_run=dry_run)

    async def ask(
        self, asked: Asked, details: Mapping[str, Any], *, dry_run: bool = False
    ) -> Approval:
        """Store a request for a person's decision on `asked` (an action, or a change task's
        review: `taskyard.run.personreview`), with the policy of its risk level, and announce
        it on the channels (not a dry run's)."""
        policy = self.policies.policy_for(asked.level)
        began = time.perf_counter()
        now = self.clock()
        remind = None if policy.remind_at is None else now + policy.timeout * policy.remind_at
        approval = Approval(
            id=new_id(),
            task_id=asked.task_id,
            action_key=asked.key,
            route=asked.route,
            action_type=asked.type,
            risk=str(asked.level),
            rule=asked.rule or "default",
            summary=asked.summary,
            details={
                **details,
                "roles": list(policy.roles),
                "checklist": list(policy.checklist),
                "justification_required": policy.justification_required,
                **({"dry_run": True} if dry_run else {}),
            },
            status=ApprovalStatus.PENDING,
            created_at=now,
            expires_at=now + policy.timeout,
            remind_at=remind,
        )
        task_id = asked.task_id
        stored = await asyncio.to_thread(self.store.create_approval, approval)
        created = time.perf_counter()
        if self.announce is not None and not dry_run:
            try:
                stored = await self.announce(stored)
            except Exception:  # the request stands; the CLI, API and UI still reach it
                log.exception("approval announcement failed", extra={"approval_id": stored.id})
        if stored.id == approval.id:
            log.info(
                "approval requested",
                extra={
                    "approval_id": stored.id,
                    "task_id": task_id,
                    "action": asked.type,
                    "risk": stored.risk,
                    "rule": stored.rule,
                    "created_ms": round((created - began) * 1000, 2),
                    "announced_ms": round((time.perf_counter() - created) * 1000, 2),
                    "channels": sorted(stored.channels),
                },
            )
            for listener in self.on_created:
                listener(stored)
        return stored


def _target_json(target: Target) -> dict[str, object]:
    return {k: v for k, v in dataclasses.asdict(target).items() if v is not None}


@dataclass
class Decisions:
    """Takes decisions from every surface. `on_decided` listeners hear of each accepted one
    (metrics, the channels' "decided" notes). A decision that hands its task back starts it
    at once with `resume` (the local dispatcher's `dispatch_tasks`, run in a thread), or
    else nudges the dispatcher with `wake`; without either (the CLI), the next dispatcher
    look of a running server starts it."""

    store: Store
    policies: ApprovalPolicies
    clock: Callable[[], float] = time.time
    wake: Callable[[], None] | None = None
    resume: Callable[[], object] | None = None
    on_decided: list[Callable[[DecisionOutcome], None]] = field(default_factory=list)
    on_refused: list[Callable[[DecisionAttempt], None]] = field(default_factory=list)

    async def decide(
        self,
        approval_id: str,
        decision: Decision,
        who: Identity,
        reason: str | None = None,
        known: Approval | None = None,
    ) -> DecisionOutcome:
        """`known`: the request as the caller just read it (spares reading it again; the
        store's conditional update decides the race either way)."""
        if known is not None and known.id == approval_id:
            approval = known
        else:
            approval = await asyncio.to_thread(self.store.get_approval, approval_id)
        now = self.clock()
        trigger = await self._trigger(approval, decision)
        refusal = self._refusal(approval, decision, who, reason, trigger)
        if refusal is not None:
            attempt = DecisionAttempt(
                approval.id, now, who.platform, _actor(who), decision, False, refusal
            )
            await asyncio.to_thread(self.store.record_decision_attempt, attempt)
            log.warning(
                "approval decision refused",
                extra={"approval_id": approval.id, "actor": _actor(who), "why": refusal},
            )
            for listener in self.on_refused:
                listener(attempt)
            return DecisionOutcome(False, approval, refusal)
        outcome = await asyncio.to_thread(
            self.store.decide_approval,
            approval.id,
            decision,
            _actor(who),
            who.platform,
            reason,
            now,
            workflow_id(approval.task_id, Kind.RESUME),
        )
        if not outcome.accepted:
            attempt = DecisionAttempt(
                approval.id, now, who.platform, _actor(who), decision, False, outcome.why
            )
            for listener in self.on_refused:
                listener(attempt)
            return outcome
        log.info(
            "approval decided",
            extra={
                "approval_id": approval.id,
                "decision": str(decision),
                "actor": _actor(who),
                "resumed": outcome.resumed,
            },
        )
        if outcome.resumed:
            await self._hand_over(approval.task_id)
        for decided in self.on_decided:
            decided(outcome)
        return outcome

    async def _hand_over(self, task_id: str) -> None:
        if self.resume is not None:
            try:
                # Not `asyncio.to_thread`: it would carry this coroutine's context into the
                # thread, and inside a routing job that is DBOS's workflow context, in which
                # starting another workflow fails.
                await asyncio.get_running_loop().run_in_executor(None, self.resume)
                return
            except Exception as exc:  # noqa: BLE001 - the dispatcher's next look starts it
                log.warning(
                    "resumed task not started at once",
                    extra={"task_id": task_id, "error": str(exc)},
                )
        if self.wake is not None:
            self.wake()

    async def _trigger(self, approval: Approval, decision: Decision) -> Trigger | None:
        """Who triggered the task, when it matters: an approval the policy keeps from them."""
        policy = self.policies.policy_for(RiskLevel(approval.risk))
        if decision is not Decision.APPROVE or policy.allow_self_approval:
            return None
        return await asyncio.to_thread(trigger_of, self.store, approval.task_id)

    def _refusal(
        self,
        approval: Approval,
        decision: Decision,
        who: Identity,
        reason: str | None,
        trigger: Trigger | None = None,
    ) -> str | None:
        level = RiskLevel(approval.risk)
        escalated = approval.reminded_at is not None  # past the reminder: escalate_to too
        if not self.policies.may_decide(level, who, escalated=escalated):
            return f"not authorised: {_actor(who)} holds none of the roles that decide {level}"
        policy = self.policies.policy_for(level)
        if decision is Decision.APPROVE and trigger is not None and trigger.is_(who, self.policies):
            return f"{SELF_APPROVAL} ({_actor(who)} started it; {level} risk)"
        justified = bool(reason and reason.strip())
        if decision is Decision.APPROVE and policy.justification_required and not justified:
            return f"a justification is required to approve a {level} risk action"
        return None


def _actor(who: Identity) -> str:
    return f"{who.platform}:{who.id}"
