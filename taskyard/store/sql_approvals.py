"""The approvals half of the SQL store (`SQLStore` inherits it): requests, decisions and
their attempts, expiry and reminders. A decision takes its task's row first (PostgreSQL), so
of the decisions on one task the last to leave it without a pending request resumes it."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from taskyard.exceptions import NotFound, StoreError
from taskyard.lifecycle import TRANSITIONS, Kind, changes_for
from taskyard.models import new_id
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
from taskyard.store import rows as rowmap
from taskyard.store.backends import Backend, Tx
from taskyard.store.sqlshared import NONE_PENDING, Q, task_update


class SQLApprovals:
    backend: Backend

    def create_approval(self, approval: Approval) -> Approval:
        with self.backend.transaction() as tx:
            return self._insert_approval(tx, approval)

    def _insert_approval(self, tx: Tx, approval: Approval) -> Approval:
        row = rowmap.approval_row(approval)
        # Nothing inserted: a pending request for the action exists (maybe just committed
        # by a racing caller: this statement sees it).
        if tx.execute(Q["insert_approval"], row) == 0:
            pending = tx.fetchone(Q["pending_approval_for"], {"action_key": row["action_key"]})
            if pending is None:
                raise StoreError(f"approval for {approval.action_key} neither stored nor found")
            return rowmap.approval_from_row(pending)
        return self._approval(tx, approval.id)

    def resubmit_approval(
        self, new: Approval, reason: Callable[[str], str], now: float
    ) -> Approval | None:
        with self.backend.transaction() as tx:
            self._lock_task(tx, new.task_id)
            pending = tx.fetchone(Q["pending_approval_for"], {"action_key": new.action_key})
            waits_for = new.id if pending is None else str(pending["id"])
            changes = changes_for(new.task_id, Kind.RESUBMIT, {"reason": reason(waits_for)}, now)
            sql, params = task_update(new.task_id, changes, TRANSITIONS[Kind.RESUBMIT].sources)
            if tx.execute(sql, params) != 1:
                return None
            return self._insert_approval(tx, new)

    def get_approval(self, approval_id: str) -> Approval:
        with self.backend.reading() as tx:
            return self._approval(tx, approval_id)

    def _approval(self, tx: Tx, approval_id: str) -> Approval:
        row = tx.fetchone(Q["get_approval"], {"id": approval_id})
        if row is None:
            raise NotFound(f"no approval {approval_id}")
        return rowmap.approval_from_row(row)

    def latest_approval_for(self, action_key: str) -> Approval | None:
        with self.backend.reading() as tx:
            row = tx.fetchone(Q["latest_approval_for"], {"action_key": action_key})
        return rowmap.approval_from_row(row) if row is not None else None

    def list_approvals(
        self,
        status: ApprovalStatus | None = None,
        task_id: str | None = None,
        limit: int = 100,
        include_archived: bool = False,
    ) -> list[Approval]:
        where: list[str] = []
        params: dict[str, Any] = {"limit": limit}
        if status is not None:
            where.append("status = :status")
            params["status"] = str(status)
        if task_id is not None:
            where.append("task_id = :task_id")
            params["task_id"] = task_id
        if not include_archived:
            where.append("archived = 0")
        sql = "SELECT * FROM approvals"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at DESC, id DESC LIMIT :limit"
        with self.backend.reading() as tx:
            return [rowmap.approval_from_row(r) for r in tx.fetchall(sql, params)]

    def find_approval_by_channel(self, platform: str, key: str, value: str) -> Approval | None:
        # The value as it appears inside the JSON text (a string's or a number's), as a LIKE
        # pattern; the exact platform and key are checked on the few rows it finds.
        text = orjson.dumps(value).decode()[1:-1]
        pattern = "%" + re.sub(r"([\\%_])", r"\\\1", text) + "%"
        with self.backend.reading() as tx:
            rows = tx.fetchall(Q["approvals_by_channel"], {"pattern": pattern})
        for row in rows:
            approval = rowmap.approval_from_row(row)
            if channel_matches(approval, platform, key, value):
                return approval
        return None

    def set_approval_channels(self, approval_id: str, channels: Mapping[str, Any]) -> Approval:
        with self.backend.transaction() as tx:
            if self.backend.dialect == "postgresql":
                tx.fetchall(Q["lock_approval"], {"id": approval_id})
            merged = {**self._approval(tx, approval_id).channels, **channels}
            params = {"id": approval_id, "channels": orjson.dumps(merged).decode()}
            tx.execute(Q["set_approval_channels"], params)
            return self._approval(tx, approval_id)

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
        with self.backend.transaction() as tx:
            self._lock_task(tx, self._approval(tx, approval_id).task_id)
            params: dict[str, Any] = {"id": approval_id, "now": now}
            if decision is Decision.MORE_INFO:
                changed = tx.execute(Q["ask_approval_question"], {**params, "question": reason})
            else:
                decided = {"status": str(DECIDED_AS[decision]), "actor": actor, "via": via}
                changed = tx.execute(Q["decide_approval"], {**params, **decided, "reason": reason})
            after = self._approval(tx, approval_id)
            why = reason if changed else refusal(after, now)
            attempt = DecisionAttempt(approval_id, now, via, actor, decision, bool(changed), why)
            self._insert_attempt(tx, attempt)
            resumed = bool(changed) and decision is not Decision.MORE_INFO
            resumed = resumed and self._resume(tx, after.task_id, workflow_id, now)
        return DecisionOutcome(bool(changed), after, None if changed else why, resumed)

    def _lock_task(self, tx: Tx, task_id: str) -> None:
        if self.backend.dialect == "postgresql":
            tx.fetchall(Q["lock_task"], {"id": task_id})

    def _resume(self, tx: Tx, task_id: str, workflow_id: str, now: float) -> bool:
        """The `resume` transition, once none of the task's requests is pending."""
        changes = changes_for(task_id, Kind.RESUME, {"workflow_id": workflow_id}, now)
        sql, params = task_update(task_id, changes, TRANSITIONS[Kind.RESUME].sources)
        sql += " AND " + NONE_PENDING
        return tx.execute(sql, params) == 1

    def _insert_attempt(self, tx: Tx, attempt: DecisionAttempt) -> None:
        tx.execute(Q["insert_decision_attempt"], rowmap.attempt_row(attempt, new_id()))

    def record_decision_attempt(self, attempt: DecisionAttempt) -> None:
        with self.backend.transaction() as tx:
            self._insert_attempt(tx, attempt)

    def decision_attempts(self, approval_id: str) -> list[DecisionAttempt]:
        with self.backend.reading() as tx:
            rows = tx.fetchall(Q["decision_attempts"], {"approval_id": approval_id})
        return [rowmap.attempt_from_row(r) for r in rows]

    def expire_approvals(self, now: float, workflow_id_for: Callable[[str], str]) -> list[Approval]:
        with self.backend.transaction() as tx:
            due = tx.fetchall(Q["approvals_to_expire"], {"now": now})
            tasks = sorted({r["task_id"] for r in due})
            for task_id in tasks:  # in one order, as decisions take them: no deadlock
                self._lock_task(tx, task_id)
            expired: list[Approval] = []
            for r in due:
                if tx.execute(Q["expire_approval"], {"id": r["id"], "now": now}) != 1:
                    continue  # decided meanwhile
                expired.append(self._approval(tx, r["id"]))
                attempt = DecisionAttempt(
                    r["id"], now, EXPIRY_VIA, EXPIRY_ACTOR, Decision.EXPIRE, accepted=True
                )
                self._insert_attempt(tx, attempt)
            for task_id in sorted({a.task_id for a in expired}):
                self._resume(tx, task_id, workflow_id_for(task_id), now)
        return expired

    def due_reminders(self, now: float) -> list[Approval]:
        with self.backend.reading() as tx:
            rows = tx.fetchall(Q["due_reminders"], {"now": now})
        return [rowmap.approval_from_row(r) for r in rows]

    def mark_reminded(self, approval_id: str, now: float) -> None:
        with self.backend.transaction() as tx:
            if tx.execute(Q["mark_reminded"], {"id": approval_id, "now": now}) != 1:
                raise NotFound(f"no approval {approval_id}")

    def archive_approvals(self, decided_before: float) -> int:
        with self.backend.transaction() as tx:
            return tx.execute(Q["archive_expired_approvals"], {"before": decided_before})

    def approval_stats(self, now: float) -> dict[str, tuple[int, float]]:
        with self.backend.reading() as tx:
            rows = tx.fetchall(Q["pending_approvals_by_risk"])
        return {r["risk"]: (int(r["n"]), now - float(r["oldest"])) for r in rows}
