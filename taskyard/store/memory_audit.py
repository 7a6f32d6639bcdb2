"""The audit log half of the in-memory store (`MemoryStore` inherits it), under the store's
one lock: appended only, each entry linked to the last, as the SQL store does."""

from __future__ import annotations

import copy
import threading
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from taskyard.audit import AuditEntry, next_entry
from taskyard.lifecycle import TRANSITIONS, Kind, changes_for
from taskyard.models import Task


class MemoryAudit:
    _lock: threading.Lock
    _audit: list[AuditEntry]
    _tasks: dict[str, Task]

    def append_audit(
        self,
        kind: str,
        task_id: str | None,
        actor: str,
        data: Mapping[str, Any],
        now: float,
    ) -> AuditEntry:
        with self._lock:
            last = self._audit[-1] if self._audit else None
            entry = next_entry(last, kind, task_id, actor, data, now)
            self._audit.append(entry)
        return copy.deepcopy(entry)

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
        with self._lock:
            task = self._tasks.get(task_id)
            if task is None or task.status not in TRANSITIONS[Kind.ENTER_GATE].sources:
                return None
            self._tasks[task_id] = replace(task, **copy.deepcopy(changes))
            last = self._audit[-1] if self._audit else None
            entry = next_entry(last, "gate", task_id, actor, {**data, "gate": gate}, now)
            self._audit.append(entry)
        return copy.deepcopy(entry)

    def audit_entries(
        self, task_id: str | None = None, after_seq: int = 0, limit: int = 1000
    ) -> list[AuditEntry]:
        with self._lock:
            found = [
                e
                for e in self._audit[max(after_seq, 0) :]  # entry seq n is at index n - 1
                if task_id is None or e.task_id == task_id
            ]
        return copy.deepcopy(found[:limit])
