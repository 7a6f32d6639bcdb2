"""The management API's OpenAPI 3.1 document, served at `GET /api/openapi.json`.

Written by hand beside the endpoints it describes (the answers' schemas are in
`taskyard.web.openapi_schemas`); the enums come from the models, so a new state shows up here
by itself. Tests check that every route is described and answers as described (and
schemathesis, against a running server).
"""

from __future__ import annotations

from typing import Any

from taskyard.idea import IdeaStatus
from taskyard.models import EventStatus, TaskStatus
from taskyard.records import ApprovalStatus
from taskyard.run.tasklogs import PAGE_LIMIT_MAX
from taskyard.web.api_fixes import REPO
from taskyard.web.openapi_ideas import IDEA_SCHEMAS
from taskyard.web.openapi_schemas import (
    BOOL,
    ID,
    INT,
    NO_NUL,
    OBJ,
    SCHEMAS,
    STR,
    Schema,
    enum_of,
    obj,
    ref,
)
from taskyard.web.params import MAX_LIMIT


def _json(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Schema]:
    told = {
        400: "a parameter or the body is not valid (the error says which)",
        401: "no valid bearer token",
        403: "no token is configured and the client is not on loopback",
        404: "no such record",
        409: "not possible in the record's present state (the error says why)",
        429: "too many wrong tokens from this client: wait `Retry-After` seconds",
    }
    shown = sorted({401, 403, 429, *statuses})
    return {str(s): _json(ref("Error"), told[s]) for s in shown}


def _path(name: str, what: str) -> Schema:
    return {"name": name, "in": "path", "required": True, "schema": ID, "description": what}


def _query(name: str, schema: Schema, what: str) -> Schema:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": what}


TEXT_FILTER: Schema = {"type": "string", "pattern": NO_NUL}
SSE_EVENT = obj(
    {"event": {"type": "string", "enum": ["log", "status", "end"]}, "data": STR},
    {"id": {"type": "string", "pattern": "^[0-9]+$"}, "retry": INT},
)
LIMIT = _query(
    "limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}, "at most this many"
)


def _op(
    op_id: str,
    summary: str,
    ok: dict[str, Schema],
    params: list[Schema] | None = None,
    errors: tuple[int, ...] = (),
    body: Schema | None = None,
) -> Schema:
    op: Schema = {
        "operationId": op_id,
        "summary": summary,
        "parameters": params or [],
        "responses": {**ok, **_errors(*errors)},
    }
    if body is not None:
        op["requestBody"] = {
            "required": False,
            "content": {"application/json": {"schema": body}},
        }
    return op


def _list(key: str, item: str) -> Schema:
    return obj({key: {"type": "array", "items": ref(item)}})


def _links(key: str, param: str, *op_ids: str, **constants: str) -> dict[str, Schema]:
    """Links from a list's first item to the operations that take its id."""
    first = f"$response.body#/{key}/0/id"
    return {op: {"operationId": op, "parameters": {param: first, **constants}} for op in op_ids}


def _linked(response: Schema, links: dict[str, Schema]) -> Schema:
    return {**response, "links": links}


EVENT_ID = _path("event_id", "the event's id")
TASK_ID = _path("task_id", "the task's id")
LETTER_ID = _path("letter_id", "the dead letter's id")
APPROVAL_ID = _path("approval_id", "the approval request's id")


def _paths() -> dict[str, Schema]:
    return {
        "/api/events": {
            "get": _op(
                "listEvents",
                "Stored events, newest first",
                {
                    "200": _linked(
                        _json(_list("events", "Event"), "the events"),
                        _links("events", "event_id", "showEvent", "replayEvent"),
                    )
                },
                [
                    _query("status", enum_of(EventStatus), "only this status"),
                    _query("source", TEXT_FILTER, "only this source (github, linear, …)"),
                    _query("type", TEXT_FILTER, "only this type (github:pull_request.opened)"),
                    LIMIT,
                ],
                (400,),
            )
        },
        "/api/events/{event_id}": {
            "get": _op(
                "showEvent",
                "One event with its headers, raw body and routing decisions",
                {"200": _json(ref("EventDetail"), "the event")},
                [EVENT_ID],
                (400, 404),
            )
        },
        "/api/events/{event_id}/replay": {
            "post": _op(
                "replayEvent",
                "Run the event's job again (the dispatcher picks it up)",
                {"202": _json(ref("Replayed"), "queued again")},
                [EVENT_ID],
                (400, 404),
            )
        },
        "/api/dlq": {
            "get": _op(
                "listDeadLetters",
                "Dead letters (jobs that failed for good), newest first",
                {
                    "200": _linked(
                        _json(_list("dead_letters", "DeadLetter"), "the dead letters"),
                        _links("dead_letters", "letter_id", "showDeadLetter", "replayDeadLetter"),
                    )
                },
                [
                    _query(
                        "status",
                        {"type": "string", "enum": ["open", "replayed", "all"]},
                        "open (the default), replayed or all",
                    ),
                    LIMIT,
                ],
                (400,),
            )
        },
        "/api/dlq/{letter_id}": {
            "get": _op(
                "showDeadLetter",
                "One dead letter",
                {"200": _json(ref("DeadLetter"), "the dead letter")},
                [LETTER_ID],
                (400, 404),
            )
        },
        "/api/dlq/{letter_id}/replay": {
            "post": _op(
                "replayDeadLetter",
                "Run a dead letter's job again, once",
                {"202": _json(ref("LetterReplayed"), "queued again")},
                [LETTER_ID],
                (400, 404, 409),
            )
        },
        **_task_paths(),
        **_approval_paths(),
        "/api/stats": {
            "get": _op(
                "stats",
                "Throughput, success rate, durations, cost and queue depth",
                {"200": _json(ref("Stats"), "the numbers")},
                [
                    _query(
                        "window",
                        {"type": "string", "pattern": "^[1-9][0-9]{0,8}[smhd]$"},
                        "how far back from now: a number and s, m, h or d (default 24h; "
                        "never before 1970)",
                    ),
                    _query(
                        "since",
                        {
                            "anyOf": [
                                {"type": "string", "format": "date-time"},
                                {"type": "string", "pattern": "^[0-9]{1,12}(\\.[0-9]{1,9})?$"},
                            ]
                        },
                        "from this time instead (RFC 3339, or seconds since the epoch); "
                        "it must be in the past",
                    ),
                ],
                (400,),
            )
        },
        "/api/fixes/stats": {
            "get": _op(
                "fixStats",
                "Auto-push graduation per repository: success rate of the last 50 fixes, "
                "reverted (null: unknown), incidents, cost per fix, failing checks",
                {"200": _json(ref("FixStats"), "the numbers, one entry per repository")},
                [
                    _query(
                        "repo",
                        {
                            "type": "string",
                            "pattern": f"^(?:{REPO.pattern})?$",
                        },
                        "only this repository, owner/name (empty: every one with fixes)",
                    )
                ],
                (400,),
            )
        },
        **_idea_paths(),
        "/api/openapi.json": {
            "get": _op(
                "openapi",
                "This document",
                {"200": _json(OBJ, "the OpenAPI document")},
            )
        },
    }


def _task_paths() -> dict[str, Schema]:
    rerun = obj(
        {},
        {
            "rerun": {
                **BOOL,
                "description": "run the agent again even when only applying its actions failed",
            }
        },
    )
    refused = _json(ref("Refused"), "not possible now (the error says why)")
    return {
        "/api/tasks": {
            "get": _op(
                "listTasks",
                "Tasks, newest first",
                {
                    "200": _linked(
                        _json(_list("tasks", "Task"), "the tasks"),
                        _links(
                            "tasks",
                            "task_id",
                            "showTask",
                            "listTaskActions",
                            "taskLog",
                            "followTaskLog",
                            "taskAudit",
                            "cancelTask",
                            "retryTask",
                        ),
                    )
                },
                [
                    _query("status", enum_of(TaskStatus), "only this status"),
                    _query("route", TEXT_FILTER, "only this route"),
                    _query("event_id", TEXT_FILTER, "only the tasks of this event"),
                    LIMIT,
                ],
                (400,),
            )
        },
        "/api/tasks/{task_id}": {
            "get": _op(
                "showTask",
                "One task with its actions",
                {"200": _json(ref("TaskDetail"), "the task")},
                [TASK_ID],
                (400, 404),
            )
        },
        "/api/tasks/{task_id}/actions": {
            "get": _op(
                "listTaskActions",
                "The actions the task proposed, each with its outcome and requests",
                {"200": _json(_list("actions", "Action"), "the actions")},
                [TASK_ID],
                (400, 404),
            )
        },
        "/api/tasks/{task_id}/logs": {
            "get": _op(
                "taskLog",
                "A page of the agent's event stream (outputs/log.jsonl, or the copy kept with "
                "the task once its workspace is gone), redacted; 404 while there is none yet, "
                "409 when the file is not one taskyard may open (a link, not its own)",
                {
                    "200": {
                        "description": "whole lines of the log from `offset`, one JSON object "
                        "a line; X-Log-Next-Offset says where the next page starts, and a "
                        'Link rel="next" is there while more follows',
                        "content": {"application/x-ndjson": {"schema": STR}},
                    }
                },
                [
                    TASK_ID,
                    _query("offset", {"type": "integer", "minimum": 0}, "from this byte"),
                    _query(
                        "limit",
                        {"type": "integer", "minimum": 1, "maximum": PAGE_LIMIT_MAX},
                        "at most this many bytes (default 1 MiB)",
                    ),
                ],
                (400, 404, 409),
            )
        },
        "/api/tasks/{task_id}/logs/stream": {
            "get": _op(
                "followTaskLog",
                "The log as Server-Sent Events, followed until the task ends: `log` events "
                "(one line each, id = byte offset after it), `status` events, then `end`",
                {
                    "200": {
                        "description": "the event stream; it closes after `end`, or after "
                        "a few minutes without it (reconnect with Last-Event-ID)",
                        "content": {"text/event-stream": {"schema": SSE_EVENT}},
                    }
                },
                [
                    TASK_ID,
                    {
                        "name": "Last-Event-ID",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"},
                        "description": "go on after this byte offset (a reconnecting client)",
                    },
                ],
                (400, 404, 409),
            )
        },
        "/api/tasks/{task_id}/audit": {
            "get": _op(
                "taskAudit",
                "The task's audit entries, oldest first, and whether the whole audit chain "
                "(every task's entries) verifies: each place it is broken, in words",
                {"200": _json(ref("TaskAudit"), "the entries and the chain's state")},
                [TASK_ID],
                (400, 404),
            )
        },
        "/api/tasks/{task_id}/cancel": {
            "post": _op(
                "cancelTask",
                "Stop a queued or running task; one awaiting approval ends at once",
                {
                    "200": _json(ref("Cancelled"), "cancelled (it was awaiting approval)"),
                    "202": _json(ref("Cancelled"), "cancel requested: its worker stops it"),
                    "409": refused,
                },
                [TASK_ID],
                (400, 404),
            )
        },
        "/api/tasks/{task_id}/retry": {
            "post": _op(
                "retryTask",
                "Run an ended task again (only its failed actions, unless rerun)",
                {"202": _json(ref("Retried"), "queued again"), "409": refused},
                [TASK_ID],
                (400, 404),
                body=rerun,
            )
        },
    }


def _approval_paths() -> dict[str, Schema]:
    text = {"anyOf": [TEXT_FILTER, {"type": "null"}]}
    decision_body = obj({}, {"reason": text, "question": text, "as": text})
    refused = {
        "description": "refused (already decided, expired, not allowed) or approvals are off",
        "content": {
            "application/json": {"schema": {"anyOf": [ref("DecisionOutcome"), ref("Error")]}}
        },
    }
    return {
        "/api/approvals": {
            "get": _op(
                "listApprovals",
                "Approval requests, newest first",
                {
                    "200": _linked(
                        _json(_list("approvals", "Approval"), "the requests"),
                        {
                            **_links("approvals", "approval_id", "showApproval"),
                            **_links(
                                "approvals", "approval_id", "decideApproval", decision="approve"
                            ),
                        },
                    )
                },
                [
                    _query(
                        "status",
                        {"type": "string", "enum": [*enum_of(ApprovalStatus)["enum"], ""]},
                        "only this status (empty: any)",
                    ),
                    _query("task_id", TEXT_FILTER, "only the requests of this task"),
                    _query(
                        "limit",
                        {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
                        "at most this many (default 100)",
                    ),
                ],
                (400,),
            )
        },
        "/api/approvals/{approval_id}": {
            "get": _op(
                "showApproval",
                "One request with every attempt to decide it",
                {"200": _json(ref("ApprovalDetail"), "the request")},
                [APPROVAL_ID],
                (400, 404),
            )
        },
        "/api/approvals/{approval_id}/{decision}": {
            "post": _op(
                "decideApproval",
                "Approve, deny, or ask for more information (`question`); "
                "decided as web:<as>, default web:operator",
                {"200": _json(ref("DecisionOutcome"), "decided"), "409": refused},
                [
                    APPROVAL_ID,
                    {
                        "name": "decision",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "enum": ["approve", "deny", "more-info"]},
                    },
                ],
                (400, 404),
                body=decision_body,
            )
        },
    }


def _idea_paths() -> dict[str, Schema]:
    refused = _json(ref("IdeaRefused"), "not a valid idea: `problems` says what is wrong")
    submit = _op(
        "submitIdea",
        "Submit an idea (its goal, constraints, success metrics, priority; optionally its "
        "repository, labels, risk and budget): it is registered and planned",
        {"201": _json(ref("Idea"), "the idea, registered"), "422": refused},
        errors=(400,),
    )
    body = {"content": {"application/json": {"schema": ref("IdeaShape")}}}
    post = {"post": {**submit, "requestBody": {"required": True, **body}}}
    views = _idea_view_paths()
    return {**views, "/api/ideas": {**views["/api/ideas"], **post}}


IDEA_ID = _path("idea_id", "the idea's id")


def _idea_view_paths() -> dict[str, Schema]:
    """Reading ideas, and the steps a person takes on one (`taskyard.ideas.controls`)."""
    steps = ("pauseIdea", "resumeIdea", "cancelIdea")
    listed = _json(_list("ideas", "Idea"), "the ideas")
    paths: dict[str, Schema] = {
        "/api/ideas": {
            "get": _op(
                "listIdeas",
                "Ideas, newest first",
                {"200": _linked(listed, _links("ideas", "idea_id", "showIdea", *steps))},
                [_query("status", enum_of(IdeaStatus), "only this status"), LIMIT],
                (400,),
            )
        },
        "/api/ideas/{idea_id}": {
            "get": _op(
                "showIdea",
                "One idea: its plan's tasks, each with its state, branch, cost and what it "
                "waits on; its cost; its plan versions; the last 50 events of its log",
                {"200": _json(ref("IdeaOverview"), "the idea")},
                [IDEA_ID],
                (400, 404),
            )
        },
    }
    reason = {"anyOf": [TEXT_FILTER, {"type": "null"}], "description": "why (not on resume)"}
    for op_id, step, said in zip(steps, ("pause", "resume", "cancel"), _STEPS_SAID, strict=True):
        paths[f"/api/ideas/{{idea_id}}/{step}"] = {
            "post": _op(
                op_id,
                said,
                {"200": _json(ref("Idea"), "the idea, after the step")},
                [IDEA_ID],
                (400, 404, 409),
                body=obj({}, {"reason": reason}),
            )
        }
    return paths


_STEPS_SAID = (
    "Pause an idea that has not ended; resuming takes it back to the state it was in",
    "Resume a paused idea where it was paused",
    "Cancel an idea that has not ended",
)


def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "taskyard management API",
            "version": "1",
            "description": "Events, tasks, actions, approvals, dead letters and stats. "
            "Every request needs `Authorization: Bearer <TASKYARD_API_TOKEN>`; errors are "
            '`{"error": "why"}`.',
        },
        "security": [{"bearer": []}],
        "paths": _paths(),
        "components": {
            "schemas": {**SCHEMAS, **IDEA_SCHEMAS},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
