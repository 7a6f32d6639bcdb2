"""Slack: `X-Slack-Signature: v0=<hex HMAC-SHA256 of "v0:{ts}:{raw body}">` and
`X-Slack-Request-Timestamp`, checked with slack-sdk's `SignatureVerifier` (a body that is not
UTF-8, which the library cannot take, with the same HMAC on its bytes: signed, it is then a
malformed body, 400).

One endpoint takes three bodies, told apart by their content: Events API JSON, interactivity
(form-encoded, a `payload` field holding JSON) and slash commands (form-encoded fields)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl

import orjson
from slack_sdk.signature import Clock, SignatureVerifier

from taskyard.exceptions import MalformedPayload
from taskyard.intake.base import Headers, Normalised, Reply, Signed, parse_json_object
from taskyard.intake.checks import (
    Adapter,
    bad_signature,
    check_window,
    event_type,
    first_text,
    hmac_sha256_hex,
    is_utf8,
    matches_any,
    require_header,
    require_secrets,
    required_text,
    text_at,
    unix_seconds,
)

SIGNATURE = "x-slack-signature"
TIMESTAMP = "x-slack-request-timestamp"
_EVENTS_API_TYPES = frozenset({"url_verification", "event_callback", "app_rate_limited"})
_CHANNEL_TYPES = {"channel": "channels", "group": "groups", "im": "im", "mpim": "mpim"}


class _FixedClock(Clock):
    def __init__(self, at: float) -> None:
        self.at = at

    def now(self) -> float:
        return self.at


class SlackAdapter(Adapter):
    name = "slack"
    signature_headers = frozenset({SIGNATURE})
    required_headers = (SIGNATURE, TIMESTAMP)
    default_max_skew = 300.0

    def verify(self, headers: Headers, body: bytes, secrets: Sequence[str], now: float) -> None:
        require_secrets(secrets)
        signature = require_header(headers, SIGNATURE)
        sent = require_header(headers, TIMESTAMP)
        sent_at = unix_seconds(sent, name=TIMESTAMP)
        check_window(sent_at, now, self.max_skew, name=TIMESTAMP)
        if not signature.isascii():
            raise bad_signature(f"{SIGNATURE} is not ASCII")
        valid = _signed(body, sent, signature, secrets, sent_at)
        if not valid:
            raise bad_signature(f"{SIGNATURE} does not match the body under any configured secret")
        if not is_utf8(body):
            raise MalformedPayload("body is not UTF-8")

    def parse(self, headers: Headers, body: bytes) -> dict[str, Any]:
        if _is_json(body):
            return parse_json_object(body)
        fields = _form_fields(body)
        if "payload" in fields:
            return parse_json_object(fields["payload"].encode("utf-8"))
        return dict(fields)

    def normalise(self, headers: Headers, payload: Mapping[str, Any]) -> Normalised:
        return _NORMALISERS[_kind(payload)](payload)

    def reply(self, payload: Mapping[str, Any], event_id: str, duplicate: bool) -> Reply:
        if payload.get("type") == "url_verification":
            return Reply(200, orjson.dumps({"challenge": payload.get("challenge")}))
        if _kind(payload) == "events":
            return super().reply(payload, event_id, duplicate)
        answer = {"event_id": event_id, "duplicate" if duplicate else "queued": True}
        return Reply(200, orjson.dumps(answer))

    def sign(self, secret: str, body: bytes, now: float, headers: Headers | None = None) -> Signed:
        sent = str(int(now))
        signature = SignatureVerifier(secret).generate_signature(timestamp=sent, body=body)
        if signature is None:
            raise ValueError("slack-sdk produced no signature")
        content_type = "application/json" if _is_json(body) else "application/x-www-form-urlencoded"
        return Signed(
            headers={"content-type": content_type, TIMESTAMP: sent, SIGNATURE: signature},
            body=body,
        )


def _signed(body: bytes, sent: str, signature: str, secrets: Sequence[str], at: int) -> bool:
    if not is_utf8(body):  # slack-sdk decodes the body first: the same HMAC, on the bytes
        signed = b"v0:" + sent.encode() + b":" + body
        return matches_any(signature.encode(), [_v0(s, signed) for s in secrets])
    # Freshness is decided by the caller (our `now`, our window); the library's own fixed
    # 5-minute check against its clock is neutralised by a clock set to the send time.
    clock = _FixedClock(at)
    return any([SignatureVerifier(s, clock=clock).is_valid(body, sent, signature) for s in secrets])


def _v0(secret: str, signed: bytes) -> bytes:
    return ("v0=" + hmac_sha256_hex(secret, signed)).encode()


def _is_json(body: bytes) -> bool:
    return body.lstrip()[:1] == b"{"


def _form_fields(body: bytes) -> dict[str, str]:
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True)
    except ValueError as exc:  # includes UnicodeDecodeError
        raise MalformedPayload("body is neither JSON nor a valid form") from exc
    if not pairs:
        raise MalformedPayload("body is empty")
    return dict(pairs)


def _kind(payload: Mapping[str, Any]) -> str:
    if isinstance(payload.get("command"), str):
        return "slash_command"
    kind = payload.get("type")
    if not isinstance(kind, str) or not kind:
        raise MalformedPayload("slack body has no string 'type' and no 'command'")
    return "events" if kind in _EVENTS_API_TYPES else "interaction"


def _events(payload: Mapping[str, Any]) -> Normalised:
    kind = required_text(payload, "type", source="slack")
    if kind == "url_verification":
        required_text(payload, "challenge", source="slack url_verification")
    if kind != "event_callback":
        return Normalised(event_type("slack", kind, None), None, None, None)
    event = payload.get("event")
    if not isinstance(event, Mapping):
        raise MalformedPayload("slack event_callback lacks an 'event' object")
    return Normalised(
        type=event_type(
            "slack",
            required_text(event, "type", source="slack event"),
            _CHANNEL_TYPES.get(text_at(event, "channel_type") or ""),
        ),
        delivery_id=text_at(payload, "event_id"),
        subject=first_text(text_at(event, "channel"), text_at(event, "channel", "id")),
        actor=first_text(text_at(event, "user"), text_at(event, "user", "id")),
    )


def _interaction(payload: Mapping[str, Any]) -> Normalised:
    return Normalised(
        type=event_type("slack", "interaction", required_text(payload, "type", source="slack")),
        delivery_id=text_at(payload, "trigger_id"),
        subject=first_text(text_at(payload, "channel", "id"), text_at(payload, "channel_id")),
        actor=first_text(text_at(payload, "user", "id"), text_at(payload, "user_id")),
    )


def _slash_command(payload: Mapping[str, Any]) -> Normalised:
    command = required_text(payload, "command", source="slack slash command").lstrip("/")
    if not command:
        raise MalformedPayload("slack slash command has an empty 'command'")
    return Normalised(
        type=event_type("slack", "slash_command", command),
        delivery_id=text_at(payload, "trigger_id"),
        subject=text_at(payload, "channel_id"),
        actor=text_at(payload, "user_id"),
    )


_NORMALISERS: dict[str, Callable[[Mapping[str, Any]], Normalised]] = {
    "events": _events,
    "interaction": _interaction,
    "slash_command": _slash_command,
}
