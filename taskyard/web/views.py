"""How events, dead letters, tasks, actions and audit entries are shown as JSON: one
definition for the CLI (`--json`), the management API (`/api/...`) and the UI's pages."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from taskyard.audit import AuditEntry, canonical_json, hash_of, verify_chain
from taskyard.models import DeadLetter, Event, RouteDecision, Task
from taskyard.records import ActionRecord, action_kind, iso
from taskyard.run.budget import waiting_reason
from taskyard.store.base import Store

AUDIT_PAGE = 1000  # audit entries read per query
BRIEF_MAX = 160  # characters of an audit entry's data the task page shows in its row

# Header names whose values may carry a credential (signatures are dropped at intake; a
# platform or a proxy may still send others): shown as "(hidden)" by the API and the UI.
SECRET_HEADER = re.compile(r"auth|cookie|token|secret|signature|key|password", re.I)


def masked_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """A delivery's headers with the values of any that may carry a credential hidden."""
    return {k: "(hidden)" if SECRET_HEADER.search(k) else v for k, v in headers.items()}


def event_json(e: Event, with_body: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": e.id,
        "source": e.source,
        "type": e.type,
        "delivery_id": e.delivery_id,
        "subject": e.subject,
        "actor": e.actor,
        "priority": e.priority.name,
        "status": str(e.status),
        "attempts": e.attempts,
        "error": e.error,
        "received_at": iso(e.received_at),
        "processed_at": iso(e.processed_at),
        "content_hash": e.content_hash,
        "size": len(e.body),
    }
    if with_body:
        data["headers"] = masked_headers(e.headers)
        try:
            data["body"] = e.body.decode("utf-8")
        except UnicodeDecodeError:
            data["body_base64"] = base64.b64encode(e.body).decode()
    return data


def decision_json(d: RouteDecision) -> dict[str, Any]:
    """What routing decided for one route of an event (`events show`'s `routing`)."""
    return {"route": d.route, "decision": str(d.decision), "reason": d.reason, "task_id": d.task_id}


def letter_json(d: DeadLetter) -> dict[str, Any]:
    return {
        "id": d.id,
        "job": d.job,
        "ref": d.ref,
        "event_id": d.ref,
        "error": d.error,
        "attempts": d.attempts,
        "failed_at": iso(d.failed_at),
        "status": str(d.status),
        "earlier_failures": d.replays,
        "auto_retry_at": iso(d.auto_retry_at),
        "replayed_at": iso(d.replayed_at),
    }


def task_json(t: Task) -> dict[str, Any]:
    ended = t.finished_at
    return {
        "id": t.id,
        "event_id": t.event_id,
        "route": t.route,
        "agent": t.agent,
        "status": str(t.status),
        "reason": t.reason,
        "ending": t.ending,  # how it ended (`taskyard.lifecycle.EndingKind`); reason: in words
        "priority": t.priority.name,
        "attempts": t.attempts,
        "usage": t.usage,
        "cost": t.cost_usd,
        "workspace": t.workspace,
        "workspace_exists": t.workspace is not None and Path(t.workspace).is_dir(),
        "created_at": iso(t.created_at),
        "started_at": iso(t.started_at),
        "finished_at": iso(ended),
        "duration_seconds": round(ended - t.started_at, 3)
        if ended is not None and t.started_at is not None
        else None,
        "worker": t.worker,
        "cancel_requested": t.cancel_requested,
        "waiting_reason": waiting_reason(t),  # why a queued task waits (`budget exhausted`)
        "result": t.result,
        "gate": t.gate,  # a change task's gate now, and each one it went through (run/change.py)
        "gates": t.gates,
        "parent_id": t.parent_id,  # a subtask's parent (run/subtasks.py)
    }


def action_json(a: ActionRecord) -> dict[str, Any]:
    return {
        "key": a.key,
        "index": a.index,
        "kind": action_kind(a.index),  # for people: "#0", "tool call", "report: outcome"
        "type": a.type,
        "status": str(a.status),
        "reason": a.reason,
        "skipped_as": None if a.skipped_as is None else str(a.skipped_as),
        "params": a.params,
        "reasoning": a.reasoning,
        "requests": a.requests,
        "sent": a.sent,
        "attempts": a.attempts,
        "in_doubt": a.in_doubt,
        "external_id": a.external_id,
        "url": a.url,
        "created_at": iso(a.created_at),
        "updated_at": iso(a.updated_at),
    }


def audit_log(store: Store) -> Iterator[AuditEntry]:
    """The whole audit log, oldest first, a page at a time: a long log is never one query."""
    after = 0
    while True:
        page = store.audit_entries(after_seq=after, limit=AUDIT_PAGE)
        yield from page
        if len(page) < AUDIT_PAGE:
            return
        after = page[-1].seq


def audit_entry_json(e: AuditEntry) -> dict[str, Any]:
    """One entry; `hash_ok` says whether its hash is the one its content gives (false: the
    entry was edited, or moved to another seq, in the database)."""
    return {
        "seq": e.seq,
        "at": iso(e.at),
        "kind": e.kind,
        "actor": e.actor,
        "data": e.data,
        "prev_hash": e.prev_hash,
        "hash": e.hash,
        "hash_ok": hash_of(e) == e.hash,
    }


def brief_json(value: Any) -> str:
    """A value as one line of canonical JSON, cut to `BRIEF_MAX` characters: a row's summary
    (the page escapes it like any text)."""
    text = canonical_json(value)
    return text if len(text) <= BRIEF_MAX else text[: BRIEF_MAX - 1] + "…"


def audit_json(store: Store, task_id: str) -> dict[str, Any]:
    """A task's audit entries and whether the whole chain verifies: an entry of another task
    edited or deleted breaks this task's record too, so the whole log is read and checked,
    and only its problems are told (`taskyard.audit.verify_chain`, in words)."""
    entries = list(audit_log(store))
    problems = verify_chain(entries)
    return {
        "task_id": task_id,
        "entries": [audit_entry_json(e) for e in entries if e.task_id == task_id],
        "chain": {
            "intact": not problems,
            "entries": len(entries),
            "problems": [{"seq": p.seq, "kind": p.kind, "message": p.message} for p in problems],
        },
    }
