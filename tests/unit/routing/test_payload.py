"""payload_of: a stored event's body parsed the way intake parsed it."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlencode

import pytest

from taskyard.exceptions import PermanentError
from taskyard.routing import payload_of
from tests.unit.routing.events import event_for, load

SLASH = {
    "command": "/triage",
    "text": "checkout is down",
    "channel_id": "C0BUGS",
    "user_id": "U2CERLKJA",
    "trigger_id": "398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c",
}
BLOCK_ACTIONS = {
    "type": "block_actions",
    "user": {"id": "UA8RXUSPL", "username": "jtorrance"},
    "channel": {"id": "CBR2V3XEX", "name": "review-updates"},
    "trigger_id": "12321423423.333649436676.d8c1bb837935619ccad0f624c448ffb3",
    "actions": [{"action_id": "approve", "type": "button", "value": "yes"}],
}


def test_json_body_is_the_payload(shared_dir: Path) -> None:
    payload = load(shared_dir / "webhooks", "github/pull_request.opened.json")
    event = event_for("github", payload, "pull_request")
    assert payload_of(event) == payload


def test_slack_form_bodies_parse_like_intake() -> None:
    slash = event_for("slack", SLASH, body=urlencode(SLASH).encode())
    assert payload_of(slash) == SLASH
    form = urlencode({"payload": json.dumps(BLOCK_ACTIONS)}).encode()
    interaction = event_for("slack", BLOCK_ACTIONS, body=form)
    assert payload_of(interaction) == BLOCK_ACTIONS


def test_generic_source_body_is_json(shared_dir: Path) -> None:
    payload = load(shared_dir / "webhooks", "linear/issue.create.json")
    event = replace(event_for("linear", payload), source="deploys", type="deploys:webhook")
    assert payload_of(event) == payload


def test_a_body_that_no_longer_parses_is_a_permanent_error(shared_dir: Path) -> None:
    payload = load(shared_dir / "webhooks", "github/ping.json")
    event = event_for("github", payload, "ping", body=b"{not json")
    with pytest.raises(PermanentError, match=f"event {event.id}: stored body does not parse"):
        payload_of(event)
