"""The audit log half of the in-memory store (`MemoryStore` inherits it), under the store's
one lock: appended only, each entry linked to the last, as the SQL store does."""

from __future__ import annotations

import copy
import threading
from collections.abc import Mapping
from typing import Any

from taskyard.audit import AuditEntry, next_entry


class MemoryAudit:
    _lock: threading.Lock
    _audit: list[AuditEntry]

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
