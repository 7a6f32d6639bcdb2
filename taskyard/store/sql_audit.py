"""The audit log half of the SQL store (`SQLStore` inherits it): entries are only appended,
each linked to the last one inside the same transaction, and never updated or deleted."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from taskyard.audit import AuditEntry, next_entry
from taskyard.lifecycle import TRANSITIONS, Kind, changes_for
from taskyard.store import rows as rowmap
from taskyard.store.backends import Backend, Tx
from taskyard.store.sqlshared import Q, task_update

GATE_ENTRY = "gate"  # the audit kind of a gate entered (`enter_gate`)


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
            return self._append(tx, kind, task_id, actor, data, now)

    def enter_gate(
        self,
        task_id: str,
        gates: list[dict[str, Any]],
        actor: str,
        data: Mapping[str, Any],
        now: float,
    ) -> AuditEntry | None:
        gate = str(gates[-1]["gate"])
        changes = changes_for(task_id, Kind.ENTER_GATE, {"gate": gate, "gates": gates}, now)
        sql, params = task_update(task_id, changes, TRANSITIONS[Kind.ENTER_GATE].sources)
        with self.backend.transaction() as tx:
            if tx.execute(sql, params) != 1:
                return None
            return self._append(tx, GATE_ENTRY, task_id, actor, {**data, "gate": gate}, now)

    def _append(
        self,
        tx: Tx,
        kind: str,
        task_id: str | None,
        actor: str,
        data: Mapping[str, Any],
        now: float,
    ) -> AuditEntry:
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
