"""The audit log half of the SQL store (`SQLStore` inherits it): entries are only appended,
each linked to the last one inside the same transaction, and never updated or deleted."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from taskyard.audit import AuditEntry, next_entry
from taskyard.store import rows as rowmap
from taskyard.store.backends import Backend
from taskyard.store.sqlshared import Q


class SQLAudit:
    backend: Backend

    def append_audit(
        self,
        kind: str,
        task_id: str | None,
        actor: str,
        data: Mapping[str, Any],
        now: float,
    ) -> AuditEntry:
        with self.backend.transaction() as tx:
            if self.backend.dialect == "postgresql":
                tx.execute(Q["lock_audit_log"])
            last = tx.fetchone(Q["last_audit_entry"])
            entry = next_entry(
                rowmap.audit_from_row(last) if last else None, kind, task_id, actor, data, now
            )
            tx.execute(Q["insert_audit_entry"], rowmap.audit_row(entry))
        return entry

    def audit_entries(
        self, task_id: str | None = None, after_seq: int = 0, limit: int = 1000
    ) -> list[AuditEntry]:
        params: dict[str, Any] = {"after": after_seq, "limit": limit}
        if task_id is None:
            sql = Q["audit_entries"]
        else:
            sql, params["task_id"] = Q["audit_entries_of_task"], task_id
        with self.backend.reading() as tx:
            return [rowmap.audit_from_row(r) for r in tx.fetchall(sql, params)]
