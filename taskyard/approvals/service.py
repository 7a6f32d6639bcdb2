"""Approvals assembled from the settings, and the sweep that expires and reminds.

`Approvals.from_settings` loads the risk rules and approval policies (the shipped defaults
when the config names no files) and builds the policy, the gate and the decisions over one
store. `Sweeper` runs in every worker: requests past `expires_at` become `expired` (never
`denied`) and their tasks are handed back to finish; requests past `remind_at` are
reminded once (to the policy's `escalate_to` role).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from taskyard.actions.policy import AllowListPolicy
from taskyard.approvals.channels import ApprovalChannels, Channel
from taskyard.approvals.channels.build import channels_of_their_own
from taskyard.approvals.gate import Announce, Decisions, RiskPolicy, StoreGate
from taskyard.approvals.policies import ApprovalPolicies, Identity
from taskyard.approvals.risk import RiskRules
from taskyard.config import Settings
from taskyard.exceptions import StoreError, TaskyardError
from taskyard.lifecycle import Kind, workflow_id
from taskyard.models import new_id
from taskyard.records import Approval, ApprovalStatus, Decision, DecisionAttempt, DecisionOutcome
from taskyard.store.base import Store

log = logging.getLogger(__name__)


class NotResubmitted(TaskyardError):
    """A request cannot be asked again: it is not expired, or its task waits no more."""


@dataclass
class Approvals:
    policy: RiskPolicy
    gate: StoreGate
    decisions: Decisions
    channels: ApprovalChannels | None = None
    settings: Settings | None = None  # to open channels of their own (`tell_apart`)

    def post_to(self, channels: Sequence[Channel]) -> ApprovalChannels:
        """Announce requests on `channels`, and tell them of decisions made here."""
        posting = ApprovalChannels(self.gate.store, self.decisions, channels)
        self.channels = posting
        self.gate.announce = posting.announce
        return posting

    async def tell_apart(self, outcome: DecisionOutcome) -> None:
        """Tell the channels of a decision, on clients of this event loop's own (the API's,
        the sweeper's, the CLI's): the job loop's clients cannot be used here."""
        if self.settings is None:
            return
        async with channels_of_their_own(self.settings, self.gate.policies) as channels:
            await ApprovalChannels(self.gate.store, self.decisions, channels).tell(outcome)

    async def remind_apart(self, approval: Approval) -> None:
        """A reminder, on clients of this event loop's own (see `tell_apart`)."""
        if self.settings is None:
            return
        async with channels_of_their_own(self.settings, self.gate.policies) as channels:
            await ApprovalChannels(self.gate.store, self.decisions, channels).remind(approval)

    async def decide_and_tell(
        self, approval_id: str, decision: Decision, who: Identity, reason: str | None = None
    ) -> DecisionOutcome:
        """Decide (NotFound for an unknown request), then, when the decision counted, say so
        on the channels the request was posted on. The decision stands even if a channel
        cannot be told: that is logged, not raised."""
        outcome = await self.decisions.decide(approval_id, decision, who, reason)
        if outcome.accepted:
            try:
                await self.tell_apart(outcome)
            except Exception:
                log.exception("approval outcome not told", extra={"approval_id": approval_id})
        return outcome

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        store: Store,
        announce: Announce | None = None,
        clock: Callable[[], float] = time.time,
        hooks: ApprovalHooks | None = None,
    ) -> Approvals:
        """Raises ConfigError for an unreadable or invalid rules or policies file. With
        `hooks.channels`, requests are announced on those channels (`announce` is then theirs)."""
        hooks = hooks or ApprovalHooks()
        config = settings.approvals
        rules = RiskRules.load(config.risk_rules)
        policies = ApprovalPolicies.load(config.policies)
        policy = RiskPolicy(
            AllowListPolicy(settings.actions.allow), rules, policies, config.environment
        )
        decisions = Decisions(
            store,
            policies,
            clock,
            wake=hooks.wake,
            resume=hooks.resume,
            on_decided=list(hooks.on_decided),
            on_refused=list(hooks.on_refused),
        )
        posting = None
        if hooks.channels is not None:
            posting = ApprovalChannels(
                store, decisions, hooks.channels(policies), wait_applied=hooks.wait_applied
            )
            announce = posting.announce
        gate = StoreGate(store, policies, announce, clock, on_created=list(hooks.on_created))
        return cls(policy, gate, decisions, posting, settings=settings)


@dataclass(frozen=True)
class ApprovalHooks:
    """What a server gives the approvals it builds: the dispatcher's nudges (`wake`, and
    `resume`, which starts a handed-back task at once), the listeners of each request created,
    decided and refused, the channels requests are posted on (built from the policies), and
    what those channels wait on before they say a decision was taken."""

    wake: Callable[[], None] | None = None
    resume: Callable[[], object] | None = None
    on_created: Sequence[Callable[[Approval], None]] = ()
    on_decided: Sequence[Callable[[DecisionOutcome], None]] = ()
    on_refused: Sequence[Callable[[DecisionAttempt], None]] = ()
    channels: Callable[[ApprovalPolicies], Sequence[Channel]] | None = None
    wait_applied: Callable[[str, float], Awaitable[object]] | None = None


def resubmit(store: Store, approval_id: str, now: float) -> Approval:
    """Ask again for an expired request: a new request for the same action, with as long to
    decide (and to its reminder) from `now` as the first had, and its task waits again, both
    in one write. NotFound for an unknown request; NotResubmitted when it is not expired or
    its task is in no state to wait again (nothing is then written)."""
    old = store.get_approval(approval_id)
    if old.status is not ApprovalStatus.EXPIRED:
        raise NotResubmitted(
            f"approval {old.id} is {old.status}; only an expired request is resubmitted"
        )
    stored = store.resubmit_approval(
        _asked_again(old, now),
        lambda waits_for: f"waiting for approval {waits_for} (resubmitted)",
        now,
    )
    if stored is None:
        raise NotResubmitted(f"task {old.task_id} is no longer waiting for this action")
    return stored


def _asked_again(old: Approval, now: float) -> Approval:
    """A new pending request like `old`, its times moved to start at `now`."""
    return dataclasses.replace(
        old,
        id=new_id(),
        status=ApprovalStatus.PENDING,
        created_at=now,
        expires_at=now + (old.expires_at - old.created_at),
        remind_at=None if old.remind_at is None else now + (old.remind_at - old.created_at),
        reminded_at=None,
        channels={},
        question=None,
        decided_at=None,
        decided_by=None,
        decided_via=None,
        reason=None,
        archived=False,
    )


@dataclass
class Sweeper:
    store: Store
    interval: float
    clock: Callable[[], float] = time.time
    wake: Callable[[], None] | None = None
    on_expired: list[Callable[[Approval], None]] = field(default_factory=list)
    on_remind: list[Callable[[Approval], None]] = field(default_factory=list)
    # Told of each expiry after the sweep (the channels say it where the request was posted).
    tell: Callable[[DecisionOutcome], Awaitable[None]] | None = None
    # Posts a reminder where the request is (the channels).
    remind: Callable[[Approval], Awaitable[None]] | None = None
    reminding: list[Approval] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None

    def sweep(self) -> list[Approval]:
        """Expire what is due and mark what is due for a reminder; return the expired
        requests (the reminders wait in `self.reminding` for the loop to post them)."""
        now = self.clock()
        expired = self.store.expire_approvals(now, _resumed)
        for approval in expired:
            log.warning(
                "approval expired",
                extra={"approval_id": approval.id, "task_id": approval.task_id},
            )
            for listener in self.on_expired:
                listener(approval)
        for approval in self.store.due_reminders(now):
            self.store.mark_reminded(approval.id, now)
            self.reminding.append(approval)
            for remind in self.on_remind:
                remind(approval)
        if expired and self.wake is not None:
            self.wake()
        return expired

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            try:
                expired = await asyncio.to_thread(self.sweep)
                if self.tell is not None:
                    for approval in expired:
                        await self.tell(DecisionOutcome(True, approval))
                due, self.reminding = self.reminding, []
                if self.remind is not None:
                    for approval in due:
                        await self.remind(approval)
            except StoreError as exc:
                log.error("approval sweep failed; will retry", extra={"error": str(exc)})
            except Exception:  # the sweep must outlive any one failure
                log.exception("approval sweep failed unexpectedly; will retry")
            await asyncio.sleep(self.interval)


def _resumed(task_id: str) -> str:
    """The workflow id of a task handed back to a worker (its request expired)."""
    return workflow_id(task_id, Kind.RESUME)
