"""An event's payload, parsed from its stored raw body exactly as intake parsed it."""

from __future__ import annotations

from typing import Any

from taskyard.exceptions import MalformedPayload, PermanentError
from taskyard.intake import ADAPTER_TYPES
from taskyard.intake.base import parse_json_object
from taskyard.models import Event


def payload_of(event: Event) -> dict[str, Any]:
    """JSON for most sources; Slack's form-encoded interactivity (`payload=<json>`) and slash
    commands (fields) as intake reads them. Generic sources are JSON. A stored body that no
    longer parses cannot get better by retrying: PermanentError."""
    adapter_type = ADAPTER_TYPES.get(event.source)
    try:
        if adapter_type is None:
            return parse_json_object(event.body)
        return adapter_type().parse(event.headers, event.body)
    except MalformedPayload as exc:
        raise PermanentError(f"event {event.id}: stored body does not parse: {exc}") from exc
