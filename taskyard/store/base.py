"""The store interface: everything taskyard keeps, behind a small set of methods.

`SQLStore` (SQLite and PostgreSQL) and `MemoryStore` (unit tests) implement it. Methods are
synchronous; async code calls them in a thread. Errors reaching the database raise
StoreUnavailable; a missing record raises NotFound.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from taskyard.audit import AuditEntry
from taskyard.lifecycle import TRANSITIONS, Kind, changes_for
from taskyard.models import (
    DeadLetter,
    Event,
    EventStatus,
    RouteDecision,
    StoreResult,
    Task,
    TaskStatus,
)
from taskyard.records import (
    ActionRecord,
    Approval,
    ApprovalStatus,
    CiFailure,
    CiOutcome,
    Decision,
    DecisionAttempt,
    DecisionOutcome,
    Fix,
    FixAdmission,
    FixLimits,
    FixStatus,
)
from taskyard.store.ideas_api import IdeaStore

FOREVER = 253402300799.0  # 9999-12-31: delivery ids deduplicate for good


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to store together with the key that deduplicates it."""

    event: Event
    dedup_key: str
    dedup_expires_at: float
    # The content key that must be free too (a replay under a new delivery id is refused).
    replay_key: str | None = None
    replay_expires_at: float = 0.0


@dataclass(frozen=True, slots=True)
class Dispatch:
    event_id: str
    priority: int
    workflow_id: str


@dataclass(frozen=True, slots=True)
class EventFilter:
    status: EventStatus | None = None
    source: str | None = None
    type: str | None = None
    limit: int = 50


@dataclass(frozen=True, slots=True)
class TaskFilter:
    status: TaskStatus | None = None
    route: str | None = None
    event_id: str | None = None
    workflow_id: str | None = None  # the one it runs under now
    limit: int = 50


@dataclass(frozen=True, slots=True)
class EndedTasks:
    """The tasks of one route that ended in one status within a time window."""

    route: str
    status: TaskStatus
    count: int
    cost_usd: float  # the sum of the costs they reported
    costed: int  # how many of them reported a cost


@dataclass(frozen=True, slots=True)
class WindowStats:
    """What happened in [since, until): the events received; the tasks that ended, by route
    and status; and how long the ones whose agent started took (finished - started): how many
    (`timed`) and the duration at each asked percentile (nearest rank; none when `timed` is 0).
    """

    events_received: int
    ended: tuple[EndedTasks, ...]
    timed: int
    percentiles: dict[int, float]


@dataclass(frozen=True, slots=True)
class TaskCost:
    """What one task's agent cost, counted when (UTC) its agent started."""

    task_id: str
    route: str
    agent: str
    started_at: float
    cost_usd: float


def nearest_rank(percentile: int, count: int) -> int:
    """The 0-based position of `percentile` (1..100) among `count` sorted values."""
    return max(0, -(-percentile * count // 100) - 1)


# Columns a transition may change (see `taskyard.lifecycle`); JSON columns are serialised by
# the store.
TASK_COLUMNS = frozenset(
    {
        "status",
        "reason",
        "attempts",
        "started_at",
        "finished_at",
        "updated_at",
        "workspace",
        "usage",
        "cost_usd",
        "result",
        "worker",
        "process",
        "cancel_requested",
        "dispatched",
        "workflow_id",
        "ending",
        "gate",
        "gates",
    }
)
TASK_JSON_COLUMNS = frozenset({"spec", "usage", "result", "process", "gates"})


def ends_task(changes: Mapping[str, Any]) -> bool:
    """Whether a transition's changes end the task (then its parent's progress rolls up)."""
    status = changes.get("status")
    return status is not None and TaskStatus(status).terminal


class Store(IdeaStore, abc.ABC):
    @abc.abstractmethod
    def migrate(self) -> list[int]:
        """Apply pending migrations; return the versions applied."""

    @abc.abstractmethod
    def ping(self) -> None:
        """Raise StoreUnavailable unless the database answers."""

    @abc.abstractmethod
    def insert_events(self, batch: Sequence[NewEvent], now: float) -> list[StoreResult]:
        """Store each new event in one transaction; a duplicate returns its first event id."""

    @abc.abstractmethod
    def get_event(self, event_id: str) -> Event: ...

    @abc.abstractmethod
    def list_events(self, flt: EventFilter) -> list[Event]: ...

    @abc.abstractmethod
    def events_to_dispatch(self, limit: int) -> list[Dispatch]: ...

    @abc.abstractmethod
    def mark_dispatched(self, dispatches: Sequence[Dispatch]) -> None: ...

    @abc.abstractmethod
    def start_event(self, event_id: str) -> None: ...

    @abc.abstractmethod
    def finish_event(
        self, event_id: str, status: EventStatus, error: str | None, now: float
    ) -> None: ...

    @abc.abstractmethod
    def requeue_event(self, event_id: str, workflow_id: str) -> None:
        """Hand the event to the dispatcher again under a new workflow id."""

    @abc.abstractmethod
    def count_events(self) -> dict[str, int]: ...

    @abc.abstractmethod
    def count_in_flight(self) -> int:
        """Events handed to the queue and not finished (queued or processing)."""

    @abc.abstractmethod
    def add_dead_letter(self, letter: DeadLetter) -> None: ...

    @abc.abstractmethod
    def get_dead_letter(self, letter_id: str) -> DeadLetter: ...

    @abc.abstractmethod
    def list_dead_letters(self, status: str | None, limit: int) -> list[DeadLetter]: ...

    @abc.abstractmethod
    def replays_of(self, job: str, ref: str) -> int:
        """How many dead letters this job already has (its earlier failures)."""

    @abc.abstractmethod
    def mark_dead_letter_replayed(
        self, letter_id: str, now: float, requeue_as: str | None = None
    ) -> bool:
        """True if this call moved it from open to replayed (exactly one caller wins); with
        `requeue_as`, its event is handed to the dispatcher again under that workflow id, in
        the same transaction."""

    @abc.abstractmethod
    def due_dead_letters(self, now: float, limit: int) -> list[DeadLetter]: ...

    @abc.abstractmethod
    def register_worker(
        self, worker_id: str, role: str, host: str, pid: int, now: float
    ) -> None: ...

    @abc.abstractmethod
    def heartbeat(self, worker_id: str, now: float) -> None: ...

    @abc.abstractmethod
    def claim_stale_workers(self, me: str, cutoff: float) -> list[str]:
        """Workers silent since `cutoff` that this caller now owns the recovery of."""

    @abc.abstractmethod
    def delete_expired_dedup(self, now: float) -> int: ...

    # --- tasks ----------------------------------------------------------------------------

    @abc.abstractmethod
    def record_routing(
        self, decisions: Sequence[RouteDecision], tasks: Sequence[Task]
    ) -> list[Task]:
        """In one transaction: store the tasks (one per event and route: a repeated routing
        stores nothing new) and the decisions; return all tasks of those events."""

    @abc.abstractmethod
    def decisions_for(self, event_id: str) -> list[RouteDecision]: ...

    @abc.abstractmethod
    def get_task(self, task_id: str) -> Task: ...

    @abc.abstractmethod
    def list_tasks(self, flt: TaskFilter) -> list[Task]: ...

    @abc.abstractmethod
    def tasks_to_dispatch(self, limit: int) -> list[Task]:
        """Queued (or re-applying) tasks not yet handed to the queue under their current
        workflow id."""

    @abc.abstractmethod
    def mark_task_dispatched(self, task_id: str, workflow_id: str) -> None: ...

    def transition(self, task_id: str, kind: Kind, **fields: Any) -> bool:
        """Apply one step of the task lifecycle (`taskyard.lifecycle.TRANSITIONS`): set its
        status and `fields` (each one it allows; `updated_at` defaults to now) in one write,
        only while the task is in one of its from-states. True if the task changed; False if
        it was in another state; NotFound for an unknown id."""
        step = TRANSITIONS[kind]
        changes = changes_for(task_id, kind, fields, time.time())
        if self._write_task(task_id, changes, step.sources):
            return True
        self.get_task(task_id)  # NotFound for an unknown id
        return False

    @abc.abstractmethod
    def _write_task(
        self, task_id: str, changes: Mapping[str, Any], sources: frozenset[TaskStatus]
    ) -> bool:
        """Change the given columns (of TASK_COLUMNS) while the task is in one of `sources`;
        True if it changed. Only `transition` calls this."""

    @abc.abstractmethod
    def subtasks_of(self, parent_id: str) -> list[Task]:
        """The task's subtasks, oldest first. A subtask is created like any task
        (`record_routing`, with its `parent_id`); when one ends, the transition that ends it
        also rolls its parent's progress up (`taskyard.lifecycle.rollup`), in one write."""

    @abc.abstractmethod
    def count_tasks(self) -> dict[str, int]: ...

    # --- actions --------------------------------------------------------------------------

    @abc.abstractmethod
    def record_action(self, record: ActionRecord) -> ActionRecord:
        """Insert or update the action by its key (its first `created_at` is kept); return
        what is stored."""

    @abc.abstractmethod
    def get_action_by_key(self, key: str) -> ActionRecord | None: ...

    @abc.abstractmethod
    def actions_of(self, task_id: str) -> list[ActionRecord]:
        """Every action recorded for the task, by index (then first recorded)."""

    # --- approvals ------------------------------------------------------------------------

    @abc.abstractmethod
    def create_approval(self, approval: Approval) -> Approval:
        """Store the request; if one is already pending for its action, store nothing and
        return that one (of two racing requests for an action, one is stored)."""

    @abc.abstractmethod
    def resubmit_approval(
        self, new: Approval, reason: Callable[[str], str], now: float
    ) -> Approval | None:
        """Ask again, in one write: the task of `new` takes the `resubmit` transition (it
        waits again; its reason, `reason(id)`, names the request it waits for) and `new` is
        stored, unless a request for the same action is pending already (then that one is
        waited for, and returned). None, and nothing written, when the task is in no state
        to wait again."""

    @abc.abstractmethod
    def get_approval(self, approval_id: str) -> Approval: ...

    @abc.abstractmethod
    def latest_approval_for(self, action_key: str) -> Approval | None:
        """The action's newest request, whatever its status."""

    @abc.abstractmethod
    def list_approvals(
        self,
        status: ApprovalStatus | None = None,
        task_id: str | None = None,
        limit: int = 100,
        include_archived: bool = False,
    ) -> list[Approval]:
        """Newest first."""

    @abc.abstractmethod
    def find_approval_by_channel(self, platform: str, key: str, value: str) -> Approval | None:
        """The newest request whose `channels[platform][key] == value`, e.g. ("github",
        "comment_id", "123") or ("slack", "ts", "1700000000.000100")."""

    @abc.abstractmethod
    def set_approval_channels(self, approval_id: str, channels: Mapping[str, Any]) -> Approval:
        """Put the given platforms' entries into the request's channels (each platform's
        entry replaced whole, the other platforms kept)."""

    @abc.abstractmethod
    def decide_approval(
        self,
        approval_id: str,
        decision: Decision,
        actor: str,
        via: str,
        reason: str | None,
        now: float,
        workflow_id: str,
    ) -> DecisionOutcome:
        """In one transaction: APPROVE or DENY a pending, unexpired request (of racing
        decisions exactly one is accepted), or ask its MORE_INFO question (`reason`), which
        keeps it pending; record the attempt, accepted or not. An accepted APPROVE or DENY that
        leaves its task `awaiting_approval` with no pending request hands the task back to the
        dispatcher as `applying` under `workflow_id` (`resumed`). A refusal says why: "already
        approved by github:octocat (github)", "expired at 2024-05-01T12:00:00Z"."""

    @abc.abstractmethod
    def record_decision_attempt(self, attempt: DecisionAttempt) -> None:
        """Keep an attempt refused before reaching the store (not allowed to decide, forged)."""

    @abc.abstractmethod
    def decision_attempts(self, approval_id: str) -> list[DecisionAttempt]:
        """Oldest first."""

    @abc.abstractmethod
    def expire_approvals(self, now: float, workflow_id_for: Callable[[str], str]) -> list[Approval]:
        """In one transaction: every pending request past `expires_at` becomes `expired` (by
        "taskyard" via "expiry", with an accepted EXPIRE attempt), and each task left
        `awaiting_approval` with no pending request is resumed like a decision does, under
        `workflow_id_for(task_id)`. Returns the requests expired."""

    @abc.abstractmethod
    def due_reminders(self, now: float) -> list[Approval]:
        """Pending requests whose `remind_at` has come and that were not reminded yet."""

    @abc.abstractmethod
    def mark_reminded(self, approval_id: str, now: float) -> None: ...

    @abc.abstractmethod
    def archive_approvals(self, decided_before: float) -> int:
        """Archive the `expired` requests that expired before the time; return how many."""

    @abc.abstractmethod
    def approval_stats(self, now: float) -> dict[str, tuple[int, float]]:
        """For each risk with pending requests: (how many, age in seconds of the oldest)."""

    # --- audit log ------------------------------------------------------------------------

    @abc.abstractmethod
    def append_audit(
        self,
        kind: str,
        task_id: str | None,
        actor: str,
        data: Mapping[str, Any],
        now: float,
    ) -> AuditEntry:
        """Append one entry to the audit log (`taskyard.audit`), in one transaction: the next
        seq, linked to the last entry's hash. Appends take turns, so concurrent ones still make
        one unbroken chain. The log has no update and no delete."""

    @abc.abstractmethod
    def enter_gate(
        self,
        task_id: str,
        gates: list[dict[str, Any]],
        actor: str,
        data: Mapping[str, Any],
        now: float,
    ) -> AuditEntry | None:
        """A change task enters the gate its last record names (`gates[-1]["gate"]`,
        `Kind.ENTER_GATE`): its `gate` and `gates` columns and an audit entry of kind
        `gate` (`data`, with the gate) written in one transaction, or nothing (None) when the
        task is no longer in an attempt."""

    @abc.abstractmethod
    def audit_entries(
        self, task_id: str | None = None, after_seq: int = 0, limit: int = 1000
    ) -> list[AuditEntry]:
        """Entries after `after_seq`, oldest first, at most `limit` (the task's alone when
        `task_id` is given): page through the log by passing the last seq read."""

    # --- pull-request fixes -----------------------------------------------------------------

    @abc.abstractmethod
    def request_fix(
        self, pr: str, comment_id: str, task_id: str, now: float, limits: FixLimits
    ) -> FixAdmission:
        """Ask for one more fix of `pr` (like `github:acme/api#12`), in one transaction: stored
        `queued`, or `refused` with the reason in words when the comment had its attempts, the
        PR its fixes within the last hour, or its cost ceiling (refused ones count for none)."""

    @abc.abstractmethod
    def start_fix(self, pr: str, now: float) -> Fix | None:
        """Take the PR's lock: its oldest queued fix becomes `running`, unless one of its fixes
        is running already (then, or with nothing queued, None). Of racing starters of one PR
        exactly one wins; PRs do not wait for each other."""

    @abc.abstractmethod
    def finish_fix(self, fix_id: str, status: FixStatus, cost_usd: float, now: float) -> Fix | None:
        """End a queued or running fix as `done` or `refused` with what it cost, releasing its
        PR's lock (the next queued fix may start). None when it had ended already."""

    @abc.abstractmethod
    def fixes_of(self, pr: str, since: float = 0.0) -> list[Fix]:
        """The PR's fixes created at `since` or later, refused ones too, oldest first."""

    @abc.abstractmethod
    def pr_spend(self, pr: str) -> float:
        """What the PR's fixes have cost so far (the ones that finished with a cost)."""

    @abc.abstractmethod
    def record_push(self, pr: str, sha: str, task_id: str, now: float) -> None:
        """Taskyard pushed commit `sha` to `pr` for task `task_id` (once: a second record of
        the same push changes nothing)."""

    @abc.abstractmethod
    def pushed_by_taskyard(self, pr: str, sha: str) -> bool:
        """Whether taskyard pushed commit `sha` to `pr`."""

    @abc.abstractmethod
    def request_ci_fix(
        self, pr: str, head_sha: str, check: str, task_id: str, now: float, limits: FixLimits
    ) -> CiFailure:
        """A check named `check` failed on `head_sha` of `pr`: in one transaction, a fix
        queued for task `task_id` (`CiOutcome.FIX`, its `Fix` beside the comment fixes, under
        the same per-PR bounds); a flaky `RERUN` when this check already had a fix on this
        head (the model does not retry an unchanged head); or `REFUSED` with the reason when
        taskyard did not push the head or its `CI_FIXES_PER_HEAD` fixes are spent. Asked
        again for the same task, the stored answer."""

    @abc.abstractmethod
    def repo_fixes(self, repo: str, limit: int) -> list[Fix]:
        """The newest `limit` fixes of the pull requests of `repo` (like `github:acme/api`),
        newest first, refused ones too."""

    @abc.abstractmethod
    def ci_outcomes(self, repo: str) -> dict[CiOutcome, int]:
        """How many failing checks on the repository's pull requests came to each outcome."""

    @abc.abstractmethod
    def fixed_prs(self) -> list[str]:
        """Every pull request that was asked for a fix, sorted."""

    def close(self) -> None:
        """Release connections."""

    # --- stats ----------------------------------------------------------------------------

    @abc.abstractmethod
    def window_stats(
        self, since: float, until: float, percentiles: Sequence[int] = (50, 95)
    ) -> WindowStats:
        """Events received and tasks ended in [since, until) (see `WindowStats`)."""

    @abc.abstractmethod
    def count_dead_letters(self) -> dict[str, int]:
        """Dead letters by status (`open`, `replayed`)."""

    # --- spend ----------------------------------------------------------------------------

    @abc.abstractmethod
    def spent_between(self, since: float, until: float) -> float:
        """The summed cost of the tasks whose agent started in [since, until)."""

    @abc.abstractmethod
    def costs_between(self, since: float, until: float) -> list[TaskCost]:
        """Each costed task whose agent started in [since, until), oldest first."""
