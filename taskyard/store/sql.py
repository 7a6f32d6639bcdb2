"""The SQL store: one implementation of `Store` over SQLite or PostgreSQL."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any

from taskyard.exceptions import NotFound
from taskyard.lifecycle import ROLLUP_SOURCES, rollup
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
)
from taskyard.store import dedup
from taskyard.store import rows as rowmap
from taskyard.store.backends import Backend, Tx, open_backend
from taskyard.store.base import (
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
from taskyard.store.sql_approvals import SQLApprovals
from taskyard.store.sql_audit import SQLAudit
from taskyard.store.sql_fixes import SQLFixes
from taskyard.store.sql_ideas import SQLIdeas
from taskyard.store.sqlshared import Q, task_update

_MIGRATION = re.compile(r"^(\d{4})_(\w+)\.sql$")
_MIGRATIONS_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations "
    "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at {float} NOT NULL)"
)


def migrations() -> list[tuple[int, str, str]]:
    folder = resources.files("taskyard.store").joinpath("migrations")
    found = []
    for item in folder.iterdir():
        match = _MIGRATION.match(item.name)
        if match:
            found.append((int(match.group(1)), match.group(2), item.read_text("utf-8")))
    return sorted(found)


def fresh_schema() -> str:
    return resources.files("taskyard.store").joinpath("schema.sql").read_text("utf-8")


def _record_migration(tx: Tx, version: int, name: str) -> None:
    tx.execute(Q["record_migration"], {"v": version, "n": name, "t": time.time()})


class SQLStore(SQLApprovals, SQLAudit, SQLFixes, SQLIdeas, Store):
    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    @classmethod
    def open(cls, url: str) -> SQLStore:
        return cls(open_backend(url))

    # --- schema ---------------------------------------------------------------------------

    def _ddl(self, sql: str) -> str:
        return sql.format(**self.backend.types)

    def _lock_schema(self, tx: Tx) -> None:
        if self.backend.dialect == "postgresql":
            tx.fetchall("SELECT pg_advisory_xact_lock(7272742)")

    def migrate(self) -> list[int]:
        applied: list[int] = []
        with self.backend.transaction() as tx:
            self._lock_schema(tx)
            tx.execute(self._ddl(_MIGRATIONS_TABLE))
            done = {r["version"] for r in tx.fetchall("SELECT version FROM schema_migrations")}
            for version, name, sql in migrations():
                if version in done:
                    continue
                tx.executescript(self._ddl(sql))
                _record_migration(tx, version, name)
                applied.append(version)
        return applied

    def create_fresh(self) -> None:
        """Create the schema from schema.sql (used to prove it equals all migrations)."""
        with self.backend.transaction() as tx:
            tx.execute(self._ddl(_MIGRATIONS_TABLE))
            tx.executescript(self._ddl(fresh_schema()))
            for version, name, _ in migrations():
                _record_migration(tx, version, name)

    def ping(self) -> None:
        with self.backend.transaction() as tx:
            tx.fetchall("SELECT 1 AS ok")

    def close(self) -> None:
        self.backend.close()

    # --- events ---------------------------------------------------------------------------

    def insert_events(self, batch: Sequence[NewEvent], now: float) -> list[StoreResult]:
        if not batch:
            return []
        insert = dedup.INSERTERS[self.backend.dialect]
        with self.backend.transaction() as tx:
            stored = insert(tx, Q, batch, now)
            return dedup.results(tx, Q, batch, stored)

    def get_event(self, event_id: str) -> Event:
        with self.backend.reading() as tx:
            row = tx.fetchone(Q["get_event"], {"id": event_id})
        if row is None:
            raise NotFound(f"no event {event_id}")
        return rowmap.event_from_row(row)

    def list_events(self, flt: EventFilter) -> list[Event]:
        sql, params = _newest_first("events", "received_at", flt, ("status", "source", "type"))
        with self.backend.reading() as tx:
            return [rowmap.event_from_row(r) for r in tx.fetchall(sql, params)]

    def events_to_dispatch(self, limit: int) -> list[Dispatch]:
        with self.backend.reading() as tx:
            rows = tx.fetchall(Q["events_to_dispatch"], {"limit": limit})
        return [Dispatch(r["id"], int(r["priority"]), r["dispatch_key"]) for r in rows]

    def mark_dispatched(self, dispatches: Sequence[Dispatch]) -> None:
        if not dispatches:
            return
        with self.backend.transaction() as tx:
            tx.executemany(
                Q["mark_dispatched"],
                [{"id": d.event_id, "dispatch_key": d.workflow_id} for d in dispatches],
            )

    def start_event(self, event_id: str) -> None:
        with self.backend.transaction() as tx:
            tx.execute(Q["start_event"], {"id": event_id})

    def finish_event(
        self, event_id: str, status: EventStatus, error: str | None, now: float
    ) -> None:
        with self.backend.transaction() as tx:
            tx.execute(
                Q["finish_event"],
                {"id": event_id, "status": str(status), "error": error, "now": now},
            )

    def requeue_event(self, event_id: str, workflow_id: str) -> None:
        with self.backend.transaction() as tx:
            if not tx.execute(Q["requeue_event"], {"id": event_id, "dispatch_key": workflow_id}):
                raise NotFound(f"no event {event_id}")

    def count_in_flight(self) -> int:
        with self.backend.reading() as tx:
            row = tx.fetchone(Q["count_in_flight"])
        return int(row["n"]) if row else 0

    def count_events(self) -> dict[str, int]:
        with self.backend.reading() as tx:
            return {r["status"]: int(r["n"]) for r in tx.fetchall(Q["count_events_by_status"])}

    # --- dead letters ---------------------------------------------------------------------

    def add_dead_letter(self, letter: DeadLetter) -> None:
        with self.backend.transaction() as tx:
            tx.execute(
                Q["insert_dead_letter"],
                {
                    "id": letter.id,
                    "job": letter.job,
                    "ref": letter.ref,
                    "error": letter.error,
                    "attempts": letter.attempts,
                    "failed_at": letter.failed_at,
                    "replays": letter.replays,
                    "auto_retry_at": letter.auto_retry_at,
                },
            )

    def get_dead_letter(self, letter_id: str) -> DeadLetter:
        with self.backend.reading() as tx:
            row = tx.fetchone(Q["get_dead_letter"], {"id": letter_id})
        if row is None:
            raise NotFound(f"no dead letter {letter_id}")
        return rowmap.letter_from_row(row)

    def list_dead_letters(self, status: str | None, limit: int) -> list[DeadLetter]:
        sql = "SELECT * FROM dead_letters"
        params: dict[str, Any] = {"limit": limit}
        if status is not None:
            sql += " WHERE status = :status"
            params["status"] = status
        sql += " ORDER BY failed_at DESC, id DESC LIMIT :limit"
        with self.backend.reading() as tx:
            return [rowmap.letter_from_row(r) for r in tx.fetchall(sql, params)]

    def replays_of(self, job: str, ref: str) -> int:
        with self.backend.reading() as tx:
            row = tx.fetchone(Q["replays_of"], {"job": job, "ref": ref})
        return int(row["n"]) if row else 0

    def mark_dead_letter_replayed(
        self, letter_id: str, now: float, requeue_as: str | None = None
    ) -> bool:
        with self.backend.transaction() as tx:
            if tx.execute(Q["mark_dead_letter_replayed"], {"id": letter_id, "now": now}) != 1:
                return False
            if requeue_as is not None:
                row = tx.fetchone(Q["get_dead_letter"], {"id": letter_id})
                assert row is not None
                tx.execute(Q["requeue_event"], {"id": row["ref"], "dispatch_key": requeue_as})
            return True

    def due_dead_letters(self, now: float, limit: int) -> list[DeadLetter]:
        with self.backend.reading() as tx:
            rows = tx.fetchall(Q["due_dead_letters"], {"now": now, "limit": limit})
        return [rowmap.letter_from_row(r) for r in rows]

    # --- workers --------------------------------------------------------------------------

    def register_worker(self, worker_id: str, role: str, host: str, pid: int, now: float) -> None:
        with self.backend.transaction() as tx:
            tx.execute(
                Q["upsert_worker"],
                {"id": worker_id, "role": role, "host": host, "pid": pid, "now": now},
            )

    def heartbeat(self, worker_id: str, now: float) -> None:
        with self.backend.transaction() as tx:
            tx.execute(Q["heartbeat"], {"id": worker_id, "now": now})

    def claim_stale_workers(self, me: str, cutoff: float) -> list[str]:
        with self.backend.transaction() as tx:
            stale = [r["id"] for r in tx.fetchall(Q["stale_workers"], {"cutoff": cutoff, "id": me})]
            return [
                w
                for w in stale
                if tx.execute(Q["claim_worker"], {"id": w, "by": me, "cutoff": cutoff}) == 1
            ]

    def delete_expired_dedup(self, now: float) -> int:
        with self.backend.transaction() as tx:
            return tx.execute(Q["delete_expired_dedup"], {"now": now})

    # --- tasks ----------------------------------------------------------------------------

    def record_routing(
        self, decisions: Sequence[RouteDecision], tasks: Sequence[Task]
    ) -> list[Task]:
        events = sorted({d.event_id for d in decisions} | {t.event_id for t in tasks})
        with self.backend.transaction() as tx:
            if tasks:
                tx.executemany(Q["insert_task"], [rowmap.task_row(t) for t in tasks])
            if decisions:
                tx.executemany(Q["insert_decision"], [rowmap.decision_row(d) for d in decisions])
            found: list[Task] = []
            for event_id in events:
                rows = tx.fetchall(Q["tasks_of_event"], {"event_id": event_id})
                found.extend(rowmap.task_from_row(r) for r in rows)
        return found

    def decisions_for(self, event_id: str) -> list[RouteDecision]:
        with self.backend.reading() as tx:
            rows = tx.fetchall(Q["decisions_for"], {"event_id": event_id})
        return [rowmap.decision_from_row(r) for r in rows]

    def get_task(self, task_id: str) -> Task:
        with self.backend.reading() as tx:
            row = tx.fetchone(Q["get_task"], {"id": task_id})
        if row is None:
            raise NotFound(f"no task {task_id}")
        return rowmap.task_from_row(row)

    def list_tasks(self, flt: TaskFilter) -> list[Task]:
        columns = ("status", "route", "event_id", "workflow_id")
        sql, params = _newest_first("tasks", "created_at", flt, columns)
        with self.backend.reading() as tx:
            return [rowmap.task_from_row(r) for r in tx.fetchall(sql, params)]

    def tasks_to_dispatch(self, limit: int) -> list[Task]:
        with self.backend.reading() as tx:
            rows = tx.fetchall(Q["tasks_to_dispatch"], {"limit": limit})
        return [rowmap.task_from_row(r) for r in rows]

    def mark_task_dispatched(self, task_id: str, workflow_id: str) -> None:
        with self.backend.transaction() as tx:
            tx.execute(Q["mark_task_dispatched"], {"id": task_id, "workflow_id": workflow_id})

    def _write_task(
        self, task_id: str, changes: Mapping[str, Any], sources: frozenset[TaskStatus]
    ) -> bool:
        sql, params = task_update(task_id, changes, sources)
        with self.backend.transaction() as tx:
            if tx.execute(sql, params) != 1:
                return False
            if ends_task(changes):
                self._roll_up(tx, task_id, float(changes["updated_at"]))
            return True

    def _roll_up(self, tx: Tx, task_id: str, now: float) -> None:
        """A subtask ended: its parent's progress, in the same transaction (`rollup`)."""
        row = tx.fetchone(Q["parent_of"], {"id": task_id})
        parent = row["parent_id"] if row else None
        if parent is None:
            return
        siblings = tx.fetchall(Q["subtasks_of"], {"parent_id": parent})
        changes = rollup(parent, (TaskStatus(r["status"]) for r in siblings), now)
        tx.execute(*task_update(parent, changes, ROLLUP_SOURCES))

    def subtasks_of(self, parent_id: str) -> list[Task]:
        with self.backend.reading() as tx:
            rows = tx.fetchall(Q["subtasks_of"], {"parent_id": parent_id})
        return [rowmap.task_from_row(r) for r in rows]

    def count_tasks(self) -> dict[str, int]:
        with self.backend.reading() as tx:
            return {r["status"]: int(r["n"]) for r in tx.fetchall(Q["count_tasks_by_status"])}

    # --- actions --------------------------------------------------------------------------

    def record_action(self, record: ActionRecord) -> ActionRecord:
        with self.backend.transaction() as tx:
            tx.execute(Q["upsert_action"], rowmap.action_row(record))
            row = tx.fetchone(Q["get_action"], {"key": record.key})
        assert row is not None
        return rowmap.action_from_row(row)

    def get_action_by_key(self, key: str) -> ActionRecord | None:
        with self.backend.reading() as tx:
            row = tx.fetchone(Q["get_action"], {"key": key})
        return rowmap.action_from_row(row) if row is not None else None

    def actions_of(self, task_id: str) -> list[ActionRecord]:
        with self.backend.reading() as tx:
            rows = tx.fetchall(Q["actions_of_task"], {"task_id": task_id})
        return [rowmap.action_from_row(r) for r in rows]

    # --- stats ----------------------------------------------------------------------------

    def window_stats(
        self, since: float, until: float, percentiles: Sequence[int] = (50, 95)
    ) -> WindowStats:
        window = {"since": since, "until": until}
        with self.backend.reading() as tx:
            received = tx.fetchone(Q["stats_events_received"], window)
            ended = tx.fetchall(Q["stats_tasks_ended"], window)
            timed_row = tx.fetchone(Q["stats_tasks_timed"], window)
            timed = int(timed_row["n"]) if timed_row else 0
            at: dict[int, float] = {}
            for p in percentiles if timed else ():
                params = {**window, "position": nearest_rank(p, timed)}
                row = tx.fetchone(Q["stats_task_duration_at"], params)
                if row is not None:
                    at[p] = float(row["seconds"])
        return WindowStats(
            int(received["n"]) if received else 0,
            tuple(
                EndedTasks(
                    r["route"],
                    TaskStatus(r["status"]),
                    int(r["n"]),
                    float(r["cost"] or 0.0),
                    int(r["costed"]),
                )
                for r in ended
            ),
            timed,
            at,
        )

    def count_dead_letters(self) -> dict[str, int]:
        with self.backend.reading() as tx:
            rows = tx.fetchall(Q["count_dead_letters_by_status"])
        return {r["status"]: int(r["n"]) for r in rows}

    # --- spend ----------------------------------------------------------------------------

    def spent_between(self, since: float, until: float) -> float:
        with self.backend.reading() as tx:
            row = tx.fetchone(Q["spent_between"], {"since": since, "until": until})
        return float(row["usd"] or 0.0) if row else 0.0

    def costs_between(self, since: float, until: float) -> list[TaskCost]:
        with self.backend.reading() as tx:
            rows = tx.fetchall(Q["costs_between"], {"since": since, "until": until})
        return [
            TaskCost(r["id"], r["route"], r["agent"], float(r["started_at"]), float(r["cost_usd"]))
            for r in rows
        ]


def _newest_first(
    table: str, time_column: str, flt: Any, columns: Sequence[str]
) -> tuple[str, dict[str, Any]]:
    """`SELECT *` of `table` where each of `columns` set on the filter matches, newest first."""
    where: list[str] = []
    params: dict[str, Any] = {"limit": flt.limit}
    for column in columns:
        value = getattr(flt, column)
        if value is not None:
            where.append(f"{column} = :{column}")
            params[column] = str(value)
    sql = f"SELECT * FROM {table}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    return sql + f" ORDER BY {time_column} DESC, id DESC LIMIT :limit", params
