"""The pull-request fixes half of the in-memory store (`MemoryStore` inherits it), under the
store's one lock: the same bounds (`taskyard.records.fix_refusal`, `ci_verdict`), the same
one running fix per PR, and the same pushes and failing checks as the SQL store's."""

from __future__ import annotations

import threading
from dataclasses import replace

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


class MemoryFixes:
    _lock: threading.Lock
    _fixes: dict[str, Fix]
    _pushes: dict[tuple[str, str], str]
    _ci: dict[str, CiFailure]

    def request_fix(
        self, pr: str, comment_id: str, task_id: str, now: float, limits: FixLimits
    ) -> FixAdmission:
        with self._lock:
            return FixAdmission(self._admit(pr, comment_id, task_id, now, limits))

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

    def record_push(self, pr: str, sha: str, task_id: str, now: float) -> None:
        with self._lock:
            self._pushes.setdefault((pr, sha), task_id)

    def pushed_by_taskyard(self, pr: str, sha: str) -> bool:
        with self._lock:
            return (pr, sha) in self._pushes

    def request_ci_fix(
        self, pr: str, head_sha: str, check: str, task_id: str, now: float, limits: FixLimits
    ) -> CiFailure:
        with self._lock:
            stored = self._ci.get(task_id)
            if stored is not None:
                return stored
            failure = CiFailure(new_id(), pr, head_sha, check, CiOutcome.REFUSED, task_id, now)
            fixed = [
                c
                for c in self._ci.values()
                if c.pr == pr and c.head_sha == head_sha and c.outcome is CiOutcome.FIX
            ]
            pushed = (pr, head_sha) in self._pushes
            same = any(c.check == check for c in fixed)
            verdict = ci_verdict(failure, pushed, len(fixed), same)
            if verdict is not None:
                failure = replace(failure, outcome=verdict[0], reason=verdict[1])
            else:
                fix = self._admit(pr, ci_comment_id(check, head_sha), task_id, now, limits)
                failure = ci_fixed(failure, fix)
            self._ci[task_id] = failure
        return failure

    def repo_fixes(self, repo: str, limit: int) -> list[Fix]:
        with self._lock:
            found = [f for f in self._fixes.values() if f.pr.startswith(f"{repo}#")]
        found.sort(key=lambda f: (f.created_at, f.id), reverse=True)
        return found[:limit]

    def ci_outcomes(self, repo: str) -> dict[CiOutcome, int]:
        counts: dict[CiOutcome, int] = {}
        with self._lock:
            for c in self._ci.values():
                if c.pr.startswith(f"{repo}#"):
                    counts[c.outcome] = counts.get(c.outcome, 0) + 1
        return counts

    def fixed_prs(self) -> list[str]:
        with self._lock:
            return sorted({f.pr for f in self._fixes.values()})

    def _admit(self, pr: str, comment_id: str, task_id: str, now: float, limits: FixLimits) -> Fix:
        """The PR's fix for `task_id`: the stored one, or a new one queued or refused (the
        caller holds the lock)."""
        mine = self._of(pr)
        stored = next((f for f in mine if f.task_id == task_id), None)
        if stored is not None:
            return stored
        admitted = [f for f in mine if f.status is not FixStatus.REFUSED]
        on_comment = sum(1 for f in admitted if f.comment_id == comment_id)
        in_window = sum(1 for f in admitted if f.created_at > now - FIX_WINDOW_SECONDS)
        spent = sum(f.cost_usd or 0.0 for f in mine)
        reason = fix_refusal(pr, comment_id, on_comment, in_window, spent, limits)
        status = FixStatus.QUEUED if reason is None else FixStatus.REFUSED
        fix = Fix(new_id(), pr, comment_id, task_id, status, now, reason)
        self._fixes[fix.id] = fix
        return fix

    def _of(self, pr: str) -> list[Fix]:
        """The PR's fixes, oldest first (as they queue)."""
        found = [f for f in self._fixes.values() if f.pr == pr]
        return sorted(found, key=lambda f: (f.created_at, f.id))
