"""An in-memory `Store` for unit tests, with the semantics of `SQLStore` (see queries.sql).

Every method holds one lock, so each call is atomic like one SQL transaction.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from taskyard.audit import AuditEntry
from taskyard.exceptions import NotFound, StoreError
from taskyard.idea import Idea, IdeaEvent, IdeaTask
from taskyard.lifecycle import ROLLUP_SOURCES, rollup
from taskyard.models import (
    DeadLetter,
    DeadLetterStatus,
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
    CiFailure,
    DecisionAttempt,
    Fix,
)
from taskyard.store.base import (
    TASK_COLUMNS,
    Dispatch,
    EndedTasks,
    EventFilter,
    NewEvent,
    Store,
    TaskCost,
    TaskFilter,
    WindowStats,
    ends_task,
    nearest_rank,
)
from taskyard.store.memory_approvals import MemoryApprovals
from taskyard.store.memory_audit import MemoryAudit
from taskyard.store.memory_fixes import MemoryFixes
from taskyard.store.memory_ideas import MemoryIdeas


@dataclass(slots=True)
class _Worker:
    role: str
    host: str
    pid: int
    started_at: float
    heartbeat_at: float
    recovered_by: str | None = None


class MemoryStore(MemoryApprovals, MemoryAudit, MemoryFixes, MemoryIdeas, Store):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: dict[str, Event] = {}
        self._dispatch_keys: dict[str, str] = {}
        self._dedup: dict[tuple[str, str], tuple[str, float]] = {}  # → (event id, expires at)
        self._letters: dict[str, DeadLetter] = {}
        self._workers: dict[str, _Worker] = {}
        self._tasks: dict[str, Task] = {}
        self._decisions: dict[tuple[str, str], RouteDecision] = {}
        self._actions: dict[str, ActionRecord] = {}
        self._approvals: dict[str, Approval] = {}
        self._attempts: list[DecisionAttempt] = []
        self._audit: list[AuditEntry] = []
        self._ideas: dict[str, Idea] = {}
        self._idea_events: dict[str, list[IdeaEvent]] = {}
        self._idea_plans: dict[str, list[dict[str, Any]]] = {}
        self._idea_tasks: dict[str, dict[str, IdeaTask]] = {}
        self._fixes: dict[str, Fix] = {}
        self._pushes: dict[tuple[str, str], str] = {}  # (pr, sha) → the task that pushed
        self._ci: dict[str, CiFailure] = {}  # by task id

    def migrate(self) -> list[int]:
        return []

    def ping(self) -> None:
        pass

    # --- events ---------------------------------------------------------------------------

    def insert_events(self, batch: Sequence[NewEvent], now: float) -> list[StoreResult]:
        with self._lock:
            if any(n.event.id in self._events for n in batch):
                raise StoreError("event id already stored")
            results = []
            for n in batch:
                key = (n.event.source, n.dedup_key)
                owner = self._dedup.get(key)
                if owner is not None and owner[1] > now:
                    results.append(StoreResult(owner[0], duplicate=True))
                    continue
                replay = (n.event.source, n.replay_key or "")
                first = self._dedup.get(replay) if n.replay_key is not None else None
                if first is not None and first[1] > now:  # the same body under a new id
                    self._dedup[key] = (first[0], n.dedup_expires_at)
                    results.append(StoreResult(first[0], duplicate=True))
                    continue
                self._dedup[key] = (n.event.id, n.dedup_expires_at)
                if n.replay_key is not None:
                    self._dedup[replay] = (n.event.id, n.replay_expires_at)
                self._events[n.event.id] = replace(n.event, headers=dict(n.event.headers))
                self._dispatch_keys[n.event.id] = n.event.id
                results.append(StoreResult(n.event.id, duplicate=False))
            return results

    def get_event(self, event_id: str) -> Event:
        with self._lock:
            return self._event(event_id)

    def _event(self, event_id: str) -> Event:
        try:
            return self._events[event_id]
        except KeyError:
            raise NotFound(f"no event {event_id}") from None

    def list_events(self, flt: EventFilter) -> list[Event]:
        with self._lock:
            found = [
                e
                for e in self._events.values()
                if (flt.status is None or e.status == flt.status)
                and (flt.source is None or e.source == flt.source)
                and (flt.type is None or e.type == flt.type)
            ]
        found.sort(key=lambda e: (e.received_at, e.id), reverse=True)
        return found[: flt.limit]

    def events_to_dispatch(self, limit: int) -> list[Dispatch]:
        with self._lock:
            ready = [e for e in self._events.values() if e.status is EventStatus.RECEIVED]
            ready.sort(key=lambda e: (e.priority, e.received_at))
            return [
                Dispatch(e.id, int(e.priority), self._dispatch_keys[e.id]) for e in ready[:limit]
            ]

    def mark_dispatched(self, dispatches: Sequence[Dispatch]) -> None:
        with self._lock:
            for d in dispatches:
                e = self._events.get(d.event_id)
                if (
                    e is not None
                    and e.status is EventStatus.RECEIVED
                    and self._dispatch_keys[e.id] == d.workflow_id
                ):
                    self._events[e.id] = replace(e, status=EventStatus.QUEUED)

    def _update(self, event_id: str, **changes: Any) -> bool:
        e = self._events.get(event_id)
        if e is None:
            return False
        self._events[event_id] = replace(e, **changes)
        return True

    def start_event(self, event_id: str) -> None:
        with self._lock:
            e = self._events.get(event_id)
            if e is not None:
                self._update(
                    event_id, status=EventStatus.PROCESSING, attempts=e.attempts + 1, error=None
                )

    def finish_event(
        self, event_id: str, status: EventStatus, error: str | None, now: float
    ) -> None:
        with self._lock:
            self._update(event_id, status=EventStatus(status), error=error, processed_at=now)

    def requeue_event(self, event_id: str, workflow_id: str) -> None:
        with self._lock:
            if not self._update(event_id, status=EventStatus.RECEIVED, error=None):
                raise NotFound(f"no event {event_id}")
            self._dispatch_keys[event_id] = workflow_id

    def count_in_flight(self) -> int:
        with self._lock:
            busy = (EventStatus.QUEUED, EventStatus.PROCESSING)
            return sum(1 for e in self._events.values() if e.status in busy)

    def count_events(self) -> dict[str, int]:
        with self._lock:
            return dict(Counter(str(e.status) for e in self._events.values()))

    # --- dead letters ---------------------------------------------------------------------

    def add_dead_letter(self, letter: DeadLetter) -> None:
        with self._lock:
            if letter.id in self._letters:
                raise StoreError(f"dead letter {letter.id} already stored")
            self._letters[letter.id] = replace(
                letter, status=DeadLetterStatus.OPEN, replayed_at=None
            )

    def get_dead_letter(self, letter_id: str) -> DeadLetter:
        with self._lock:
            try:
                return self._letters[letter_id]
            except KeyError:
                raise NotFound(f"no dead letter {letter_id}") from None

    def list_dead_letters(self, status: str | None, limit: int) -> list[DeadLetter]:
        with self._lock:
            found = [d for d in self._letters.values() if status is None or d.status == status]
        found.sort(key=lambda d: (d.failed_at, d.id), reverse=True)
        return found[:limit]

    def replays_of(self, job: str, ref: str) -> int:
        with self._lock:
            return sum(1 for d in self._letters.values() if d.job == job and d.ref == ref)

    def mark_dead_letter_replayed(
        self, letter_id: str, now: float, requeue_as: str | None = None
    ) -> bool:
        with self._lock:
            letter = self._letters.get(letter_id)
            if letter is None or letter.status is not DeadLetterStatus.OPEN:
                return False
            self._letters[letter_id] = replace(
                letter, status=DeadLetterStatus.REPLAYED, replayed_at=now
            )
            if requeue_as is not None and self._update(
                letter.ref, status=EventStatus.RECEIVED, error=None
            ):
                self._dispatch_keys[letter.ref] = requeue_as
            return True

    def due_dead_letters(self, now: float, limit: int) -> list[DeadLetter]:
        with self._lock:
            due = [
                d
                for d in self._letters.values()
                if d.status is DeadLetterStatus.OPEN
                and d.auto_retry_at is not None
                and d.auto_retry_at <= now
            ]
        due.sort(key=lambda d: d.failed_at)
        return due[:limit]

    # --- workers --------------------------------------------------------------------------

    def register_worker(self, worker_id: str, role: str, host: str, pid: int, now: float) -> None:
        with self._lock:
            self._workers[worker_id] = _Worker(role, host, pid, started_at=now, heartbeat_at=now)

    def heartbeat(self, worker_id: str, now: float) -> None:
        with self._lock:
            worker = self._workers.get(worker_id)
            if worker is not None:
                worker.heartbeat_at = now

    def claim_stale_workers(self, me: str, cutoff: float) -> list[str]:
        with self._lock:
            stale = [
                wid
                for wid, w in self._workers.items()
                if w.heartbeat_at < cutoff and w.recovered_by is None and wid != me
            ]
            for wid in stale:
                self._workers[wid].recovered_by = me
            return stale

    def delete_expired_dedup(self, now: float) -> int:
        with self._lock:
            expired = [k for k, (_, expires_at) in self._dedup.items() if expires_at <= now]
            for k in expired:
                del self._dedup[k]
            return len(expired)

    # --- tasks ----------------------------------------------------------------------------

    def record_routing(
        self, decisions: Sequence[RouteDecision], tasks: Sequence[Task]
    ) -> list[Task]:
        with self._lock:
            taken = {(t.event_id, t.route) for t in self._tasks.values()}
            for t in tasks:
                if (t.event_id, t.route) not in taken:
                    self._tasks[t.id] = t
                    taken.add((t.event_id, t.route))
            for d in decisions:
                self._decisions.setdefault((d.event_id, d.route), d)
            events = {d.event_id for d in decisions} | {t.event_id for t in tasks}
            found = [t for t in self._tasks.values() if t.event_id in events]
            return sorted(found, key=lambda t: (t.event_id, t.route))

    def decisions_for(self, event_id: str) -> list[RouteDecision]:
        with self._lock:
            found = [d for (e, _), d in self._decisions.items() if e == event_id]
            return sorted(found, key=lambda d: d.route)

    def get_task(self, task_id: str) -> Task:
        with self._lock:
            return self._task(task_id)

    def _task(self, task_id: str) -> Task:
        try:
            return self._tasks[task_id]
        except KeyError:
            raise NotFound(f"no task {task_id}") from None

    def list_tasks(self, flt: TaskFilter) -> list[Task]:
        with self._lock:
            found = [
                t
                for t in self._tasks.values()
                if (flt.status is None or t.status == flt.status)
                and (flt.route is None or t.route == flt.route)
                and (flt.event_id is None or t.event_id == flt.event_id)
                and (flt.workflow_id is None or t.workflow_id == flt.workflow_id)
            ]
        found.sort(key=lambda t: (t.created_at, t.id), reverse=True)
        return found[: flt.limit]

    def tasks_to_dispatch(self, limit: int) -> list[Task]:
        with self._lock:
            found = [
                t
                for t in self._tasks.values()
                if not t.dispatched and t.status in (TaskStatus.QUEUED, TaskStatus.APPLYING)
            ]
        found.sort(key=lambda t: (t.priority, t.created_at))
        return found[:limit]

    def mark_task_dispatched(self, task_id: str, workflow_id: str) -> None:
        with self._lock:
            task = self._tasks.get(task_id)
            if task is not None and task.workflow_id == workflow_id:
                self._tasks[task_id] = replace(task, dispatched=True)

    def _write_task(
        self, task_id: str, changes: Mapping[str, Any], sources: frozenset[TaskStatus]
    ) -> bool:
        unknown = set(changes) - TASK_COLUMNS
        if unknown:
            raise ValueError(f"not a task column: {sorted(unknown)}")
        with self._lock:
            task = self._tasks.get(task_id)
            if task is None or task.status not in sources:
                return False
            self._tasks[task_id] = replace(task, **dict(changes))
            parent = self._tasks.get(task.parent_id) if task.parent_id else None
            if ends_task(changes) and parent is not None:
                statuses = [t.status for t in self._tasks.values() if t.parent_id == parent.id]
                update = rollup(parent.id, statuses, float(changes["updated_at"]))
                if parent.status in ROLLUP_SOURCES:
                    self._tasks[parent.id] = replace(parent, **update)
            return True

    def subtasks_of(self, parent_id: str) -> list[Task]:
        with self._lock:
            found = [t for t in self._tasks.values() if t.parent_id == parent_id]
        return sorted(found, key=lambda t: (t.created_at, t.id))

    def count_tasks(self) -> dict[str, int]:
        with self._lock:
            return dict(Counter(str(t.status) for t in self._tasks.values()))

    # --- actions --------------------------------------------------------------------------

    def record_action(self, record: ActionRecord) -> ActionRecord:
        with self._lock:
            first = self._actions.get(record.key)
            if first is not None:
                record = replace(
                    record,
                    task_id=first.task_id,
                    index=first.index,
                    route=first.route,
                    type=first.type,
                    params=first.params,
                    reasoning=first.reasoning,
                    created_at=first.created_at,
                )
            stored = replace(record, params=dict(record.params), requests=list(record.requests))
            self._actions[record.key] = stored
            return stored

    def get_action_by_key(self, key: str) -> ActionRecord | None:
        with self._lock:
            return self._actions.get(key)

    def actions_of(self, task_id: str) -> list[ActionRecord]:
        with self._lock:
            found = [a for a in self._actions.values() if a.task_id == task_id]
        return sorted(found, key=lambda a: (a.index, a.created_at, a.key))

    def window_stats(
        self, since: float, until: float, percentiles: Sequence[int] = (50, 95)
    ) -> WindowStats:
        with self._lock:
            received = sum(1 for e in self._events.values() if since <= e.received_at < until)
            ended = [
                t
                for t in self._tasks.values()
                if t.status.terminal
                and t.finished_at is not None
                and since <= t.finished_at < until
            ]
        groups: dict[tuple[str, TaskStatus], list[Task]] = {}
        for t in ended:
            groups.setdefault((t.route, t.status), []).append(t)
        durations = sorted(
            t.finished_at - t.started_at
            for t in ended
            if t.finished_at is not None and t.started_at is not None
        )
        return WindowStats(
            received,
            tuple(
                EndedTasks(
                    route,
                    status,
                    len(ts),
                    sum(t.cost_usd for t in ts if t.cost_usd is not None),
                    sum(1 for t in ts if t.cost_usd is not None),
                )
                for (route, status), ts in sorted(groups.items())
            ),
            len(durations),
            {p: durations[nearest_rank(p, len(durations))] for p in percentiles if durations},
        )

    def count_dead_letters(self) -> dict[str, int]:
        with self._lock:
            return dict(Counter(str(d.status) for d in self._letters.values()))

    def spent_between(self, since: float, until: float) -> float:
        return sum(c.cost_usd for c in self.costs_between(since, until))

    def costs_between(self, since: float, until: float) -> list[TaskCost]:
        with self._lock:
            costed = [
                TaskCost(t.id, t.route, t.agent, t.started_at, t.cost_usd)
                for t in self._tasks.values()
                if t.started_at is not None
                and t.cost_usd is not None
                and since <= t.started_at < until
            ]
        return sorted(costed, key=lambda c: (c.started_at, c.task_id))
