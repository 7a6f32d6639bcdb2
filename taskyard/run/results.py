"""Task results: the shape agents must return, its validation, and the knowledge-log note.

The default shape is the seed's: `success`, `actions[]` (type, params, reasoning), `analysis`,
`summary`. A route may give its own JSON Schema instead.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import orjson

from taskyard.agents.outfiles import read_output
from taskyard.exceptions import AgentOutputRefused
from taskyard.models import Event, Task

DEFAULT_RESULT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["success", "actions", "analysis", "summary"],
    "properties": {
        "success": {"type": "boolean", "description": "whether the task was accomplished"},
        "actions": {
            "type": "array",
            "description": "changes taskyard should make in the world (labels, comments, ...)",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["type", "params", "reasoning"],
                "properties": {
                    "type": {"type": "string", "description": "e.g. add_label, comment"},
                    "params": {"type": "object"},
                    "reasoning": {"type": "string"},
                },
            },
        },
        "analysis": {
            "type": ["string", "object"],
            "description": "what was found: markdown text, or an object of findings such as "
            '{"type": "bug", "severity": "P1", "component": "backend", "complexity": 3}',
        },
        "summary": {"type": "string", "description": "one or two sentences"},
    },
}

_MAX_ERRORS = 5


def check_schema(schema: Mapping[str, Any]) -> None:
    """Raise jsonschema.SchemaError if a route's schema is not a valid JSON Schema."""
    jsonschema.Draft202012Validator.check_schema(schema)


MAX_RESULT_DEPTH = 64  # lists and objects in an agent's result: storing stops at 255


def nested_deeper(value: Any, limit: int = MAX_RESULT_DEPTH) -> bool:
    """Whether `value` nests lists and dicts more than `limit` deep (no recursion: an agent's
    result can be parsed 1,024 levels deep, too deep to store or walk recursively)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for child in children)
    return False


def validation_errors(result: Any, schema: Mapping[str, Any]) -> list[str]:
    """Every way `result` breaks `schema`, as `path: message` lines (at most a few)."""
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(result), key=lambda e: list(e.absolute_path))
    lines = []
    for err in errors[:_MAX_ERRORS]:
        where = "/".join(str(p) for p in err.absolute_path) or "(top)"
        lines.append(f"{where}: {err.message}")
    if len(errors) > _MAX_ERRORS:
        lines.append(f"… and {len(errors) - _MAX_ERRORS} more")
    return lines


def read_result_file(path: Path) -> Any:
    """The agent's `outputs/result.json`, parsed; None when missing, not JSON, or not a
    file taskyard may read (a link, a FIFO, too big: `taskyard.agents.outfiles`)."""
    try:
        raw = read_output(path.parent, path.name)
        return None if raw is None else orjson.loads(raw)
    except (OSError, orjson.JSONDecodeError, AgentOutputRefused):
        return None


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[:60] or "none"


def note_path(notes_dir: Path, task: Task, event: Event) -> Path:
    """`DATE-source-ref-route.md`: ref is the event's subject (repo#PR, issue key, channel)."""
    day = dt.datetime.fromtimestamp(task.created_at, tz=dt.UTC).strftime("%Y-%m-%d")
    ref = _slug(event.subject or event.delivery_id or event.id)
    return notes_dir / f"{day}-{event.source}-{ref}-{_slug(task.route)}-{task.id[-6:]}.md"


def render_note(task: Task, event: Event, context_names: list[str]) -> str:
    """A short markdown record of one finished task, for people and later agents."""
    result = task.result or {}
    lines = [
        f"# {task.route}: {event.subject or event.type}",
        "",
        f"- task: `{task.id}` ({task.agent}, attempt {task.attempts})",
        f"- event: `{event.id}` {event.type}, priority P{int(event.priority)}",
        f"- outcome: **{task.status}**" + (f": {task.reason}" if task.reason else ""),
        f"- usage: {_usage_line(task)}",
        f"- context: {', '.join(context_names) or 'none'}",
        "",
        "## Summary",
        str(result.get("summary") or "(none)"),
        "",
        "## Actions proposed",
    ]
    actions = result.get("actions") or []
    if not actions:
        lines.append("(none)")
    for action in actions if isinstance(actions, list) else []:
        if isinstance(action, Mapping):
            params = orjson.dumps(action.get("params", {})).decode()
            lines.append(f"- `{action.get('type')}` {params}: {action.get('reasoning', '')}")
    lines += ["", "## Analysis", analysis_text(result.get("analysis")), ""]
    return "\n".join(lines)


def analysis_text(analysis: Any) -> str:
    """A result's `analysis` for people: text as it is, an object as indented JSON."""
    if not analysis:
        return "(none)"
    if isinstance(analysis, str):
        return analysis
    return orjson.dumps(analysis, option=orjson.OPT_INDENT_2).decode()


def _usage_line(task: Task) -> str:
    u = task.usage or {}
    tokens = f"{u.get('input_tokens', 0)} in / {u.get('output_tokens', 0)} out tokens"
    cost = f", ${task.cost_usd:.4f}" if task.cost_usd is not None else ""
    return tokens + cost
