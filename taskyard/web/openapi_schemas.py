"""The answers of the management API as JSON Schemas: `components.schemas` of its OpenAPI
document (`taskyard.web.openapi`), and the small builders both modules use."""

from __future__ import annotations

import enum
from typing import Any

from taskyard.audit import DELETED, EDITED, REORDERED
from taskyard.lifecycle import EndingKind
from taskyard.models import DeadLetterStatus, EventStatus, Priority, TaskStatus
from taskyard.models import Decision as RouteDecision
from taskyard.records import ActionStatus, ApprovalStatus, SkipKind
from taskyard.records import Decision as ApprovalDecision

Schema = dict[str, Any]
NO_NUL = "^[^\\u0000]*$"
ID = {"type": "string", "minLength": 1, "pattern": "^[^\\u0000/]+$"}


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def enum_of(kind: type[enum.Enum]) -> Schema:
    return {"type": "string", "enum": [str(k.value) for k in kind]}


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def obj(required: dict[str, Schema], optional: dict[str, Schema] | None = None) -> Schema:
    return {
        "type": "object",
        "required": list(required),
        "properties": {**required, **(optional or {})},
    }


STR: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
NUM: Schema = {"type": "number"}
BOOL: Schema = {"type": "boolean"}
OBJ: Schema = {"type": "object"}
TIME: Schema = {"type": "string", "format": "date-time"}
PRIORITY: Schema = {"type": "string", "enum": [p.name for p in Priority]}

SCHEMAS: dict[str, Schema] = {
    "Error": obj({"error": STR}),
    "Event": obj(
        {
            "id": STR,
            "source": STR,
            "type": STR,
            "delivery_id": nullable(STR),
            "subject": nullable(STR),
            "actor": nullable(STR),
            "priority": PRIORITY,
            "status": enum_of(EventStatus),
            "attempts": INT,
            "error": nullable(STR),
            "received_at": TIME,
            "processed_at": nullable(TIME),
            "content_hash": STR,
            "size": INT,
        }
    ),
    "RouteDecision": obj(
        {
            "route": STR,
            "decision": enum_of(RouteDecision),
            "reason": nullable(STR),
            "task_id": nullable(STR),
        }
    ),
    "EventDetail": {
        "allOf": [
            ref("Event"),
            obj(
                {
                    "headers": {"type": "object", "additionalProperties": STR},
                    "routing": {"type": "array", "items": ref("RouteDecision")},
                },
                {
                    "body": {"type": "string", "description": "the raw body, when UTF-8"},
                    "body_base64": {"type": "string", "description": "the raw body otherwise"},
                },
            ),
        ]
    },
    "Replayed": obj(
        {"event_id": STR, "workflow_id": STR, "queued": BOOL, "status": enum_of(EventStatus)}
    ),
    "DeadLetter": obj(
        {
            "id": STR,
            "job": STR,
            "ref": STR,
            "event_id": STR,
            "error": STR,
            "attempts": INT,
            "failed_at": TIME,
            "status": enum_of(DeadLetterStatus),
            "earlier_failures": INT,
            "auto_retry_at": nullable(TIME),
            "replayed_at": nullable(TIME),
        }
    ),
    "LetterReplayed": obj(
        {"id": STR, "workflow_id": STR, "queued": BOOL, "status": enum_of(DeadLetterStatus)}
    ),
    "Task": obj(
        {
            "id": STR,
            "event_id": STR,
            "route": STR,
            "agent": STR,
            "status": enum_of(TaskStatus),
            "reason": nullable(STR),
            "ending": nullable(enum_of(EndingKind)),
            "priority": PRIORITY,
            "attempts": INT,
            "usage": OBJ,
            "cost": nullable(NUM),
            "workspace": nullable(STR),
            "workspace_exists": BOOL,
            "created_at": TIME,
            "started_at": nullable(TIME),
            "finished_at": nullable(TIME),
            "duration_seconds": nullable(NUM),
            "worker": nullable(STR),
            "cancel_requested": BOOL,
            "waiting_reason": nullable(STR),
            "result": nullable(OBJ),
            "gate": nullable(STR),
            "gates": {"type": "array", "items": OBJ},
            "parent_id": nullable(STR),
        }
    ),
    "Action": obj(
        {
            "key": STR,
            "index": INT,
            "kind": STR,
            "type": STR,
            "status": enum_of(ActionStatus),
            "reason": nullable(STR),
            "skipped_as": nullable(enum_of(SkipKind)),
            "params": OBJ,
            "reasoning": STR,
            "requests": {"type": "array", "items": OBJ},
            "sent": INT,
            "attempts": INT,
            "in_doubt": BOOL,
            "external_id": nullable(STR),
            "url": nullable(STR),
            "created_at": TIME,
            "updated_at": TIME,
        }
    ),
    "TaskDetail": {
        "allOf": [
            ref("Task"),
            obj({"actions": {"type": "array", "items": ref("Action")}}),
        ]
    },
    "AuditEntry": obj(
        {
            "seq": INT,
            "at": TIME,
            "kind": STR,
            "actor": STR,
            "data": OBJ,
            "prev_hash": {**STR, "description": "the hash of the entry before it (64 zeros: none)"},
            "hash": {**STR, "description": "SHA-256 (hex) of its other fields"},
            "hash_ok": {**BOOL, "description": "its hash is the one its content gives"},
        }
    ),
    "TaskAudit": obj(
        {
            "task_id": STR,
            "entries": {"type": "array", "items": ref("AuditEntry")},
            "chain": obj(
                {
                    "intact": BOOL,
                    "entries": {**INT, "description": "how many entries the whole log has"},
                    "problems": {
                        "type": "array",
                        "items": obj(
                            {
                                "seq": INT,
                                "kind": {
                                    "type": "string",
                                    "enum": sorted([EDITED, DELETED, REORDERED]),
                                },
                                "message": STR,
                            }
                        ),
                    },
                }
            ),
        }
    ),
    "Refused": obj({"error": STR, "status": enum_of(TaskStatus)}),
    "Cancelled": obj(
        {"id": STR, "status": enum_of(TaskStatus), "cancelled": BOOL, "cancel_requested": BOOL}
    ),
    "Retried": obj(
        {
            "id": STR,
            "workflow_id": STR,
            "queued": BOOL,
            "reapply": BOOL,
            "status": enum_of(TaskStatus),
        }
    ),
    "Approval": obj(
        {
            "id": STR,
            "task_id": STR,
            "action_key": STR,
            "route": STR,
            "action_type": STR,
            "risk": STR,
            "rule": STR,
            "summary": STR,
            "status": enum_of(ApprovalStatus),
            "created_at": TIME,
            "expires_at": TIME,
            "decided_at": nullable(TIME),
            "decided_by": nullable(STR),
            "decided_via": nullable(STR),
            "reason": nullable(STR),
            "question": nullable(STR),
            "channels": OBJ,
            "details": OBJ,
        }
    ),
    "DecisionAttempt": obj(
        {
            "approval_id": STR,
            "at": NUM,
            "via": STR,
            "actor": STR,
            "decision": enum_of(ApprovalDecision),
            "accepted": BOOL,
            "why": nullable(STR),
        }
    ),
    "ApprovalDetail": {
        "allOf": [
            ref("Approval"),
            obj({"attempts": {"type": "array", "items": ref("DecisionAttempt")}}),
        ]
    },
    "DecisionOutcome": obj(
        {
            "id": STR,
            "accepted": BOOL,
            "status": enum_of(ApprovalStatus),
            "why": nullable(STR),
            "task_resumed": BOOL,
        }
    ),
    "Stats": obj(
        {
            "window": obj({"since": TIME, "until": TIME, "seconds": INT}),
            "throughput": obj(
                {
                    "events_received": INT,
                    "events_per_hour": NUM,
                    "tasks_finished": INT,
                    "tasks_per_hour": NUM,
                }
            ),
            "tasks": obj(
                {
                    "finished": INT,
                    "succeeded": INT,
                    "success_rate": nullable(NUM),
                    "by_status": {"type": "object", "additionalProperties": INT},
                    "duration_seconds": obj(
                        {"count": INT, "p50": nullable(NUM), "p95": nullable(NUM)}
                    ),
                }
            ),
            "cost": obj(
                {
                    "total_usd": NUM,
                    "tasks_with_cost": INT,
                    "per_task_usd": nullable(NUM),
                    "today_usd": NUM,
                    "by_route": {
                        "type": "array",
                        "items": obj(
                            {
                                "route": STR,
                                "finished": INT,
                                "succeeded": INT,
                                "success_rate": nullable(NUM),
                                "cost_usd": NUM,
                                "cost_per_task_usd": nullable(NUM),
                            }
                        ),
                    },
                }
            ),
            "queue": obj(
                {
                    "events": {"type": "object", "additionalProperties": INT},
                    "tasks": {"type": "object", "additionalProperties": INT},
                    "events_pending": INT,
                    "tasks_queued": INT,
                    "tasks_active": INT,
                    "tasks_awaiting_approval": INT,
                    "dead_letters_open": INT,
                }
            ),
        }
    ),
    "FixStats": obj(
        {
            "repos": {
                "type": "array",
                "items": obj(
                    {
                        "repo": STR,
                        "window": INT,
                        "fixes": INT,
                        "succeeded": INT,
                        "success_rate": nullable(NUM),
                        "reverted": nullable(INT),
                        "incidents": INT,
                        "cost_per_fix_usd": nullable(NUM),
                        "refused": INT,
                        "waiting": INT,
                        "ci": obj({"fix": INT, "rerun": INT, "refused": INT}),
                    }
                ),
            }
        }
    ),
}
