"""Events for the routing tests, normalised by the real intake adapters from real payloads
(shared/webhooks) or, for Slack messages, from the field names of Slack's Events API docs."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import orjson

from taskyard.intake import make_adapter
from taskyard.models import Event, Priority, new_id
from taskyard.routing import RouteConfig

SOURCE_HEADER = {"github": "x-github-event", "sentry": "sentry-hook-resource"}


def load(webhooks: Path, name: str) -> dict[str, Any]:
    """A fresh copy of a shared payload, e.g. `github/pull_request.opened.json`."""
    payload: dict[str, Any] = json.loads((webhooks / name).read_text())
    return copy.deepcopy(payload)


def event_for(
    source: str, payload: dict[str, Any], kind: str | None = None, body: bytes | None = None
) -> Event:
    """The event intake would store for this payload; `kind` is the GitHub event name or the
    Sentry resource (their type comes from a header)."""
    headers = {SOURCE_HEADER[source]: kind} if kind and source in SOURCE_HEADER else {}
    normalised = make_adapter(source).normalise(headers, payload)
    raw = body if body is not None else orjson.dumps(payload)
    return Event(
        id=new_id(),
        source=source,
        type=normalised.type,
        delivery_id=normalised.delivery_id,
        subject=normalised.subject,
        actor=normalised.actor,
        received_at=0.0,
        priority=Priority.P2,
        headers=headers,
        body=raw,
        content_hash="",
    )


def route(**fields: Any) -> RouteConfig:
    return RouteConfig.model_validate({"agent": "codex", **fields})


def slack_message(channel: str = "C0BUGS", **event: Any) -> dict[str, Any]:
    """An Events API `message` delivery in a public channel (fields as in Slack's docs)."""
    message = {
        "type": "message",
        "channel_type": "channel",
        "channel": channel,
        "user": "U024BE7LH",
        "text": "checkout fails with a 500 since this morning",
        "ts": "1700000000.000100",
        **event,
    }
    return {
        "token": "XXYYZZ",
        "team_id": "T123ABC456",
        "api_app_id": "A123ABC456",
        "type": "event_callback",
        "event_id": "Ev08MFMKH6",
        "event_time": 1700000000,
        "event": message,
    }
