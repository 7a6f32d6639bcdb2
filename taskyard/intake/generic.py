"""Standard Webhooks (`POST /webhooks/generic/{name}`): `webhook-id`, `webhook-timestamp` and
`webhook-signature` (space-separated `v1,<base64 HMAC-SHA256 of "{id}.{ts}.{body}">`);
secrets are `whsec_<base64>`.

The `standardwebhooks` package builds the signed string and the signature (`Webhook.sign`).
Its `Webhook.verify` is not used: it reads the wall clock with a fixed 5-minute window (so
neither a given `now` nor `max_skew_seconds` could apply) and raises plain `ValueError` on a
malformed signature list. The window is checked here first, then each `v1` entry is compared
in constant time with the library's signature."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from standardwebhooks.webhooks import EmptyWebhookSecretError, Webhook

from taskyard.exceptions import ConfigError, MalformedPayload
from taskyard.intake.base import Headers, Normalised, Signed
from taskyard.intake.checks import (
    Adapter,
    bad_signature,
    check_window,
    is_utf8,
    matches_any,
    require_header,
    require_secrets,
    unix_seconds,
)

ID = "webhook-id"
TIMESTAMP = "webhook-timestamp"
SIGNATURE = "webhook-signature"


class GenericAdapter(Adapter):
    signature_headers = frozenset({SIGNATURE})
    required_headers = (ID, TIMESTAMP, SIGNATURE)
    default_max_skew = 300.0

    def __init__(self, name: str, max_skew_seconds: float | None = None) -> None:
        super().__init__(max_skew_seconds)
        self.name = name

    def verify(self, headers: Headers, body: bytes, secrets: Sequence[str], now: float) -> None:
        require_secrets(secrets)
        msg_id, sent, signatures = (require_header(headers, h) for h in (ID, TIMESTAMP, SIGNATURE))
        sent_at = unix_seconds(sent, name=TIMESTAMP)
        check_window(sent_at, now, self.max_skew, name=TIMESTAMP)
        provided = _v1_signatures(signatures)
        expected = [self._expected(s, msg_id, sent_at, body) for s in secrets]
        if not any([matches_any(p, expected) for p in provided]):
            raise bad_signature(f"no {SIGNATURE} entry matches under any configured secret")
        if not is_utf8(body):
            raise MalformedPayload("body is not UTF-8")

    def _expected(self, secret: str, msg_id: str, sent_at: int, body: bytes) -> bytes:
        if is_utf8(body):
            return _signature(self._webhook(secret), msg_id, sent_at, body.decode("utf-8"))
        # The library signs text only; a signed non-UTF-8 body is the same HMAC on its bytes
        # (then refused as malformed, not as unsigned).
        key = base64.b64decode(secret.removeprefix("whsec_"))
        signed = f"{msg_id}.{sent_at}.".encode() + body
        return hmac.new(key, signed, hashlib.sha256).digest()

    def normalise(self, headers: Headers, payload: Mapping[str, Any]) -> Normalised:
        return Normalised(
            type=f"{self.name}:{_text(payload, 'type') or 'webhook'}",
            delivery_id=headers.get(ID) or None,
            subject=_text(payload, "subject"),
            actor=None,
        )

    def sign(self, secret: str, body: bytes, now: float, headers: Headers | None = None) -> Signed:
        msg_id = (headers or {}).get(ID) or f"msg_{uuid.uuid4().hex}"
        sent_at = int(now)
        signed_at = datetime.fromtimestamp(sent_at, tz=UTC)
        signature = self._webhook(secret).sign(msg_id, signed_at, body.decode("utf-8"))
        return Signed(
            headers={
                "content-type": "application/json",
                ID: msg_id,
                TIMESTAMP: str(sent_at),
                SIGNATURE: signature,
            },
            body=body,
        )

    def check_secrets(self, secrets: Sequence[str]) -> None:
        for secret in secrets:
            self._webhook(secret)

    def _webhook(self, secret: str) -> Webhook:
        try:
            return Webhook(secret)
        except (binascii.Error, EmptyWebhookSecretError) as exc:
            raise ConfigError(f"a secret of generic source {self.name!r} is no whsec_ key") from exc


def _text(payload: Mapping[str, Any], key: str) -> str | None:
    value = payload.get(key)
    return value if isinstance(value, str) and value else None


def _signature(webhook: Webhook, msg_id: str, sent_at: int, text: str) -> bytes:
    versioned = webhook.sign(msg_id, datetime.fromtimestamp(sent_at, tz=UTC), text)
    return base64.b64decode(versioned.split(",", 1)[1])


def _v1_signatures(header: str) -> list[bytes]:
    """The decoded `v1` entries of the signature list; other versions and junk are skipped."""
    found = []
    for entry in header.split():
        version, _, encoded = entry.partition(",")
        if version != "v1":
            continue
        try:
            found.append(base64.b64decode(encoded, validate=True))
        except binascii.Error:
            continue
    return found
