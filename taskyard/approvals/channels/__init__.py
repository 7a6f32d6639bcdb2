"""The approval channels together: announce on each, intercept decisions from any.

`ApprovalChannels.announce` is the `StoreGate`'s announce hook; `intercept` is the
`Pipeline`'s: a delivery that decides a request is consumed (it starts no route).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from taskyard.approvals.channels.base import Channel, DecisionRequest, Lookup
from taskyard.approvals.gate import Decisions
from taskyard.exceptions import NotFound, PlatformError
from taskyard.models import Event
from taskyard.records import Approval, ApprovalStatus, DecisionOutcome, channel_matches
from taskyard.store.base import Store

log = logging.getLogger(__name__)

__all__ = ["ApprovalChannels", "Channel", "DecisionRequest", "Lookup"]


@dataclass
class ApprovalChannels:
    store: Store
    decisions: Decisions
    channels: Sequence[Channel]
    # Waits (briefly) until a task a decision handed back has applied: the channels say the
    # decision was taken after the action, not at the same time (see
    # taskyard.util.loops.AppliedSignals).
    # Called with the task id and when the decision began (time.monotonic()).
    wait_applied: Callable[[str, float], Awaitable[object]] | None = None

    async def announce(self, approval: Approval) -> Approval:
        for channel in self.channels:
            if channel.name in approval.channels or not channel.wants(approval):
                continue
            try:
                ref = await channel.announce(approval)
            except PlatformError as exc:
                log.warning(
                    "approval not posted",
                    extra={"approval_id": approval.id, "channel": channel.name, "error": str(exc)},
                )
                continue
            approval = await asyncio.to_thread(
                self.store.set_approval_channels, approval.id, {channel.name: dict(ref)}
            )
        return approval

    async def intercept(self, event: Event, payload: Mapping[str, Any]) -> str | None:
        """If `event` decides a request: decide it, tell every channel, and return what
        happened in words; else None (the event is routed as usual)."""
        for channel in self.channels:
            request = channel.decision_in(event, payload)
            if request is None:
                continue
            found = await asyncio.to_thread(self._find, request.lookup)
            if not found and request.only_if_known:
                continue
            if not found:
                return f"{channel.name}: a decision on no known approval request"
            approval = found[0]
            if len(found) > 1:  # several pending where it was made, and it named none
                ids = ", ".join(f"`{a.id}`" for a in found)
                why = f"{len(found)} requests are pending here ({ids}); name the one you decide"
                await self._tell(DecisionOutcome(False, approval, why), channel, request)
                return f"{channel.name}: {request.decision} refused: {why}"
            unseen = _posted_after(approval, request)
            if unseen is not None:
                await self._tell(DecisionOutcome(False, approval, unseen), channel, request)
                return f"{channel.name}: {request.decision} refused: {unseen}"
            began = time.monotonic()
            outcome = await self.decisions.decide(
                approval.id, request.decision, request.who, request.reason, known=approval
            )
            if outcome.resumed and self.wait_applied is not None:
                await self.wait_applied(approval.task_id, began)
            await self._tell(outcome, channel, request)
            verdict = "accepted" if outcome.accepted else f"refused ({outcome.why})"
            return (
                f"approval {approval.id}: {request.decision} by "
                f"{request.who.platform}:{request.who.id} {verdict}"
            )
        return None

    async def remind(self, approval: Approval) -> None:
        """Half-way (or as the policy says) to expiry and still pending: remind the deciders,
        and the escalation role, which from now on may decide too."""
        level = self.decisions.policies.policy_for(approval.risk)
        people = list(level.roles)
        if level.escalate_to and level.escalate_to not in people:
            people.append(level.escalate_to)
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(approval.expires_at))
        text = (
            f"⏰ Reminder: approval {approval.id} ({approval.risk}: {approval.summary}) is still "
            f"waiting and expires at {when}. Who may decide now: {', '.join(people)}."
        )
        for channel in self.channels:
            if channel.name not in approval.channels:
                continue
            try:
                await channel.remind(approval, text)
            except PlatformError as exc:
                log.warning(
                    "approval reminder not posted",
                    extra={"approval_id": approval.id, "channel": channel.name, "error": str(exc)},
                )

    async def tell(self, outcome: DecisionOutcome) -> None:
        """A decision made elsewhere (CLI, API, expiry): tell the channels it was posted on."""
        await self._tell(outcome, None, None)

    async def _tell(
        self, outcome: DecisionOutcome, here: Channel | None, request: DecisionRequest | None
    ) -> None:
        for channel in self.channels:
            made_here = channel is here
            if not made_here and (
                not outcome.accepted or channel.name not in outcome.approval.channels
            ):
                continue
            try:
                await channel.decided(outcome.approval, outcome, request if made_here else None)
            except PlatformError as exc:
                log.warning(
                    "approval outcome not posted",
                    extra={
                        "approval_id": outcome.approval.id,
                        "channel": channel.name,
                        "error": str(exc),
                    },
                )

    def _find(self, lookup: Lookup) -> list[Approval]:
        """The request a decision is about: the one named; else the ones pending where it was
        made (more than one: ambiguous), else the newest posted there (decided already, which
        the decision is then told)."""
        if lookup.approval_id is not None:
            try:
                return [self.store.get_approval(lookup.approval_id)]
            except NotFound:
                return []
        if not (lookup.platform and lookup.key and lookup.value is not None):
            return []
        platform, key, value = lookup.platform, lookup.key, lookup.value
        pending = [
            a
            for a in self.store.list_approvals(ApprovalStatus.PENDING, limit=1000)
            if channel_matches(a, platform, key, value)
        ]
        if pending:
            return pending
        newest = self.store.find_approval_by_channel(platform, key, value)
        return [newest] if newest is not None else []


def _posted_after(approval: Approval, request: DecisionRequest) -> str | None:
    """Why a decision that names no request cannot be about `approval`, created after it was
    written (None when it can)."""
    if request.lookup.approval_id is not None or request.made_at is None:
        return None
    if approval.created_at <= request.made_at + 1:  # GitHub stamps whole seconds
        return None
    return (
        f"the request pending here (`{approval.id}`) was made after your comment, so it is "
        "not the one you saw; name it to decide it"
    )
