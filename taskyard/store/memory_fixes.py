"""The pull-request fixes half of the in-memory store (`MemoryStore` inherits it), under the
store's one lock: the same bounds (`taskyard.records.fix_refusal`) and the same one running
fix per PR as the SQL store's."""

from __future__ import annotations

import threading
from dataclasses import replace

from taskyard.exceptions import NotFound
from taskyard.models import new_id
from taskyard.records import (
    FIX_WINDOW_SECONDS,
    Fix,
    FixAdmission,
    FixLimits,
    FixStatus,
    check_finish,
    fix_refusal,
)


class MemoryFixes:
    _lock: threading.Lock
    _fixes: dict[str, Fix]

    def request_fix(
        self, pr: str, comment_id: str, task_id: str, now: float, limits: FixLimits
    ) -> FixAdmission:
        with self._lock:
            mine = self._of(pr)
            admitted = [f for f in mine if f.status is not FixStatus.REFUSED]
            on_comment = sum(1 for f in admitted if f.comment_id == comment_id)
            in_window = sum(1 for f in admitted if f.created_at > now - FIX_WINDOW_SECONDS)
            spent = sum(f.cost_usd or 0.0 for f in mine)
            reason = fix_refusal(pr, comment_id, on_comment, in_window, spent, limits)
            status = FixStatus.QUEUED if reason is None else FixStatus.REFUSED
            fix = Fix(new_id(), pr, comment_id, task_id, status, now, reason)
            self._fixes[fix.id] = fix
        return FixAdmission(fix)

    def start_fix(self, pr: str, now: float) -> Fix | None:
        with self._lock:
            mine = self._of(pr)
            if any(f.status is FixStatus.RUNNING for f in mine):
                return None
            queued = [f for f in mine if f.status is FixStatus.QUEUED]
            if not queued:
                return None
            started = replace(queued[0], status=FixStatus.RUNNING, started_at=now)
            self._fixes[started.id] = started
        return started

    def finish_fix(self, fix_id: str, status: FixStatus, cost_usd: float, now: float) -> Fix | None:
        check_finish(status)
        with self._lock:
            fix = self._fixes.get(fix_id)
            if fix is None:
                raise NotFound(f"no fix {fix_id}")
            if fix.status not in (FixStatus.QUEUED, FixStatus.RUNNING):
                return None
            finished = replace(fix, status=status, cost_usd=cost_usd, finished_at=now)
            self._fixes[fix_id] = finished
        return finished

    def fixes_of(self, pr: str, since: float = 0.0) -> list[Fix]:
        with self._lock:
            return [f for f in self._of(pr) if f.created_at >= since]

    def pr_spend(self, pr: str) -> float:
        with self._lock:
            return sum(f.cost_usd or 0.0 for f in self._of(pr))

    def _of(self, pr: str) -> list[Fix]:
        """The PR's fixes, oldest first (as they queue)."""
        found = [f for f in self._fixes.values() if f.pr == pr]
        return sorted(found, key=lambda f: (f.created_at, f.id))
