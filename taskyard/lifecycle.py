"""The task lifecycle: every way a task's row may change, written down once.

A task is created `queued` by routing. From then on it changes only by a *transition*: a named
step with the states it may start from, the state it goes to (None: its status stays), and the
columns it may set. The store applies a transition in one guarded write (`Store.transition`):
the row changes only while the task is in one of the from-states, so two writers racing (a
decision and an operator's cancel, two workers) cannot both win.

    queued ─start_attempt→ preparing ─agent_started→ running ─store_result→ applying
    applying|preparing|running ─await_approval→ awaiting_approval ─resume→ applying
    applying ─back_to_gates→ queued (a change task back from a person's review)
    queued|preparing|running|applying ─succeed|fail|time_out|cancel→ ended
    applying ─expire→ expired       awaiting_approval ─cancel_waiting→ cancelled
    ended ─retry→ queued            failed ─reapply→ applying
    queued|preparing|running ─hold_for_budget→ queued (its reason says it waits)
    expired|awaiting_approval ─resubmit→ awaiting_approval
    preparing|running ─enter_gate→ (status stays; a change task's `gate` and `gates`)
    preparing|running ─wait_for_subtasks→ waiting ─subtasks_done→ queued (the last subtask's
        end does it, in the same transaction: `rollup`)

How a task ended is its `ending` (an `EndingKind`, its own column); its `reason` is the same
thing in human words and is never parsed.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from taskyard.models import TaskStatus, new_id


class Kind(enum.StrEnum):
    START_ATTEMPT = "start_attempt"
    AGENT_STARTED = "agent_started"
    STORE_RESULT = "store_result"
    AWAIT_APPROVAL = "await_approval"
    RESUME = "resume"
    SUCCEED = "succeed"
    FAIL = "fail"
    TIME_OUT = "time_out"
    CANCEL = "cancel"
    EXPIRE = "expire"
    CANCEL_WAITING = "cancel_waiting"
    REQUEST_CANCEL = "request_cancel"
    RETRY = "retry"
    REAPPLY = "reapply"
    HOLD_FOR_BUDGET = "hold_for_budget"
    RESUBMIT = "resubmit"
    ENTER_GATE = "enter_gate"
    WAIT_FOR_SUBTASKS = "wait_for_subtasks"
    SUBTASKS_DONE = "subtasks_done"
    BACK_TO_GATES = "back_to_gates"


class Gate(enum.StrEnum):
    """The gates of a change task (a route with `mode: change`), in their order. Each one
    entered is a transition (`Kind.ENTER_GATE`, the status stays) and an audit entry; a
    needs-revision verdict goes back to the gate it reviewed (`REVISES`)."""

    PLAN = "plan"
    PLAN_REVIEW = "plan_review"
    IMPLEMENT = "implement"
    TEST = "test"
    REVIEW = "review"
    COMMIT = "commit"


GATE_ORDER = tuple(Gate)
REVISES = {Gate.PLAN_REVIEW: Gate.PLAN, Gate.REVIEW: Gate.IMPLEMENT}
# Gates a route may turn off, and only in its configuration; the others always run.
OPTIONAL_GATES = frozenset({Gate.PLAN, Gate.PLAN_REVIEW, Gate.REVIEW})


class EndingKind(enum.StrEnum):
    """How a task ended (the `ending` column). `reason` says the same in words."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"  # a failure with no more particular kind (a configuration error, …)
    CONTEXT_FAILED = "context_failed"  # gathering the event's context failed
    NO_RESULT = "no_result"  # the agent ended well but returned no result
    INVALID_RESULT = "invalid_result"  # its result did not validate
    AGENT_FAILED = "agent_failed"  # the agent exited non-zero
    AGENT_CRASHED = "agent_crashed"  # the agent was killed by a signal
    NOT_STARTED = "not_started"  # the agent could not be started
    TOOLS_FAILED = "tools_failed"  # an answer, but every tool call before it failed
    BUDGET_EXCEEDED = "budget_exceeded"  # stopped at its tool-call budget
    COST_EXCEEDED = "cost_exceeded"  # stopped at its cost ceiling
    STOPPED = "stopped"  # stopped by a limit of the run (memory, disk)
    TIMED_OUT = "timed_out"
    WORKER_LOST = "worker_lost"  # its worker died and no attempts were left
    ACTIONS_FAILED = "actions_failed"  # the agent succeeded, some of its actions failed
    INTERNAL_ERROR = "internal_error"  # a bug of taskyard's
    CANCELLED = "cancelled"
    CANCELLED_BEFORE_START = "cancelled_before_start"
    CANCELLED_WHILE_WAITING = "cancelled_while_waiting"
    APPROVAL_EXPIRED = "approval_expired"
    # A change task (`Gate`) stopped at a gate:
    TESTS_FAILED = "tests_failed"  # taskyard's run of the test commands failed
    REVIEW_REFUSED = "review_refused"  # still needs revision after the last allowed round
    CHANGE_REFUSED = "change_refused"  # a safety check or the commit's preconditions said no


# "Live": a worker runs it, or will (queued). Cancel stops these; budget holds them.
LIVE = frozenset({TaskStatus.QUEUED, TaskStatus.PREPARING, TaskStatus.RUNNING})
# Taken by a worker: an attempt is under way.
IN_ATTEMPT = frozenset({TaskStatus.PREPARING, TaskStatus.RUNNING})
# A worker holds it: an attempt, or applying its result's actions.
WORKING = IN_ATTEMPT | {TaskStatus.APPLYING}
TERMINAL = frozenset(s for s in TaskStatus if s.terminal)
# Whatever a run may end from: before its start (cancelled), during it, or while applying.
_ENDABLE = LIVE | {TaskStatus.APPLYING}
# Set by a transition that runs the task afresh (retry, reapply): what the last run left.
_AFRESH = {
    "reason": None,
    "ending": None,
    "dispatched": False,
    "cancel_requested": False,
    "finished_at": None,
    "process": None,
}
_ENDED_FIELDS = frozenset(
    {"reason", "ending", "finished_at", "usage", "cost_usd", "result", "workspace"}
)


@dataclass(frozen=True, slots=True)
class Transition:
    kind: Kind
    sources: frozenset[TaskStatus]
    target: TaskStatus | None  # None: the status stays
    fields: frozenset[str]  # the columns the caller may set
    fixed: Mapping[str, Any]  # the columns it always sets
    mints_workflow: bool = False  # it hands the task to a worker under a new workflow id
    # A person's do-over (retry, reapply, resubmit): the only way out of an ended state.
    again: bool = False


def _t(
    kind: Kind,
    sources: frozenset[TaskStatus] | set[TaskStatus],
    target: TaskStatus | None,
    fields: set[str] | frozenset[str] = frozenset(),
    fixed: Mapping[str, Any] | None = None,
    mints_workflow: bool = False,
    again: bool = False,
) -> Transition:
    return Transition(
        kind, frozenset(sources), target, frozenset(fields), fixed or {}, mints_workflow, again
    )


_S = TaskStatus
TRANSITIONS: Mapping[Kind, Transition] = {
    t.kind: t
    for t in (
        _t(
            Kind.START_ATTEMPT,
            LIVE,
            _S.PREPARING,
            {"attempts", "worker"},
            {"reason": None, "ending": None, "process": None},
        ),
        _t(Kind.AGENT_STARTED, {_S.PREPARING}, _S.RUNNING, {"workspace", "process", "started_at"}),
        _t(Kind.STORE_RESULT, IN_ATTEMPT, _S.APPLYING, {"result", "usage", "cost_usd"}),
        # From an attempt too: a change task's review that needs a person (run.personreview).
        _t(
            Kind.AWAIT_APPROVAL,
            {_S.APPLYING} | IN_ATTEMPT,
            _S.AWAITING_APPROVAL,
            {"reason", "workspace"},
        ),
        # A change task a person's review decision handed back goes on with its gates.
        _t(Kind.BACK_TO_GATES, {_S.APPLYING}, _S.QUEUED, fixed={"reason": None}),
        _t(
            Kind.RESUME,
            {_S.AWAITING_APPROVAL},
            _S.APPLYING,
            fixed={"dispatched": False},
            mints_workflow=True,
        ),
        _t(Kind.SUCCEED, _ENDABLE, _S.SUCCEEDED, _ENDED_FIELDS),
        _t(Kind.FAIL, _ENDABLE, _S.FAILED, _ENDED_FIELDS),
        _t(Kind.TIME_OUT, _ENDABLE, _S.TIMED_OUT, _ENDED_FIELDS),
        _t(Kind.CANCEL, _ENDABLE, _S.CANCELLED, _ENDED_FIELDS),
        _t(Kind.EXPIRE, {_S.APPLYING}, _S.EXPIRED, _ENDED_FIELDS),
        _t(
            Kind.CANCEL_WAITING,
            {_S.AWAITING_APPROVAL, _S.WAITING},
            _S.CANCELLED,
            {"reason", "finished_at"},
            {"ending": EndingKind.CANCELLED_WHILE_WAITING},
        ),
        _t(Kind.REQUEST_CANCEL, LIVE, None, fixed={"cancel_requested": True}),
        _t(Kind.RETRY, TERMINAL, _S.QUEUED, fixed=_AFRESH, mints_workflow=True, again=True),
        _t(Kind.REAPPLY, {_S.FAILED}, _S.APPLYING, fixed=_AFRESH, mints_workflow=True, again=True),
        _t(Kind.HOLD_FOR_BUDGET, LIVE, _S.QUEUED, {"reason"}, {"process": None}),
        _t(Kind.ENTER_GATE, IN_ATTEMPT, None, {"gate", "gates"}),
        _t(
            Kind.WAIT_FOR_SUBTASKS,
            IN_ATTEMPT,
            _S.WAITING,
            {"reason", "workspace", "usage", "cost_usd"},
            {"process": None},
        ),
        _t(
            Kind.SUBTASKS_DONE,
            {_S.WAITING},
            _S.QUEUED,
            fixed={"dispatched": False, "reason": None},
            mints_workflow=True,
        ),
        _t(
            Kind.RESUBMIT,
            {_S.EXPIRED, _S.AWAITING_APPROVAL},
            _S.AWAITING_APPROVAL,
            {"reason"},
            {"finished_at": None, "ending": None},
            again=True,
        ),
    )
}

# The run's endings: the transition that ends a task in each terminal status.
ENDS_IN = {
    _S.SUCCEEDED: Kind.SUCCEED,
    _S.FAILED: Kind.FAIL,
    _S.TIMED_OUT: Kind.TIME_OUT,
    _S.CANCELLED: Kind.CANCEL,
    _S.EXPIRED: Kind.EXPIRE,
}


def ends_in(status: TaskStatus) -> Kind:
    """The transition that ends a run in `status` (a terminal status)."""
    try:
        return ENDS_IN[status]
    except KeyError:
        raise ValueError(f"{status} is not a status a run ends in") from None


def rollup(parent_id: str, statuses: Iterable[TaskStatus], now: float) -> dict[str, Any]:
    """What a subtask's end does to its waiting parent, given every subtask's status (the
    ended one's new status included): hand it back to a worker once none is left open, else
    say in its reason how many are. The store writes it in the transaction that ended the
    subtask, only while the parent is still `waiting` (`ROLLUP_SOURCES`), so it is handed back
    once."""
    found = list(statuses)
    still = sum(1 for s in found if not s.terminal)
    if still == 0:
        return changes_for(parent_id, Kind.SUBTASKS_DONE, {}, now)
    return {"reason": f"waiting for {still} of {len(found)} subtasks", "updated_at": now}


ROLLUP_SOURCES = frozenset({TaskStatus.WAITING})


def workflow_id(task_id: str, kind: Kind | None = None) -> str:
    """The durable workflow id a task runs under: `task-<id>` when routing creates it; a new
    one each time a transition hands it to a worker again (`<id>-retry-…` after a retry or a
    reapply, `<id>-apply-…` after a decision). Ids are only minted, never parsed: find a task
    by `Store.get_task`, an approval's task by its `task_id`."""
    if kind is None:
        return f"task-{task_id}"
    step = {Kind.RESUME: "apply", Kind.SUBTASKS_DONE: "resume"}.get(kind, "retry")
    return f"{task_id}-{step}-{new_id()[-8:]}"


def changes_for(task_id: str, kind: Kind, fields: Mapping[str, Any], now: float) -> dict[str, Any]:
    """The columns one transition writes: the caller's `fields` (each one the transition
    allows; `updated_at` always, else `now`), what the transition always sets, and its status.
    A transition that hands the task over again gets a new workflow id unless the caller
    minted it (`workflow_id`) to say which."""
    step = TRANSITIONS[kind]
    allowed = step.fields | {"updated_at"} | ({"workflow_id"} if step.mints_workflow else set())
    unknown = set(fields) - allowed
    if unknown:
        raise ValueError(f"transition {kind} may not set {sorted(unknown)}")
    changes: dict[str, Any] = {**step.fixed, "updated_at": now, **fields}
    if step.mints_workflow and "workflow_id" not in changes:
        changes["workflow_id"] = workflow_id(task_id, kind)
    if step.target is not None:
        changes["status"] = step.target
    return changes
