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
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from taskyard.actions.policy import AllowListPolicy
from taskyard.approvals.channels import ApprovalChannels, Channel
from taskyard.approvals.channels.build import channels_of_their_own
from taskyard.approvals.gate import Announce, Decisions, RiskPolicy, StoreGate, workflow_for
from taskyard.approvals.policies import ApprovalPolicies
from taskyard.approvals.risk import RiskRules
from taskyard.config import Settings
from taskyard.exceptions import StoreError
from taskyard.records import Approval, DecisionOutcome
from taskyard.store.base import Store

log = logging.getLogger(__name__)


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

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        store: Store,
        announce: Announce | None = None,
        clock: Callable[[], float] = time.time,
    ) -> Approvals:
        """Raises ConfigError for an unreadable or invalid rules or policies file."""
        config = settings.approvals
        rules = RiskRules.load(config.risk_rules)
        policies = ApprovalPolicies.load(config.policies)
        policy = RiskPolicy(
            AllowListPolicy(settings.actions.allow), rules, policies, config.environment
        )
        gate = StoreGate(store, policies, announce, clock)
        return cls(policy, gate, Decisions(store, policies, clock), settings=settings)


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
        expired = self.store.expire_approvals(now, workflow_for)
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
