"""The pull-request fixes half of the SQL store (`SQLStore` inherits it): admitting a fix
under its bounds, one running fix per PR, the commits taskyard pushed, and what each failing
check came to. On PostgreSQL the fixes of one PR take turns on an advisory lock, and the
unique partial index `pr_fixes_running` holds whatever happens; SQLite's write transactions
already take turns."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from taskyard.exceptions import NotFound
from taskyard.models import new_id
from taskyard.records import (
    FIX_WINDOW_SECONDS,
    CiFailure,
    CiOutcome,
    Fix,
    FixAdmission,
    FixLimits,
    FixStatus,
    check_finish,
    ci_comment_id,
    ci_fixed,
    ci_verdict,
    fix_refusal,
)
from taskyard.store import rows as rowmap
from taskyard.store.backends import Backend, Row, Tx
from taskyard.store.sqlshared import Q


class SQLFixes:
    backend: Backend

    def request_fix(
        self, pr: str, comment_id: str, task_id: str, now: float, limits: FixLimits
    ) -> FixAdmission:
        with self.backend.transaction() as tx:
            self._lock_pr(tx, pr)
            return FixAdmission(self._admit(tx, pr, comment_id, task_id, now, limits))

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

    def record_push(self, pr: str, sha: str, task_id: str, now: float) -> None:
        with self.backend.transaction() as tx:
            tx.execute(Q["record_push"], {"pr": pr, "sha": sha, "task_id": task_id, "at": now})

    def pushed_by_taskyard(self, pr: str, sha: str) -> bool:
        with self.backend.reading() as tx:
            return tx.fetchone(Q["pushed_by_taskyard"], {"pr": pr, "sha": sha}) is not None

    def request_ci_fix(
        self, pr: str, head_sha: str, check: str, task_id: str, now: float, limits: FixLimits
    ) -> CiFailure:
        with self.backend.transaction() as tx:
            self._lock_pr(tx, pr)
            stored = tx.fetchone(Q["ci_failure_of_task"], {"task_id": task_id})
            if stored is not None:
                return _ci_from_row(stored)
            failure = self._ci_failure(tx, pr, head_sha, check, task_id, now, limits)
            tx.execute(Q["insert_ci_failure"], _ci_row(failure))
        return failure

    def repo_fixes(self, repo: str, limit: int) -> list[Fix]:
        with self.backend.reading() as tx:
            rows = tx.fetchall(Q["repo_fixes"], {**_prefix(repo), "limit": limit})
        return [rowmap.fix_from_row(r) for r in rows]

    def ci_outcomes(self, repo: str) -> dict[CiOutcome, int]:
        with self.backend.reading() as tx:
            rows = tx.fetchall(Q["ci_outcomes"], _prefix(repo))
        return {CiOutcome(r["outcome"]): int(r["n"]) for r in rows}

    def fixed_prs(self) -> list[str]:
        with self.backend.reading() as tx:
            return [str(r["pr"]) for r in tx.fetchall(Q["fixed_prs"])]

    def _admit(
        self, tx: Tx, pr: str, comment_id: str, task_id: str, now: float, limits: FixLimits
    ) -> Fix:
        """The PR's fix for `task_id`: the stored one, or a new one queued or refused (under
        the PR's lock)."""
        stored = tx.fetchone(Q["fix_of_task"], {"pr": pr, "task_id": task_id})
        if stored is not None:
            return rowmap.fix_from_row(stored)
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
        return fix

    def _ci_failure(
        self,
        tx: Tx,
        pr: str,
        head_sha: str,
        check: str,
        task_id: str,
        now: float,
        limits: FixLimits,
    ) -> CiFailure:
        failure = CiFailure(new_id(), pr, head_sha, check, CiOutcome.REFUSED, task_id, now)
        params = {"pr": pr, "head_sha": head_sha, "check_name": check}
        counts = tx.fetchall(Q["ci_head_counts"], params)[0]  # an aggregate: always one row
        pushed = tx.fetchone(Q["pushed_by_taskyard"], {"pr": pr, "sha": head_sha}) is not None
        verdict = ci_verdict(failure, pushed, int(counts["fixes"]), bool(counts["same_check"]))
        if verdict is not None:
            return replace(failure, outcome=verdict[0], reason=verdict[1])
        fix = self._admit(tx, pr, ci_comment_id(check, head_sha), task_id, now, limits)
        return ci_fixed(failure, fix)

    def _lock_pr(self, tx: Tx, pr: str) -> None:
        if self.backend.dialect == "postgresql":
            tx.fetchall(Q["lock_pr_fixes"], {"pr": pr})


def _prefix(repo: str) -> dict[str, Any]:
    """The query parameters matching the PRs of `repo` (`github:acme/api#…`)."""
    prefix = f"{repo}#"
    return {"prefix": prefix, "n": len(prefix)}


def _ci_row(f: CiFailure) -> dict[str, Any]:
    return {
        "id": f.id,
        "pr": f.pr,
        "head_sha": f.head_sha,
        "check_name": f.check,
        "outcome": str(f.outcome),
        "task_id": f.task_id,
        "fix_id": f.fix_id,
        "reason": f.reason,
        "at": f.at,
    }


def _ci_from_row(r: Row) -> CiFailure:
    return CiFailure(
        id=r["id"],
        pr=r["pr"],
        head_sha=r["head_sha"],
        check=r["check_name"],
        outcome=CiOutcome(r["outcome"]),
        task_id=r["task_id"],
        at=float(r["at"]),
        fix_id=r["fix_id"],
        reason=r["reason"],
    )
