"""Where approval requests are posted and decisions come from: one `Channel` per platform.

A channel does three things, all through taskyard's own platform clients (never an agent):

- `announce(approval)`: post the request (a Linear issue under the hub issue, a comment on
  the pull request, a Slack message with buttons) and return what identifies the post (stored
  in `approval.channels[channel.name]`, so a decision arriving there finds the request);
- `decision_in(event, payload)`: read a verified, stored delivery; if it is a decision on a
  request (a `/approve` comment, a state change of the approval issue, a button press), say
  which request (`Lookup`), what was decided and by whom;
- `decided(approval, outcome)`: tell the channel what happened (the result on the pull
  request, the Slack message updated, a refusal explained).

`ApprovalChannels` (taskyard/approvals/channels/__init__.py) runs them: announces on every
channel not yet announced on (idempotent: the refs are stored), and intercepts decision
events before routing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from taskyard.approvals.policies import Identity
from taskyard.approvals.records import Approval, Decision, DecisionOutcome
from taskyard.models import Event


@dataclass(frozen=True, slots=True)
class Lookup:
    """How to find the request a decision is about: by its id, or by what a channel stored
    when it announced it (`approval.channels[platform][key] == value`)."""

    approval_id: str | None = None
    platform: str | None = None
    key: str | None = None
    value: str | None = None


@dataclass(frozen=True, slots=True)
class DecisionRequest:
    """A decision read from a delivery. `reply_to` is the channel's own data for answering
    (e.g. the Slack response_url or the PR to comment on) when the request is not found."""

    lookup: Lookup
    decision: Decision
    who: Identity
    reason: str | None = None
    reply_to: Mapping[str, Any] | None = None


class Channel(Protocol):
    name: str  # "linear" | "github" | "slack"

    def wants(self, approval: Approval) -> bool:
        """Whether this request should be posted here (e.g. GitHub: the task came from a pull
        request or issue; Linear: a hub issue is configured)."""
        ...

    async def announce(self, approval: Approval) -> Mapping[str, Any]:
        """Post the request; return the reference to store. Raises PlatformError."""
        ...

    def decision_in(self, event: Event, payload: Mapping[str, Any]) -> DecisionRequest | None:
        """The decision this delivery carries, if it is one."""
        ...

    async def remind(self, approval: Approval, text: str) -> None:
        """Remind the deciders where the request was posted (the policy's `remind_at`)."""
        ...

    async def decided(
        self, approval: Approval, outcome: DecisionOutcome, request: DecisionRequest | None
    ) -> None:
        """Say on this channel what came of a decision (`request`: the one made here, if it
        was made here; None when it was made elsewhere and only the outcome is told)."""
        ...
