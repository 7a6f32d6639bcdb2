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

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from taskyard.approvals.policies import Identity
from taskyard.models import Event
from taskyard.records import Approval, Decision, DecisionOutcome

APPROVAL_ID = re.compile(r"[0-9a-f]{32}")  # taskyard.models.new_id: 12 hex clock + 20 random
_COMMAND = re.compile(r"/(?P<verb>[A-Za-z][A-Za-z-]*)(?:[ \t]+(?P<rest>.*))?")
_VERBS = {
    "approve": Decision.APPROVE,
    "deny": Decision.DENY,
    "question": Decision.MORE_INFO,
    "more-info": Decision.MORE_INFO,
}


@dataclass(frozen=True, slots=True)
class Command:
    """A decision comment (GitHub, Linear), read: its first (non-blank) line is

        /approve [APPROVAL-ID] [reason…]
        /deny [APPROVAL-ID] <reason…>
        /question [APPROVAL-ID] <question…>      (or /more-info)

    in any case; the reason is the rest of that line and the lines after it."""

    decision: Decision
    approval_id: str | None = None
    reason: str | None = None


def parse_command(body: str) -> Command | None:
    """The decision a comment's first (non-blank) line makes, or None when it makes none."""
    text = body.replace("\r\n", "\n").strip()
    first, _, more = text.partition("\n")
    found = _COMMAND.fullmatch(first.strip())
    decision = _VERBS.get(found["verb"].lower()) if found else None
    if found is None or decision is None:
        return None
    rest = (found["rest"] or "").strip()
    head, *tail = rest.split(None, 1) or [""]
    approval_id = None
    if APPROVAL_ID.fullmatch(head.lower()):
        approval_id, rest = head.lower(), "".join(tail)
    reason = f"{rest.strip()}\n{more}".strip()
    return Command(decision, approval_id, reason or None)


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
    # A delivery that may just as well not be a decision (a Linear comment starting with
    # `/approve` on any issue): when it finds no request, it is routed as usual.
    only_if_known: bool = False
    # When the decider wrote it (epoch seconds, the platform's clock). A decision that names
    # no request never decides one created after it: the decider cannot have seen that one.
    made_at: float | None = None


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
