"""The approvals half of the in-memory store (`MemoryStore` inherits it), under the store's
one lock: the same rules as the SQL store's (`taskyard.records`, `taskyard.lifecycle`)."""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from taskyard.exceptions import NotFound, StoreError
from taskyard.lifecycle import TRANSITIONS, Kind, changes_for
from taskyard.models import (
    Task,
)
from taskyard.records import (
    DECIDED_AS,
    EXPIRY_ACTOR,
    EXPIRY_VIA,
    Approval,
    ApprovalStatus,
    Decision,
    DecisionAttempt,
    DecisionOutcome,
    channel_matches,
    check_decision,
    refusal,
)


class MemoryApprovals:
    _lock: threading.Lock
    _tasks: dict[str, Task]
    _approvals: dict[str, Approval]
    _attempts: list[DecisionAttempt]

    def create_approval(self, approval: Approval) -> Approval:
        with self._lock:
            return self._insert_approval(approval)

    def _insert_approval(self, approval: Approval) -> Approval:
        if approval.status is ApprovalStatus.PENDING:
            pending = self._pending_for(approval.action_key)
            if pending is not None:
                return pending
        if approval.id in self._approvals:
            raise StoreError(f"approval {approval.id} already stored")
        stored = replace(
            approval,
            details=copy.deepcopy(approval.details),
            channels=copy.deepcopy(approval.channels),
        )
        self._approvals[approval.id] = stored
        return stored

    def resubmit_approval(
        self, new: Approval, reason: Callable[[str], str], now: float
    ) -> Approval | None:
        with self._lock:
            task = self._tasks.get(new.task_id)
            if task is None or task.status not in TRANSITIONS[Kind.RESUBMIT].sources:
                return None
            pending = self._pending_for(new.action_key)
            waits_for = new.id if pending is None else pending.id
            changes = changes_for(new.task_id, Kind.RESUBMIT, {"reason": reason(waits_for)}, now)
            self._tasks[new.task_id] = replace(task, **changes)
            return self._insert_approval(new)

    def _pending_for(self, action_key: str) -> Approval | None:
        for a in self._approvals.values():
            if a.action_key == action_key and a.status is ApprovalStatus.PENDING:
                return a
        return None

    def get_approval(self, approval_id: str) -> Approval:
        with self._lock:
            return self._approval(approval_id)

    def _approval(self, approval_id: str) -> Approval:
        try:
            return self._approvals[approval_id]
        except KeyError:
            raise NotFound(f"no approval {approval_id}") from None

    def _newest_approvals(self) -> list[Approval]:
        return sorted(self._approvals.values(), key=lambda a: (a.created_at, a.id), reverse=True)

    def latest_approval_for(self, action_key: str) -> Approval | None:
        with self._lock:
            found = [a for a in self._newest_approvals() if a.action_key == action_key]
        return found[0] if found else None

    def list_approvals(
        self,
        status: ApprovalStatus | None = None,
        task_id: str | None = None,
        limit: int = 100,
        include_archived: bool = False,
    ) -> list[Approval]:
        with self._lock:
            found = [
                a
                for a in self._newest_approvals()
                if (status is None or a.status == status)
                and (task_id is None or a.task_id == task_id)
                and (include_archived or not a.archived)
            ]
        return found[:limit]

    def find_approval_by_channel(self, platform: str, key: str, value: str) -> Approval | None:
        with self._lock:
            for a in self._newest_approvals():
                if channel_matches(a, platform, key, value):
                    return a
        return None

    def set_approval_channels(self, approval_id: str, channels: Mapping[str, Any]) -> Approval:
        with self._lock:
            a = self._approval(approval_id)
            merged = {**a.channels, **copy.deepcopy(dict(channels))}
            self._approvals[approval_id] = replace(a, channels=merged)
            return self._approvals[approval_id]

    def decide_approval(
        self,
        approval_id: str,
        decision: Decision,
        actor: str,
        via: str,
        reason: str | None,
        now: float,
        workflow_id: str,
    ) -> DecisionOutcome:
        check_decision(decision)
        with self._lock:
            a = self._approval(approval_id)
            accepted = a.status is ApprovalStatus.PENDING and a.expires_at > now
            if accepted and decision is Decision.MORE_INFO:
                a = replace(a, question=reason)
            elif accepted:
                a = replace(
                    a,
                    status=DECIDED_AS[decision],
                    decided_at=now,
                    decided_by=actor,
                    decided_via=via,
                    reason=reason,
                )
            self._approvals[approval_id] = a
            why = reason if accepted else refusal(a, now)
            self._attempts.append(
                DecisionAttempt(approval_id, now, via, actor, decision, accepted, why)
            )
            resumed = accepted and decision is not Decision.MORE_INFO
            resumed = resumed and self._resume(a.task_id, workflow_id, now)
        return DecisionOutcome(accepted, a, None if accepted else why, resumed)

    def _resume(self, task_id: str, workflow_id: str, now: float) -> bool:
        task = self._tasks.get(task_id)
        if task is None or task.status not in TRANSITIONS[Kind.RESUME].sources:
            return False
        if any(
            a.task_id == task_id and a.status is ApprovalStatus.PENDING
            for a in self._approvals.values()
        ):
            return False
        changes = changes_for(task_id, Kind.RESUME, {"workflow_id": workflow_id}, now)
        self._tasks[task_id] = replace(task, **changes)
        return True

    def record_decision_attempt(self, attempt: DecisionAttempt) -> None:
        with self._lock:
            self._attempts.append(attempt)

    def decision_attempts(self, approval_id: str) -> list[DecisionAttempt]:
        with self._lock:
            found = [x for x in self._attempts if x.approval_id == approval_id]
        return sorted(found, key=lambda x: x.at)

    def expire_approvals(self, now: float, workflow_id_for: Callable[[str], str]) -> list[Approval]:
        with self._lock:
            expired: list[Approval] = []
            for a in list(self._approvals.values()):
                if a.status is not ApprovalStatus.PENDING or a.expires_at > now:
                    continue
                a = replace(
                    a,
                    status=ApprovalStatus.EXPIRED,
                    decided_at=now,
                    decided_by=EXPIRY_ACTOR,
                    decided_via=EXPIRY_VIA,
                )
                self._approvals[a.id] = a
                expired.append(a)
                self._attempts.append(
                    DecisionAttempt(a.id, now, EXPIRY_VIA, EXPIRY_ACTOR, Decision.EXPIRE, True)
                )
            for task_id in sorted({a.task_id for a in expired}):
                self._resume(task_id, workflow_id_for(task_id), now)
            return expired

    def due_reminders(self, now: float) -> list[Approval]:
        with self._lock:
            due = [
                a
                for a in self._approvals.values()
                if a.status is ApprovalStatus.PENDING
                and a.remind_at is not None
                and a.remind_at <= now
                and a.reminded_at is None
            ]
        return sorted(due, key=lambda a: (a.remind_at or 0.0, a.id))

    def mark_reminded(self, approval_id: str, now: float) -> None:
        with self._lock:
            self._approvals[approval_id] = replace(self._approval(approval_id), reminded_at=now)

    def archive_approvals(self, decided_before: float) -> int:
        with self._lock:
            old = [
                a
                for a in self._approvals.values()
                if a.status is ApprovalStatus.EXPIRED
                and not a.archived
                and a.decided_at is not None
                and a.decided_at < decided_before
            ]
            for a in old:
                self._approvals[a.id] = replace(a, archived=True)
            return len(old)

    def approval_stats(self, now: float) -> dict[str, tuple[int, float]]:
        with self._lock:
            pending = [a for a in self._approvals.values() if a.status is ApprovalStatus.PENDING]
        stats: dict[str, tuple[int, float]] = {}
        for a in pending:
            n, age = stats.get(a.risk, (0, 0.0))
            stats[a.risk] = (n + 1, max(age, now - a.created_at))
        return stats
