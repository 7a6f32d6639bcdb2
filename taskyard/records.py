"""What taskyard keeps of actions and approvals, beside `taskyard.models`: each proposed action
with its status and outcome; each approval request, its decision, and every attempt to decide.

A request is `pending` until exactly one of: `approved`, `denied` (by a person allowed to
decide) or `expired` (nobody decided before `expires_at`: never counted as a denial). A
decision is taken in one conditional update, so of two racing decisions exactly one wins;
every attempt, accepted or refused, is kept as a `DecisionAttempt`. The rules every store
applies to them (`refusal`, `check_decision`, `channel_matches`) are written here once.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field, replace
from typing import Any


class SkipKind(enum.StrEnum):
    """Why an action was `skipped`."""

    INVALID = "invalid"  # unknown type or invalid params
    NOT_ALLOWED = "not_allowed"  # the route's allow-list or the risk rules refuse it
    NO_APPROVALS = "no_approvals"  # it needs approval and approvals are not set up
    DENIED = "denied"  # a person denied it
    ALREADY_APPLIED = "already_applied"  # a tool call of the same task applied it


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
# `taskyard.actions.service`): 0..n-1 the result's actions, TOOL_INDEX a tool call the agent
# made, and a negative one each of taskyard's own reports (`ReportKind`).
TOOL_INDEX = 1000


class ReportKind(enum.IntEnum):
    """taskyard's own reports, each stored under its own (negative) action index."""

    START = -1  # the start reaction or note,
    END = -2  # the summary or failure where the task came from,
    NOTIFY = -3  # the notification channel's message,
    WAIT = -4  # that the task waits for the budget,
    WAIT_NOTIFY = -5  # and the same in the notification channel


_KINDS: dict[int, str] = {
    TOOL_INDEX: "tool call",
    ReportKind.START: "report: started",
    ReportKind.END: "report: outcome",
    ReportKind.NOTIFY: "report: notify channel",
    ReportKind.WAIT: "report: waiting",
    ReportKind.WAIT_NOTIFY: "report: waiting (notify channel)",
}


def is_report(index: int) -> bool:
    """Whether the action at `index` is one of taskyard's reports (`ReportKind`), not one an
    agent proposed (its result's or a tool call)."""
    return index < 0


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
    skipped_as: SkipKind | None = None  # why, when `skipped` (the reason says it in words)


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


def decided_json(outcome: DecisionOutcome) -> dict[str, Any]:
    """What a decision did, as the API and `taskyard approvals approve|deny --json` answer."""
    return {
        "id": outcome.approval.id,
        "accepted": outcome.accepted,
        "status": str(outcome.approval.status),
        "why": outcome.why,
        "task_resumed": outcome.resumed,
    }


# What an accepted decision sets a request to; MORE_INFO keeps it pending.
DECIDED_AS = {Decision.APPROVE: ApprovalStatus.APPROVED, Decision.DENY: ApprovalStatus.DENIED}
EXPIRY_ACTOR = "taskyard"
EXPIRY_VIA = "expiry"


def refusal(a: Approval, now: float) -> str:
    """Why a decision on `a` does not count at `now`."""
    if a.status is ApprovalStatus.EXPIRED or (
        a.status is ApprovalStatus.PENDING and a.expires_at <= now
    ):
        return f"expired at {iso(a.expires_at)}"
    if a.status.decided and a.decided_by is not None:
        return f"already {a.status} by {a.decided_by} ({a.decided_via})"
    return "not pending"


def check_decision(decision: Decision) -> None:
    if decision is Decision.EXPIRE:
        raise ValueError("decide_approval: only the expiry sweep expires a request")


def channel_matches(a: Approval, platform: str, key: str, value: str) -> bool:
    """`a.channels[platform][key] == value` (a number stored for an id matches its text)."""
    posted = a.channels.get(platform)
    if not isinstance(posted, dict) or key not in posted:
        return False
    found = posted[key]
    return found == value or (isinstance(found, int) and str(found) == value)


class FixStatus(enum.StrEnum):
    """queued → running → done, one running at a time per pull request; or refused, never
    run (a bound of `FixLimits` said no)."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class FixLimits:
    """How often and at what cost a pull request may be fixed (`changes:` in the config)."""

    attempts_per_comment: int = 3
    fixes_per_pr_per_hour: int = 5
    cost_ceiling_per_pr_usd: float = 3.0


@dataclass(frozen=True, slots=True)
class Fix:
    """One request to fix a pull request (`pr`, like `github:acme/api#12`), triggered by one
    comment and run as one task. Queued fixes of a PR start oldest first (`created_at`, then
    `id`); `reason` says in words why a refused one was refused."""

    id: str
    pr: str
    comment_id: str
    task_id: str
    status: FixStatus
    created_at: float
    reason: str | None = None
    cost_usd: float | None = None  # what its run cost, once finished
    started_at: float | None = None
    finished_at: float | None = None


@dataclass(frozen=True, slots=True)
class FixAdmission:
    """What `request_fix` decided: `fix` as stored, queued when admitted, else refused."""

    fix: Fix

    @property
    def admitted(self) -> bool:
        return self.fix.status is FixStatus.QUEUED

    @property
    def reason(self) -> str | None:
        return self.fix.reason


FIX_WINDOW_SECONDS = 3600.0  # `FixLimits.fixes_per_pr_per_hour` counts fixes this recent


def check_finish(status: FixStatus) -> None:
    """A fix finishes as done (it ran) or refused (dropped before it ran), nothing else."""
    if status not in (FixStatus.DONE, FixStatus.REFUSED):
        raise ValueError(f"finish_fix: a fix finishes as done or refused, not {status}")


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, … 11th, 12th, 13th, … 21st: how refusals count attempts."""
    if 10 <= n % 100 <= 20:
        return f"{n}th"
    return f"{n}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th') }"


def fix_refusal(
    pr: str, comment_id: str, on_comment: int, in_window: int, spent: float, limits: FixLimits
) -> str | None:
    """Why one more fix of `pr` for `comment_id` is refused, or None when it may queue.
    `on_comment` and `in_window` count the admitted fixes (of the comment; of the PR within
    the last hour), `spent` is the PR's cost so far: refused ones never count."""
    if on_comment >= limits.attempts_per_comment:
        return (
            f"the {ordinal(on_comment + 1)} attempt on comment {comment_id}: "
            f"at most {limits.attempts_per_comment}"
        )
    if in_window >= limits.fixes_per_pr_per_hour:
        return (
            f"the {ordinal(in_window + 1)} fix on {pr} within an hour: "
            f"at most {limits.fixes_per_pr_per_hour}"
        )
    if spent >= limits.cost_ceiling_per_pr_usd:
        return f"{pr} has spent ${spent:.2f} of its ${limits.cost_ceiling_per_pr_usd:.2f} ceiling"
    return None


class CiOutcome(enum.StrEnum):
    """What one failing check on a pull request's head came to (`Store.request_ci_fix`)."""

    FIX = "fix"  # the model is asked to fix it: a fix was queued
    RERUN = "rerun"  # the check failed again on a head it was already fixed on: flaky, not
    # the model's to retry (counted apart from fixes)
    REFUSED = "refused"  # not a head taskyard pushed, the head's fixes are spent, or a bound


CI_FIXES_PER_HEAD = 3  # fixes asked of the model for the failing checks of one head commit


@dataclass(frozen=True, slots=True)
class CiFailure:
    """One failing check (`check`: its name) on `head_sha` of `pr`, as routing met it for
    task `task_id` (the task that runs the fix; stored only when `outcome` is FIX)."""

    id: str
    pr: str
    head_sha: str
    check: str
    outcome: CiOutcome
    task_id: str
    at: float
    fix_id: str | None = None
    reason: str | None = None


def ci_verdict(
    failure: CiFailure, pushed: bool, fixes_on_head: int, check_fixed: bool
) -> tuple[CiOutcome, str] | None:
    """What a failing check comes to before the PR's own bounds (`fix_refusal`), or None
    when it may ask for a fix: a check already fixed on this head failing again is a flaky
    rerun, not the model's to retry; taskyard fixes only heads it pushed, at most
    `CI_FIXES_PER_HEAD` times each. `fixes_on_head` counts the head's CI fixes so far."""
    head = failure.head_sha[:12]
    if check_fixed:
        return CiOutcome.RERUN, f"{failure.check} failed again on {head}, already fixed there"
    if not pushed:
        return CiOutcome.REFUSED, f"taskyard did not push {head} to {failure.pr}"
    if fixes_on_head >= CI_FIXES_PER_HEAD:
        return CiOutcome.REFUSED, (
            f"the {ordinal(fixes_on_head + 1)} fix for failing checks on {head}: "
            f"at most {CI_FIXES_PER_HEAD} per head"
        )
    return None


def ci_fixed(failure: CiFailure, fix: Fix) -> CiFailure:
    """The failing check as its fix was admitted: a fix the PR's bounds refused refuses it."""
    if fix.status is FixStatus.REFUSED:
        return replace(failure, outcome=CiOutcome.REFUSED, reason=fix.reason, fix_id=fix.id)
    return replace(failure, outcome=CiOutcome.FIX, reason=None, fix_id=fix.id)


def ci_comment_id(check: str, head_sha: str) -> str:
    """What a CI fix stores as its `Fix.comment_id`: the check and head that asked for it."""
    return f"check:{check}@{head_sha}"
