"""Rows of the SQL store: each model to its column values and back (JSON columns included)."""

from __future__ import annotations

import enum
import json
from typing import Any

import orjson

from taskyard.audit import AuditEntry, canonical_json
from taskyard.idea import Idea, IdeaEvent, IdeaStatus, IdeaTask
from taskyard.models import (
    DeadLetter,
    DeadLetterStatus,
    Decision,
    Event,
    EventStatus,
    Priority,
    RouteDecision,
    Task,
    TaskStatus,
)
from taskyard.records import (
    ActionRecord,
    ActionStatus,
    Approval,
    ApprovalStatus,
    DecisionAttempt,
    Fix,
    FixStatus,
    SkipKind,
)
from taskyard.records import (
    Decision as ApprovalDecision,
)
from taskyard.store.backends import Row
from taskyard.store.base import TASK_JSON_COLUMNS


def action_row(a: ActionRecord) -> dict[str, Any]:
    return {
        "key": a.key,
        "task_id": a.task_id,
        "idx": a.index,
        "route": a.route,
        "type": a.type,
        "params": orjson.dumps(a.params).decode(),
        "reasoning": a.reasoning,
        "status": str(a.status),
        "reason": a.reason,
        "requests": orjson.dumps(a.requests).decode(),
        "sent": a.sent,
        "in_doubt": int(a.in_doubt),
        "attempts": a.attempts,
        "external_id": a.external_id,
        "url": a.url,
        "created_at": a.created_at,
        "updated_at": a.updated_at,
        "skipped_as": None if a.skipped_as is None else str(a.skipped_as),
    }


def action_from_row(r: Row) -> ActionRecord:
    return ActionRecord(
        key=r["key"],
        task_id=r["task_id"],
        index=int(r["idx"]),
        route=r["route"],
        type=r["type"],
        params=orjson.loads(r["params"]),
        status=ActionStatus(r["status"]),
        created_at=float(r["created_at"]),
        updated_at=float(r["updated_at"]),
        reasoning=r["reasoning"],
        reason=r["reason"],
        requests=orjson.loads(r["requests"]),
        sent=int(r["sent"]),
        in_doubt=bool(r["in_doubt"]),
        attempts=int(r["attempts"]),
        external_id=r["external_id"],
        url=r["url"],
        skipped_as=None if r["skipped_as"] is None else SkipKind(r["skipped_as"]),
    )


def task_value(column: str, value: Any) -> Any:
    if column in TASK_JSON_COLUMNS:
        return None if value is None else orjson.dumps(value).decode()
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, enum.StrEnum):  # a TaskStatus, an EndingKind
        return str(value)
    return value


def task_row(t: Task) -> dict[str, Any]:
    return {
        "id": t.id,
        "event_id": t.event_id,
        "route": t.route,
        "agent": t.agent,
        "status": str(t.status),
        "priority": int(t.priority),
        "created_at": t.created_at,
        "updated_at": t.updated_at,
        "workflow_id": t.workflow_id,
        "spec": orjson.dumps(t.spec).decode(),
        "parent_id": t.parent_id,
    }


def json_or_none(value: Any) -> Any:
    return orjson.loads(value) if value is not None else None


def task_from_row(r: Row) -> Task:
    return Task(
        id=r["id"],
        event_id=r["event_id"],
        route=r["route"],
        agent=r["agent"],
        status=TaskStatus(r["status"]),
        priority=Priority(int(r["priority"])),
        created_at=float(r["created_at"]),
        updated_at=float(r["updated_at"]),
        workflow_id=r["workflow_id"],
        spec=json_or_none(r["spec"]) or {},
        reason=r["reason"],
        attempts=int(r["attempts"]),
        started_at=float_or_none(r["started_at"]),
        finished_at=float_or_none(r["finished_at"]),
        workspace=r["workspace"],
        usage=json_or_none(r["usage"]) or {},
        cost_usd=float_or_none(r["cost_usd"]),
        result=json_or_none(r["result"]),
        worker=r["worker"],
        process=json_or_none(r["process"]),
        cancel_requested=bool(r["cancel_requested"]),
        dispatched=bool(r["dispatched"]),
        ending=r["ending"],
        gate=r["gate"],
        gates=json_or_none(r["gates"]) or [],
        parent_id=r["parent_id"],
    )


def decision_row(d: RouteDecision) -> dict[str, Any]:
    return {
        "event_id": d.event_id,
        "route": d.route,
        "decision": str(d.decision),
        "reason": d.reason,
        "task_id": d.task_id,
        "decided_at": d.decided_at,
    }


def decision_from_row(r: Row) -> RouteDecision:
    return RouteDecision(
        event_id=r["event_id"],
        route=r["route"],
        decision=Decision(r["decision"]),
        reason=r["reason"],
        task_id=r["task_id"],
        decided_at=float(r["decided_at"]),
    )


def event_row(e: Event) -> dict[str, Any]:
    return {
        "id": e.id,
        "source": e.source,
        "type": e.type,
        "delivery_id": e.delivery_id,
        "subject": e.subject,
        "actor": e.actor,
        "received_at": e.received_at,
        "priority": int(e.priority),
        "headers": orjson.dumps(e.headers).decode(),
        "body": e.body,
        "content_hash": e.content_hash,
        "status": str(e.status),
        "dispatch_key": e.id,
    }


def event_from_row(r: Row) -> Event:
    return Event(
        id=r["id"],
        source=r["source"],
        type=r["type"],
        delivery_id=r["delivery_id"],
        subject=r["subject"],
        actor=r["actor"],
        received_at=float(r["received_at"]),
        priority=Priority(int(r["priority"])),
        headers=orjson.loads(r["headers"]),
        body=bytes(r["body"]),
        content_hash=r["content_hash"],
        status=EventStatus(r["status"]),
        attempts=int(r["attempts"]),
        error=r["error"],
        processed_at=float(r["processed_at"]) if r["processed_at"] is not None else None,
    )


def letter_from_row(r: Row) -> DeadLetter:
    return DeadLetter(
        id=r["id"],
        job=r["job"],
        ref=r["ref"],
        error=r["error"],
        attempts=int(r["attempts"]),
        failed_at=float(r["failed_at"]),
        status=DeadLetterStatus(r["status"]),
        replays=int(r["replays"]),
        auto_retry_at=float_or_none(r["auto_retry_at"]),
        replayed_at=float_or_none(r["replayed_at"]),
    )


def float_or_none(value: Any) -> float | None:
    return float(value) if value is not None else None


def approval_row(a: Approval) -> dict[str, Any]:
    return {
        "id": a.id,
        "task_id": a.task_id,
        "action_key": a.action_key,
        "route": a.route,
        "action_type": a.action_type,
        "risk": a.risk,
        "rule": a.rule,
        "summary": a.summary,
        "details": orjson.dumps(a.details).decode(),
        "status": str(a.status),
        "created_at": a.created_at,
        "expires_at": a.expires_at,
        "channels": orjson.dumps(a.channels).decode(),
        "remind_at": a.remind_at,
        "reminded_at": a.reminded_at,
        "question": a.question,
        "decided_at": a.decided_at,
        "decided_by": a.decided_by,
        "decided_via": a.decided_via,
        "reason": a.reason,
        "archived": int(a.archived),
    }


def approval_from_row(r: Row) -> Approval:
    return Approval(
        id=r["id"],
        task_id=r["task_id"],
        action_key=r["action_key"],
        route=r["route"],
        action_type=r["action_type"],
        risk=r["risk"],
        rule=r["rule"],
        summary=r["summary"],
        details=orjson.loads(r["details"]),
        status=ApprovalStatus(r["status"]),
        created_at=float(r["created_at"]),
        expires_at=float(r["expires_at"]),
        channels=orjson.loads(r["channels"]),
        remind_at=float_or_none(r["remind_at"]),
        reminded_at=float_or_none(r["reminded_at"]),
        question=r["question"],
        decided_at=float_or_none(r["decided_at"]),
        decided_by=r["decided_by"],
        decided_via=r["decided_via"],
        reason=r["reason"],
        archived=bool(r["archived"]),
    )


def attempt_row(a: DecisionAttempt, attempt_id: str) -> dict[str, Any]:
    return {
        "id": attempt_id,
        "approval_id": a.approval_id,
        "at": a.at,
        "via": a.via,
        "actor": a.actor,
        "decision": str(a.decision),
        "accepted": int(a.accepted),
        "why": a.why,
    }


def attempt_from_row(r: Row) -> DecisionAttempt:
    return DecisionAttempt(
        approval_id=r["approval_id"],
        at=float(r["at"]),
        via=r["via"],
        actor=r["actor"],
        decision=ApprovalDecision(r["decision"]),
        accepted=bool(r["accepted"]),
        why=r["why"],
    )


def fix_row(fix: Fix) -> dict[str, Any]:
    return {
        "id": fix.id,
        "pr": fix.pr,
        "comment_id": fix.comment_id,
        "task_id": fix.task_id,
        "status": str(fix.status),
        "reason": fix.reason,
        "created_at": fix.created_at,
    }


def fix_from_row(row: Row) -> Fix:
    return Fix(
        id=row["id"],
        pr=row["pr"],
        comment_id=row["comment_id"],
        task_id=row["task_id"],
        status=FixStatus(row["status"]),
        created_at=float(row["created_at"]),
        reason=row["reason"],
        cost_usd=float_or_none(row["cost_usd"]),
        started_at=float_or_none(row["started_at"]),
        finished_at=float_or_none(row["finished_at"]),
    )


def audit_row(entry: AuditEntry) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        "at": entry.at,
        "kind": entry.kind,
        "task_id": entry.task_id,
        "actor": entry.actor,
        "data": canonical_json(entry.data),
        "prev_hash": entry.prev_hash,
        "hash": entry.hash,
    }


def audit_from_row(row: Row) -> AuditEntry:
    """The entry as stored, whatever it holds: verifying is `taskyard.audit.verify_chain`'s."""
    return AuditEntry(
        seq=int(row["seq"]),
        at=float(row["at"]),
        kind=row["kind"],
        task_id=row["task_id"],
        actor=row["actor"],
        data=json.loads(row["data"]),
        prev_hash=row["prev_hash"],
        hash=row["hash"],
    )


# --- ideas (taskyard.idea) ----------------------------------------------------------------


def idea_row(i: Idea) -> dict[str, Any]:
    return {
        "id": i.id,
        "status": str(i.status),
        "shape": orjson.dumps(i.shape).decode(),
        "origin": orjson.dumps(i.origin).decode(),
        "event_id": i.event_id,
        "created_at": i.created_at,
        "updated_at": i.updated_at,
        "reason": i.reason,
        "plan_version": i.plan_version,
        "paused_from": i.paused_from,
        "branch": i.branch,
        "pr_url": i.pr_url,
        "budget_usd": i.budget_usd,
    }


def idea_from_row(r: Row) -> Idea:
    return Idea(
        id=r["id"],
        status=IdeaStatus(r["status"]),
        shape=orjson.loads(r["shape"]),
        origin=orjson.loads(r["origin"]),
        event_id=r["event_id"],
        created_at=float(r["created_at"]),
        updated_at=float(r["updated_at"]),
        reason=r["reason"],
        plan_version=int(r["plan_version"]),
        paused_from=r["paused_from"],
        branch=r["branch"],
        pr_url=r["pr_url"],
        budget_usd=float_or_none(r["budget_usd"]),
        last_seq=int(r["last_seq"]),
    )


def idea_event_from_row(r: Row) -> IdeaEvent:
    return IdeaEvent(
        idea_id=r["idea_id"],
        seq=int(r["seq"]),
        subject=r["subject"],
        kind=r["kind"],
        data=orjson.loads(r["data"]),
        at=float(r["at"]),
        published_at=float_or_none(r["published_at"]),
    )


def idea_task_row(t: IdeaTask) -> dict[str, Any]:
    return {
        "idea_id": t.idea_id,
        "key": t.key,
        "title": t.title,
        "depends_on": orjson.dumps(list(t.depends_on)).decode(),
        "plan_version": t.plan_version,
        "spec": orjson.dumps(t.spec).decode(),
    }


def idea_task_from_row(r: Row) -> IdeaTask:
    return IdeaTask(
        idea_id=r["idea_id"],
        key=r["key"],
        title=r["title"],
        depends_on=tuple(orjson.loads(r["depends_on"])),
        plan_version=int(r["plan_version"]),
        spec=orjson.loads(r["spec"]),
        task_id=r["task_id"],
        branch=r["branch"],
        integrated=r["integrated"],
    )
