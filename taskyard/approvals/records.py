"""What the store keeps of approvals: each request, its decision, and every attempt to decide.

A request is `pending` until exactly one of: `approved`, `denied` (by a person allowed to
decide) or `expired` (nobody decided before `expires_at`: never counted as a denial). A
decision is taken in one conditional update, so of two racing decisions exactly one wins;
every attempt, accepted or refused, is kept as a `DecisionAttempt`.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from typing import Any


class ApprovalStatus(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    EXPIRED = "expired"

    @property
    def decided(self) -> bool:
        return self is not ApprovalStatus.PENDING


@dataclass(frozen=True, slots=True)
class Approval:
    """One request for a person's decision on one gated action of one task.

    `details`: what the approver needs (the action's params and reasoning, the exact requests
    it would send, the checklist, the roles that may decide, links). `channels`: where the
    request was posted (`{"linear": {"issue_id", "url"}, "github": {"repo", "number",
    "comment_id", "url"}, "slack": {"channel", "ts"}}`), to find it again from a decision.
    """

    id: str
    task_id: str
    action_key: str
    route: str
    action_type: str
    risk: str  # low | medium | high | critical
    rule: str  # the risk rule that matched (its name), the reason for the risk
    summary: str  # one line: what would change where
    details: dict[str, Any]
    status: ApprovalStatus
    created_at: float
    expires_at: float
    channels: dict[str, Any] = field(default_factory=dict)
    remind_at: float | None = None  # when to remind (escalate), if the policy says so
    reminded_at: float | None = None
    question: str | None = None  # the last "more information required" question
    decided_at: float | None = None
    decided_by: str | None = None  # "github:octocat", "slack:U123", "cli:alice", …
    decided_via: str | None = None  # linear | github | slack | cli | web | expiry
    reason: str | None = None  # the decider's reason (a denial's, or a justification)
    archived: bool = False


class Decision(enum.StrEnum):
    APPROVE = "approve"
    DENY = "deny"
    MORE_INFO = "more_info"
    EXPIRE = "expire"


@dataclass(frozen=True, slots=True)
class DecisionAttempt:
    """Someone (or the expiry sweep) tried to decide a request; `accepted` says whether it
    counted, `why` why not (or the decider's reason when it did)."""

    approval_id: str
    at: float
    via: str
    actor: str
    decision: Decision
    accepted: bool
    why: str | None = None


@dataclass(frozen=True, slots=True)
class DecisionOutcome:
    accepted: bool
    approval: Approval  # as stored after the attempt
    why: str | None = None  # refused: "already approved by … ", "expired at …"
    resumed: bool = False  # the task was handed back to apply its actions


def iso(ts: float | None) -> str | None:
    """A timestamp as the CLI, the API and refusal reasons show it (UTC, ISO 8601)."""
    return None if ts is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def approval_json(a: Approval) -> dict[str, Any]:
    """An approval as the CLI (`--json`) and the API show it."""
    return {
        "id": a.id,
        "task_id": a.task_id,
        "action_key": a.action_key,
        "route": a.route,
        "action_type": a.action_type,
        "risk": a.risk,
        "rule": a.rule,
        "summary": a.summary,
        "status": str(a.status),
        "created_at": iso(a.created_at),
        "expires_at": iso(a.expires_at),
        "decided_at": iso(a.decided_at),
        "decided_by": a.decided_by,
        "decided_via": a.decided_via,
        "reason": a.reason,
        "question": a.question,
        "channels": a.channels,
        "details": a.details,
    }
