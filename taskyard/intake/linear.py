"""Linear: `Linear-Signature: <hex HMAC-SHA256 of the raw body>`; freshness is the body's
`webhookTimestamp` (Unix ms), which Linear stamps at send time inside the signed body."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from taskyard.exceptions import VerificationError
from taskyard.intake.base import Headers, Normalised, Signed, parse_json_object
from taskyard.intake.checks import (
    Adapter,
    check_window,
    event_type,
    first_text,
    hmac_sha256_hex,
    require_header,
    require_secrets,
    required_text,
    text_at,
    verify_hex_hmac,
)

SIGNATURE = "linear-signature"
TIMESTAMP_FIELD = "webhookTimestamp"
_STAMP = re.compile(rb'("webhookTimestamp"\s*:\s*)(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|null)')
_OPENING = re.compile(rb"^\s*\{\s*(\}?)")
_IDENTIFIER_IN_URL = re.compile(r"/issue/([A-Z][A-Z0-9]*-\d+)")


class LinearAdapter(Adapter):
    name = "linear"
    signature_headers = frozenset({SIGNATURE})
    required_headers = (SIGNATURE,)
    default_max_skew = 60.0

    def verify(self, headers: Headers, body: bytes, secrets: Sequence[str], now: float) -> None:
        require_secrets(secrets)
        verify_hex_hmac(require_header(headers, SIGNATURE), body, secrets, name=SIGNATURE)

    def check_payload(self, payload: Mapping[str, Any], now: float) -> None:
        stamp = payload.get(TIMESTAMP_FIELD)
        if isinstance(stamp, bool) or not isinstance(stamp, int | float):
            raise VerificationError(
                f"body field {TIMESTAMP_FIELD} (Unix ms) is missing or not a number",
                reason="stale_timestamp",
            )
        check_window(stamp / 1000, now, self.max_skew, name=f"body field {TIMESTAMP_FIELD}")

    def normalise(self, headers: Headers, payload: Mapping[str, Any]) -> Normalised:
        kind = required_text(payload, "type", source=self.name)
        action = required_text(payload, "action", source=self.name)
        return Normalised(
            type=event_type(self.name, kind, action),
            delivery_id=headers.get("linear-delivery") or None,
            subject=_subject(payload),
            actor=first_text(
                text_at(payload, "actor", "name"),
                text_at(payload, "actor", "email"),
                text_at(payload, "data", "creatorId"),
                text_at(payload, "data", "userId"),
            ),
        )

    def sign(self, secret: str, body: bytes, now: float, headers: Headers | None = None) -> Signed:
        given = headers or {}
        stamped = stamp_timestamp(body, int(now * 1000))
        return Signed(
            headers={
                "content-type": "application/json; charset=utf-8",
                SIGNATURE: hmac_sha256_hex(secret, stamped),
                "linear-delivery": given.get("linear-delivery") or str(uuid.uuid4()),
                "linear-event": str(parse_json_object(stamped).get("type", "")),
            },
            body=stamped,
        )


def stamp_timestamp(body: bytes, millis: int) -> bytes:
    """Set the top-level `webhookTimestamp` to `millis`, leaving every other byte as it was."""
    value = str(millis).encode()
    stamped, count = _STAMP.subn(lambda m: m.group(1) + value, body, count=1)
    if not count:
        opening = _OPENING.match(body)
        if opening is None:
            raise ValueError("a Linear body must be a JSON object")
        comma = b"" if opening.group(1) else b","
        head = body[: body.index(b"{") + 1]
        stamped = head + b'"' + TIMESTAMP_FIELD.encode() + b'":' + value + comma
        stamped += body[len(head) :]
    if parse_json_object(stamped).get(TIMESTAMP_FIELD) != millis:
        raise ValueError(f"could not set the top-level {TIMESTAMP_FIELD} of this body")
    return stamped


def _subject(payload: Mapping[str, Any]) -> str | None:
    url = text_at(payload, "url") or ""
    from_url = _IDENTIFIER_IN_URL.search(url)
    return first_text(
        text_at(payload, "data", "identifier"),
        from_url.group(1) if from_url else None,
        text_at(payload, "data", "id"),
    )
