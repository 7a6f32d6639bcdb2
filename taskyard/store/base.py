"""The store interface: everything taskyard keeps, behind a small set of methods.

`SQLStore` (SQLite and PostgreSQL) and `MemoryStore` (unit tests) implement it. Methods are
synchronous; async code calls them in a thread. Errors reaching the database raise
StoreUnavailable; a missing record raises NotFound.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from taskyard.actions.records import ActionRecord
from taskyard.models import (
    DeadLetter,
    Event,
    EventStatus,
    RouteDecision,
    StoreResult,
    Task,
    TaskStatus,
)

FOREVER = 253402300799.0  # 9999-12-31: delivery ids deduplicate for good


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to store together with the key that deduplicates it."""

    event: Event
    dedup_key: str
    dedup_expires_at: float


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
    limit: int = 50


# Columns `update_task` may change; JSON columns are serialised by the store.
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
    }
)
TASK_JSON_COLUMNS = frozenset({"spec", "usage", "result", "process"})


class Store(abc.ABC):
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
        """Queued tasks not yet handed to the queue under their current workflow id."""

    @abc.abstractmethod
    def mark_task_dispatched(self, task_id: str, workflow_id: str) -> None: ...

    @abc.abstractmethod
    def update_task(
        self,
        task_id: str,
        changes: Mapping[str, Any],
        only_if: Sequence[TaskStatus] | None = None,
    ) -> bool:
        """Change the given columns (of TASK_COLUMNS); with `only_if`, only while the task is
        in one of those states. True if the task was changed."""

    @abc.abstractmethod
    def request_cancel(self, task_id: str, now: float) -> bool:
        """Ask a live task to stop; False if it has already ended."""

    @abc.abstractmethod
    def retry_task(self, task_id: str, workflow_id: str, now: float) -> bool:
        """Queue an ended task again under a new workflow id; False if it has not ended."""

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

    def close(self) -> None:  # noqa: B027
        """Release connections."""
