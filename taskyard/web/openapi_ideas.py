"""The ideas' part of the management API's OpenAPI document (`taskyard.web.openapi`): the
schemas of an idea and of the shape submitted. The shape's schema is `IdeaShape`'s own, so the
document says exactly what `POST /api/ideas` accepts."""

from __future__ import annotations

from taskyard.idea import SUBJECTS, IdeaStatus
from taskyard.ideas.overview import BLOCKED, PENDING
from taskyard.ideas.shape import IdeaShape
from taskyard.models import TaskStatus
from taskyard.web.openapi_schemas import (
    BOOL,
    INT,
    NUM,
    OBJ,
    STR,
    TIME,
    Schema,
    enum_of,
    nullable,
    obj,
    ref,
)

KEYS: Schema = {"type": "array", "items": STR}

IDEA_SCHEMAS: dict[str, Schema] = {
    "IdeaShape": IdeaShape.model_json_schema(),
    "Idea": obj(
        {
            "id": STR,
            "status": enum_of(IdeaStatus),
            "goal": STR,
            "shape": OBJ,
            "origin": OBJ,
            "reason": nullable(STR),
            "plan_version": INT,
            "branch": nullable(STR),
            "pr_url": nullable(STR),
            "budget_usd": nullable(NUM),
            "created_at": TIME,
            "updated_at": TIME,
            "last_seq": INT,
        }
    ),
    "IdeaRefused": obj({"error": STR, "problems": {"type": "array", "items": STR}}),
    "IdeaOverview": obj(
        {
            "idea": ref("Idea"),
            "tasks": {"type": "array", "items": ref("IdeaTask")},
            "events": {"type": "array", "items": ref("IdeaEvent")},
            "cost_usd": {**NUM, "description": "what its tasks' agents cost so far"},
            "plans": {"type": "array", "items": ref("IdeaPlan")},
        }
    ),
    "IdeaTask": obj(
        {
            "key": STR,
            "title": STR,
            "depends_on": KEYS,
            "task_id": nullable(STR),
            "status": {
                "type": "string",
                "enum": [*enum_of(TaskStatus)["enum"], PENDING, BLOCKED],
                "description": "its taskyard task's; not scheduled yet: pending, or blocked "
                "when a task it depends on ended without succeeding",
            },
            "branch": nullable(STR),
            "cost_usd": nullable(NUM),
            "waits_on": {**KEYS, "description": "the tasks it depends on not yet succeeded"},
        }
    ),
    "IdeaEvent": obj(
        {
            "seq": INT,
            "at": TIME,
            "subject": {"type": "string", "enum": list(SUBJECTS)},
            "kind": STR,
            "data": OBJ,
            "published": BOOL,
        }
    ),
    "IdeaPlan": obj(
        {
            "version": INT,
            "accepted": BOOL,
            "errors": {**KEYS, "description": "what it was sent back to the planner for"},
            "tasks": INT,
            "created_at": TIME,
        }
    ),
}
