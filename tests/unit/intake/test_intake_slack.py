"""Slack: Events API JSON, interactivity and slash-command form bodies on one endpoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson
import pytest

from taskyard.exceptions import MalformedPayload, VerificationError
from taskyard.intake import SlackAdapter
from taskyard.intake.base import Normalised, Reply, Signed
from tests.unit.intake.intake_cases import NOW

SECRET = "slack-signing-secret"

# Source: slackapi/python-slack-sdk tests/slack_sdk/signature/test_signature_verifier.py, which
# takes it from Slack's "Verifying requests from Slack" docs; the body is a slash command.
VECTOR_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
VECTOR_TIMESTAMP = "1531420618"
VECTOR_SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
VECTOR_BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow"
    b"&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner"
    b"&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands"
    b"%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
    b"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
VECTOR_HEADERS = {
    "x-slack-request-timestamp": VECTOR_TIMESTAMP,
    "x-slack-signature": VECTOR_SIGNATURE,
}

MESSAGE_EVENT = {
    "token": "XXYYZZ",
    "team_id": "T123ABC456",
    "api_app_id": "A123ABC456",
    "type": "event_callback",
    "event_id": "Ev123",
    "event_time": 1700000000,
    "event": {
        "type": "message",
        "channel_type": "channel",
        "channel": "C1",
        "user": "U1",
        "text": "deploy please",
        "ts": "1700000000.000100",
    },
}
# Field names as in Slack's interactivity docs (block_actions payload).
BLOCK_ACTIONS = {
    "type": "block_actions",
    "team": {"id": "T9TK3CUKW", "domain": "example"},
    "user": {"id": "UA8RXUSPL", "username": "jtorrance", "team_id": "T9TK3CUKW"},
    "api_app_id": "AABA1ABCD",
    "token": "9s8d9as89d8as9d8as989",
    "container": {"type": "message_attachment", "message_ts": "1548261231.000200",
                  "channel_id": "CBR2V3XEX", "is_ephemeral": False},
    "trigger_id": "12321423423.333649436676.d8c1bb837935619ccad0f624c448ffb3",
    "channel": {"id": "CBR2V3XEX", "name": "review-updates"},
    "response_url": "https://hooks.slack.com/actions/AABA1ABCD/1232321423432/D09sSasdasdAS9091209",
    "actions": [{"action_id": "approve", "block_id": "b1", "type": "button", "value": "yes",
                 "action_ts": "1548426417.840180"}],
}  # fmt: skip


def _run(signed: Signed, now: float = NOW) -> tuple[Normalised, dict[str, Any]]:
    adapter = SlackAdapter()
    adapter.verify(signed.headers, signed.body, [SECRET], now)
    payload = adapter.parse(signed.headers, signed.body)
    adapter.check_payload(payload, now)
    return adapter.normalise(signed.headers, payload), payload


def _replies(payload: dict[str, Any]) -> tuple[Reply, Reply]:
    adapter = SlackAdapter()
    return adapter.reply(payload, "ev-1", False), adapter.reply(payload, "ev-1", True)


def test_slack_sdk_vector_verifies_as_a_slash_command() -> None:
    adapter = SlackAdapter()
    now = float(VECTOR_TIMESTAMP)
    adapter.verify(VECTOR_HEADERS, VECTOR_BODY, [VECTOR_SECRET], now)
    signed = adapter.sign(VECTOR_SECRET, VECTOR_BODY, now)
    assert signed.headers["x-slack-signature"] == VECTOR_SIGNATURE
    assert signed.headers["x-slack-request-timestamp"] == VECTOR_TIMESTAMP
    assert signed.headers["content-type"] == "application/x-www-form-urlencoded"
    payload = adapter.parse(VECTOR_HEADERS, VECTOR_BODY)
    assert adapter.normalise(VECTOR_HEADERS, payload) == Normalised(
        type="slack:slash_command.webhook-collect",
        delivery_id="398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c",
        subject="G8PSS9T3V",
        actor="U2CERLKJA",
    )
    queued, duplicate = _replies(payload)
    assert (queued.status, orjson.loads(queued.body)) == (200, {"event_id": "ev-1", "queued": True})
    assert (duplicate.status, orjson.loads(duplicate.body)) == (
        200,
        {"event_id": "ev-1", "duplicate": True},
    )


def test_slack_sdk_vector_is_stale_years_later() -> None:
    with pytest.raises(VerificationError) as caught:
        SlackAdapter().verify(VECTOR_HEADERS, VECTOR_BODY, [VECTOR_SECRET], NOW)
    assert caught.value.reason == "stale_timestamp"


def test_slack_sdk_vector_with_one_more_byte_fails() -> None:
    with pytest.raises(VerificationError) as caught:
        SlackAdapter().verify(
            VECTOR_HEADERS, VECTOR_BODY + b"-", [VECTOR_SECRET], float(VECTOR_TIMESTAMP)
        )
    assert caught.value.reason == "bad_signature"


def test_url_verification_answers_its_challenge(webhooks: Path) -> None:
    body = (webhooks / "slack" / "url_verification.json").read_bytes()
    signed = SlackAdapter().sign(SECRET, body, NOW)
    assert signed.headers["content-type"] == "application/json"
    normalised, payload = _run(signed)
    assert normalised == Normalised("slack:url_verification", None, None, None)
    challenge = {"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}
    for reply in _replies(payload):
        assert (reply.status, orjson.loads(reply.body)) == (200, challenge)


def test_url_verification_without_challenge_is_malformed() -> None:
    with pytest.raises(MalformedPayload, match="challenge"):
        SlackAdapter().normalise({}, {"type": "url_verification", "token": "t"})


def test_message_event_in_a_public_channel() -> None:
    signed = SlackAdapter().sign(SECRET, json.dumps(MESSAGE_EVENT).encode(), NOW)
    normalised, payload = _run(signed)
    assert normalised == Normalised("slack:message.channels", "Ev123", "C1", "U1")
    queued, duplicate = _replies(payload)
    assert (queued.status, orjson.loads(queued.body)) == (202, {"event_id": "ev-1", "queued": True})
    assert (duplicate.status, orjson.loads(duplicate.body)) == (
        200,
        {"event_id": "ev-1", "duplicate": True},
    )


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ({"type": "message", "channel_type": "group"}, "slack:message.groups"),
        ({"type": "message", "channel_type": "im"}, "slack:message.im"),
        ({"type": "message", "channel_type": "mpim"}, "slack:message.mpim"),
        ({"type": "message", "channel_type": "app_home"}, "slack:message"),
        ({"type": "app_mention", "channel": "C2", "user": "U2"}, "slack:app_mention"),
        ({"type": "channel_created", "channel": {"id": "C3"}}, "slack:channel_created"),
    ],
)
def test_event_types(event: dict[str, Any], expected: str) -> None:
    payload = {"type": "event_callback", "event_id": "Ev9", "event": event}
    assert SlackAdapter().normalise({}, payload).type == expected


def test_event_with_object_channel_and_user() -> None:
    event = {"type": "channel_created", "channel": {"id": "C3"}, "user": {"id": "U3"}}
    normalised = SlackAdapter().normalise({}, {"type": "event_callback", "event": event})
    assert (normalised.subject, normalised.actor) == ("C3", "U3")


def test_interactivity_form_body() -> None:
    body = urlencode({"payload": json.dumps(BLOCK_ACTIONS)}).encode()
    signed = SlackAdapter().sign(SECRET, body, NOW)
    assert signed.headers["content-type"] == "application/x-www-form-urlencoded"
    normalised, payload = _run(signed)
    assert normalised == Normalised(
        type="slack:interaction.block_actions",
        delivery_id="12321423423.333649436676.d8c1bb837935619ccad0f624c448ffb3",
        subject="CBR2V3XEX",
        actor="UA8RXUSPL",
    )
    assert payload["actions"][0]["action_id"] == "approve"
    queued, duplicate = _replies(payload)
    assert (queued.status, orjson.loads(queued.body)) == (200, {"event_id": "ev-1", "queued": True})
    assert (duplicate.status, orjson.loads(duplicate.body)) == (
        200,
        {"event_id": "ev-1", "duplicate": True},
    )


def test_view_submission_has_no_channel() -> None:
    view = {"type": "view_submission", "user": {"id": "U5"}, "trigger_id": "t.1", "view": {}}
    body = urlencode({"payload": json.dumps(view)}).encode()
    normalised, _ = _run(SlackAdapter().sign(SECRET, body, NOW))
    assert normalised == Normalised("slack:interaction.view_submission", "t.1", None, "U5")


def test_slash_command_form_body() -> None:
    # Field names as in Slack's slash command docs.
    fields = {
        "token": "gIkuvaNzQIHg97ATvDxqgjtO",
        "team_id": "T0001",
        "team_domain": "example",
        "channel_id": "C2147483705",
        "channel_name": "test",
        "user_id": "U2147483697",
        "user_name": "Steve",
        "command": "/deploy",
        "text": "api staging",
        "response_url": "https://hooks.slack.com/commands/1234/5678",
        "trigger_id": "13345224609.738474920.8088930838d88f008e0",
        "api_app_id": "A123456",
    }
    normalised, payload = _run(SlackAdapter().sign(SECRET, urlencode(fields).encode(), NOW))
    assert normalised == Normalised(
        "slack:slash_command.deploy",
        "13345224609.738474920.8088930838d88f008e0",
        "C2147483705",
        "U2147483697",
    )
    assert payload["text"] == "api staging"


@pytest.mark.parametrize(
    "body",
    [
        b"team_id=T1&text=hello",  # neither a command nor an interaction payload
        b"payload=%7Bnot-json",
        b"payload=%5B1%5D",  # JSON, but not an object
        b"command=%2F",
        b"=&&",
        b"\xff\xfe",
        b'{"type": "event_callback"}',  # no event
        b'{"event": {"type": "message"}}',  # no type
        b"{not json",
    ],
)
def test_malformed_bodies(body: bytes) -> None:
    adapter = SlackAdapter()
    with pytest.raises(MalformedPayload):
        adapter.normalise({}, adapter.parse({}, body))


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"x-slack-request-timestamp": "17e8"}, "bad_signature"),
        ({"x-slack-request-timestamp": " 1700000000"}, "bad_signature"),
        ({"x-slack-signature": "v0=ünïcödé"}, "bad_signature"),
        ({"x-slack-signature": "v1=" + "0" * 64}, "bad_signature"),
    ],
)
def test_malformed_signature_headers(change: dict[str, str], reason: str) -> None:
    signed = SlackAdapter().sign(SECRET, json.dumps(MESSAGE_EVENT).encode(), NOW)
    with pytest.raises(VerificationError) as caught:
        SlackAdapter().verify({**signed.headers, **change}, signed.body, [SECRET], NOW)
    assert caught.value.reason == reason


def test_non_utf8_body_is_a_bad_signature_not_a_crash() -> None:
    signed = SlackAdapter().sign(SECRET, b"payload=%7B%7D", NOW)
    with pytest.raises(VerificationError) as caught:
        SlackAdapter().verify(signed.headers, b"payload=\xff", [SECRET], NOW)
    assert caught.value.reason == "bad_signature"


def test_a_window_wider_than_the_librarys_five_minutes_is_honoured() -> None:
    signed = SlackAdapter().sign(SECRET, json.dumps(MESSAGE_EVENT).encode(), NOW - 900)
    SlackAdapter(max_skew_seconds=1200).verify(signed.headers, signed.body, [SECRET], NOW)
