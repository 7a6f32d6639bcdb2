"""What the store keeps of each proposed action: its status and its outcome."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class ActionStatus(enum.StrEnum):
    """proposed (recorded before sending: in flight) → applied | failed;
    or skipped (invalid, refused by the policy, or denied by a person) or dry_run (planned,
    not sent); awaiting_approval (a person must decide first) → applied | skipped | expired."""

    PROPOSED = "proposed"
    APPLIED = "applied"
    SKIPPED = "skipped"
    FAILED = "failed"
    DRY_RUN = "dry_run"
    AWAITING_APPROVAL = "awaiting_approval"
    EXPIRED = "expired"  # its approval request expired: not applied (never "denied")


# Where an action came from is its index (part of its idempotency key; see
# `taskyard.actions.service`): 0..n-1 the result's actions, these for the rest.
TOOL_INDEX = 1000  # a tool call the agent made
START_INDEX = -1  # taskyard's reports: the start reaction or note,
END_INDEX = -2  # the summary or failure where the task came from,
NOTIFY_INDEX = -3  # the notification channel's message,
WAIT_INDEX = -4  # that the task waits for the budget,
WAIT_NOTIFY_INDEX = -5  # and the same in the notification channel
_KINDS: dict[int, str] = {
    TOOL_INDEX: "tool call",
    START_INDEX: "report: started",
    END_INDEX: "report: outcome",
    NOTIFY_INDEX: "report: notify channel",
    WAIT_INDEX: "report: waiting",
    WAIT_NOTIFY_INDEX: "report: waiting (notify channel)",
}


def action_kind(index: int) -> str:
    """How people see where an action came from: `#0` for the result's first action, `tool
    call`, or the kind of taskyard's own report (`report: started`, `report: outcome`, …)."""
    return _KINDS.get(index, f"#{index}")


@dataclass(frozen=True, slots=True)
class ActionRecord:
    """One proposed action of one task, keyed by its idempotency key.

    `requests` are the planned requests as JSON (`PlannedRequest.to_json()`); `sent` counts
    the leading ones the platform confirmed; `in_doubt` is True while request number `sent`
    may have reached the platform without its answer being recorded (a crash, a timeout).
    """

    key: str
    task_id: str
    index: int
    route: str
    type: str
    params: dict[str, Any]
    status: ActionStatus
    created_at: float
    updated_at: float
    reasoning: str = ""
    reason: str | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)
    sent: int = 0
    in_doubt: bool = False
    attempts: int = 0
    external_id: str | None = None
    url: str | None = None
