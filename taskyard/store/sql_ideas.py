"""The ideas half of the SQL store (`SQLStore` inherits it): an idea's row and its event log
change together, in one transaction; the log's `seq` comes from the idea's row, which the
transaction holds until it ends, so one idea's events are numbered in the order written."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson

from taskyard.exceptions import NotFound
from taskyard.idea import (
    IDEA_STEPS,
    INTENT,
    SUBJECT_OF_STEP,
    Idea,
    IdeaEvent,
    IdeaStatus,
    IdeaStep,
    IdeaTask,
    idea_changes,
)
from taskyard.store import rows as rowmap
from taskyard.store.backends import Backend, Tx
from taskyard.store.sqlshared import Q


class SQLIdeas:
    backend: Backend

    def create_idea(self, idea: Idea, data: Mapping[str, Any]) -> Idea:
        with self.backend.transaction() as tx:
            if tx.execute(Q["insert_idea"], rowmap.idea_row(idea)) == 1:  # else: it was there
                _append(tx, idea.id, INTENT, "registered", data, idea.created_at)
        return self.get_idea(idea.id)

    def get_idea(self, idea_id: str) -> Idea:
        with self.backend.reading() as tx:
            row = tx.fetchone(Q["get_idea"], {"id": idea_id})
        if row is None:
            raise NotFound(f"no idea {idea_id}")
        return rowmap.idea_from_row(row)

    def list_ideas(self, status: IdeaStatus | None = None, limit: int = 100) -> list[Idea]:
        params: dict[str, Any] = {"limit": limit}
        sql = Q["list_ideas"]
        if status is not None:
            sql, params["status"] = Q["list_ideas_in"], str(status)
        with self.backend.reading() as tx:
            return [rowmap.idea_from_row(r) for r in tx.fetchall(sql, params)]

    def idea_transition(
        self,
        idea_id: str,
        step: IdeaStep,
        kind: str,
        data: Mapping[str, Any],
        now: float,
        **fields: Any,
    ) -> Idea | None:
        sources = IDEA_STEPS[step][0]
        with self.backend.transaction() as tx:
            row = tx.fetchone(Q["get_idea"], {"id": idea_id})
            if row is None:
                raise NotFound(f"no idea {idea_id}")
            changes = idea_changes(rowmap.idea_from_row(row), step, fields, now)
            if changes is None:
                return None
            changes = {k: str(v) if isinstance(v, IdeaStatus) else v for k, v in changes.items()}
            sets = ", ".join(f"{k} = :c_{k}" for k in changes)
            names = ", ".join(f":s{i}" for i in range(len(sources)))
            params = {f"c_{k}": v for k, v in changes.items()}
            params |= {f"s{i}": str(s) for i, s in enumerate(sorted(sources))}
            sql = f"UPDATE ideas SET {sets} WHERE id = :id AND status IN ({names})"
            if tx.execute(sql, {**params, "id": idea_id}) != 1:
                return None
            _append(tx, idea_id, SUBJECT_OF_STEP[step], kind, data, now)
            found = tx.fetchone(Q["get_idea"], {"id": idea_id})
        assert found is not None
        return rowmap.idea_from_row(found)

    def note_idea(
        self, idea_id: str, subject: str, kind: str, data: Mapping[str, Any], now: float
    ) -> IdeaEvent:
        with self.backend.transaction() as tx:
            return _append(tx, idea_id, subject, kind, data, now)

    def idea_events(self, idea_id: str, after_seq: int = 0) -> list[IdeaEvent]:
        with self.backend.reading() as tx:
            rows = tx.fetchall(Q["idea_events"], {"idea_id": idea_id, "after": after_seq})
        return [rowmap.idea_event_from_row(r) for r in rows]

    def unpublished_idea_events(self, limit: int = 500) -> list[IdeaEvent]:
        with self.backend.reading() as tx:
            rows = tx.fetchall(Q["unpublished_idea_events"], {"limit": limit})
        return [rowmap.idea_event_from_row(r) for r in rows]

    def mark_idea_events_published(self, keys: Iterable[tuple[str, int]], now: float) -> None:
        params = [{"idea_id": i, "seq": s, "at": now} for i, s in keys]
        if params:
            with self.backend.transaction() as tx:
                tx.executemany(Q["mark_idea_event_published"], params)

    def add_idea_plan(
        self,
        idea_id: str,
        version: int,
        plan: Mapping[str, Any],
        errors: Sequence[str],
        now: float,
    ) -> None:
        row = {
            "idea_id": idea_id,
            "version": version,
            "plan": orjson.dumps(plan).decode(),
            "errors": orjson.dumps(list(errors)).decode() if errors else None,
            "created_at": now,
        }
        with self.backend.transaction() as tx:
            tx.execute(Q["insert_idea_plan"], row)

    def idea_plans(self, idea_id: str) -> list[dict[str, Any]]:
        with self.backend.reading() as tx:
            rows = tx.fetchall(Q["idea_plans"], {"idea_id": idea_id})
        return [
            {
                "version": int(r["version"]),
                "plan": orjson.loads(r["plan"]),
                "errors": orjson.loads(r["errors"]) if r["errors"] else [],
                "created_at": float(r["created_at"]),
            }
            for r in rows
        ]

    def set_idea_tasks(self, idea_id: str, tasks: Sequence[IdeaTask]) -> list[IdeaTask]:
        keys = {t.key for t in tasks}
        with self.backend.transaction() as tx:
            for old in tx.fetchall(Q["idea_tasks"], {"idea_id": idea_id}):
                if old["key"] not in keys:  # dropped by a re-plan: gone unless it ran
                    tx.execute(Q["delete_idea_task"], {"idea_id": idea_id, "key": old["key"]})
            for task in tasks:
                tx.execute(Q["upsert_idea_task"], rowmap.idea_task_row(task))
            rows = tx.fetchall(Q["idea_tasks"], {"idea_id": idea_id})
        return [rowmap.idea_task_from_row(r) for r in rows]

    def idea_tasks(self, idea_id: str) -> list[IdeaTask]:
        with self.backend.reading() as tx:
            rows = tx.fetchall(Q["idea_tasks"], {"idea_id": idea_id})
        return [rowmap.idea_task_from_row(r) for r in rows]

    def update_idea_task(
        self, idea_id: str, key: str, replaces: str | None = None, **fields: Any
    ) -> bool:
        """Set `task_id` (with its `branch`) once — or in place of `replaces` —, or
        `integrated`: True if it changed."""
        allowed = {"task_id", "branch", "integrated"}
        if not fields or set(fields) - allowed:
            raise ValueError(f"an idea task's {sorted(set(fields) - allowed)} cannot be set")
        guard = ""
        if "task_id" in fields:
            guard = " AND task_id IS NULL" if replaces is None else " AND task_id = :replaces"
            if replaces is not None:
                fields = {**fields, "replaces": replaces}
        sets = ", ".join(f"{k} = :{k}" for k in fields if k != "replaces")
        sql = f"UPDATE idea_tasks SET {sets} WHERE idea_id = :idea_id AND key = :key{guard}"
        with self.backend.transaction() as tx:
            return tx.execute(sql, {**fields, "idea_id": idea_id, "key": key}) == 1


def _append(
    tx: Tx, idea_id: str, subject: str, kind: str, data: Mapping[str, Any], now: float
) -> IdeaEvent:
    if tx.execute(Q["next_idea_seq"], {"id": idea_id}) != 1:
        raise NotFound(f"no idea {idea_id}")
    row = tx.fetchone(Q["idea_last_seq"], {"id": idea_id})
    assert row is not None
    event = IdeaEvent(idea_id, int(row["last_seq"]), subject, kind, dict(data), now)
    params = {
        "idea_id": idea_id,
        "seq": event.seq,
        "subject": subject,
        "kind": kind,
        "data": orjson.dumps(event.data).decode(),
        "at": now,
    }
    tx.execute(Q["insert_idea_event"], params)
    return event
