"""The pull-request fixes half of the SQL store (`SQLStore` inherits it): admitting a fix
under its bounds, and one running fix per PR. On PostgreSQL the fixes of one PR take turns
on an advisory lock, and the unique partial index `pr_fixes_running` holds whatever happens;
SQLite's write transactions already take turns."""

from __future__ import annotations

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
from taskyard.store import rows as rowmap
from taskyard.store.backends import Backend, Tx
from taskyard.store.sqlshared import Q


class SQLFixes:
    backend: Backend

    def request_fix(
        self, pr: str, comment_id: str, task_id: str, now: float, limits: FixLimits
    ) -> FixAdmission:
        with self.backend.transaction() as tx:
            self._lock_pr(tx, pr)
            params = {"pr": pr, "comment_id": comment_id, "window_start": now - FIX_WINDOW_SECONDS}
            counts = tx.fetchall(Q["fix_counts"], params)[0]  # an aggregate: always one row
            reason = fix_refusal(
                pr,
                comment_id,
                int(counts["on_comment"]),
                int(counts["in_window"]),
                float(counts["spent"]),
                limits,
            )
            status = FixStatus.QUEUED if reason is None else FixStatus.REFUSED
            fix = Fix(new_id(), pr, comment_id, task_id, status, now, reason)
            tx.execute(Q["insert_fix"], rowmap.fix_row(fix))
        return FixAdmission(fix)

    def start_fix(self, pr: str, now: float) -> Fix | None:
        with self.backend.transaction() as tx:
            self._lock_pr(tx, pr)
            if tx.execute(Q["start_fix"], {"pr": pr, "now": now}) != 1:
                return None
            row = tx.fetchone(Q["running_fix"], {"pr": pr})
        return rowmap.fix_from_row(row) if row is not None else None

    def finish_fix(self, fix_id: str, status: FixStatus, cost_usd: float, now: float) -> Fix | None:
        check_finish(status)
        params = {"id": fix_id, "status": str(status), "cost_usd": cost_usd, "now": now}
        with self.backend.transaction() as tx:
            changed = tx.execute(Q["finish_fix"], params)
            row = tx.fetchone(Q["get_fix"], {"id": fix_id})
        if row is None:
            raise NotFound(f"no fix {fix_id}")
        return rowmap.fix_from_row(row) if changed else None

    def fixes_of(self, pr: str, since: float = 0.0) -> list[Fix]:
        with self.backend.reading() as tx:
            return [
                rowmap.fix_from_row(r)
                for r in tx.fetchall(Q["fixes_of"], {"pr": pr, "since": since})
            ]

    def pr_spend(self, pr: str) -> float:
        with self.backend.reading() as tx:
            row = tx.fetchone(Q["pr_spend"], {"pr": pr})
        return float(row["spent"]) if row is not None else 0.0

    def _lock_pr(self, tx: Tx, pr: str) -> None:
        if self.backend.dialect == "postgresql":
            tx.fetchall(Q["lock_pr_fixes"], {"pr": pr})
