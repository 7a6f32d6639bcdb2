"""Checks every adapter shares: headers, secrets, HMAC matches, time windows, payload fields.

Messages name the header or field at fault; they never quote a secret or the body.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

from taskyard.exceptions import MalformedPayload, VerificationError
from taskyard.intake.base import Headers, SourceAdapter

_UNIX_SECONDS = re.compile(r"\d{1,12}")


class Adapter(SourceAdapter):
    """A source adapter whose replay window defaults to the platform's own."""

    default_max_skew: ClassVar[float | None] = None

    @property
    def max_skew(self) -> float | None:
        if self.max_skew_seconds is not None:
            return self.max_skew_seconds
        return self.default_max_skew


def require_secrets(secrets: Sequence[str]) -> None:
    if not secrets:
        raise VerificationError("no secret is configured for this source", reason="bad_signature")


def require_header(headers: Headers, name: str) -> str:
    value = headers.get(name, "")
    if not value:
        raise VerificationError(f"header {name} is missing or empty", reason="missing_signature")
    return value


def bad_signature(what: str) -> VerificationError:
    return VerificationError(what, reason="bad_signature")


def ascii_bytes(text: str) -> bytes:
    """Header text as bytes for `hmac.compare_digest`, which refuses non-ASCII `str`."""
    return text.encode("utf-8", "replace")


def matches_any(provided: bytes, expected: Iterable[bytes]) -> bool:
    """Constant-time comparison against every candidate (no early exit over secrets)."""
    results = [hmac.compare_digest(provided, candidate) for candidate in expected]
    return any(results)


def hmac_sha256_hex(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def verify_hex_hmac(header: str, body: bytes, secrets: Sequence[str], *, name: str) -> None:
    """Refuse unless `header` is the hex HMAC-SHA256 of `body` under one of `secrets`."""
    expected = (hmac_sha256_hex(secret, body).encode() for secret in secrets)
    if not matches_any(ascii_bytes(header), expected):
        raise bad_signature(f"{name} does not match the body under any configured secret")


def unix_seconds(value: str, *, name: str) -> int:
    if not _UNIX_SECONDS.fullmatch(value):
        raise bad_signature(f"{name} is not a Unix time in seconds")
    return int(value)


def check_window(sent_at: float, now: float, max_skew: float | None, *, name: str) -> None:
    if max_skew is not None and abs(now - sent_at) > max_skew:
        raise VerificationError(
            f"{name} is {abs(now - sent_at):.0f} s away from now (allowed: {max_skew:g} s)",
            reason="stale_timestamp",
        )


def is_utf8(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def event_type(source: str, event: str, action: str | None) -> str:
    return f"{source}:{event}.{action}" if action else f"{source}:{event}"


def text_at(payload: Any, *keys: str) -> str | None:
    """`payload[k1][k2]...` when it is a non-empty string (ids given as ints become strings)."""
    value = payload
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value)
    return value if isinstance(value, str) and value else None


def required_text(payload: Mapping[str, Any], key: str, *, source: str) -> str:
    value = payload.get(key)
    if not isinstance(value, str) or not value:
        raise MalformedPayload(f"{source} payload lacks a string {key!r}")
    return value


def first_text(*candidates: str | None) -> str | None:
    return next((c for c in candidates if c), None)
