"""The interface every webhook source implements.

The HTTP app calls, in this order, and stops at the first error:
  1. `verify(headers, body, secrets, now)` on the raw bytes, before anything parses them;
  2. `parse(headers, body)` → the payload as a dict (JSON, or Slack's form encodings);
  3. `check_payload(payload, now)` for freshness rules that live inside the signed body;
  4. `normalise(headers, payload)` → type, delivery id, subject, actor;
  5. after the event is stored, `reply(payload, event_id, duplicate)` → the HTTP answer.
`sign(...)` produces the headers (and, where the platform stamps the body, the body) exactly as
the platform would send them: `taskyard send` and the tests use it.
Headers are given as a mapping with lower-case names.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson

from taskyard.exceptions import MalformedPayload, VerificationError
from taskyard.util.paths import dig as dig

Headers = Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Normalised:
    type: str  # "{source}:{event}.{action}"
    delivery_id: str | None
    subject: str | None
    actor: str | None


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: bytes
    content_type: str = "application/json"


@dataclass(frozen=True, slots=True)
class Signed:
    """A delivery as the platform would send it."""

    headers: dict[str, str]
    body: bytes


class SourceAdapter(abc.ABC):
    # The event source (`Event.source`): a class constant, except per-instance for generic sources.
    name: str
    # Header names (lower case) removed before the headers are stored.
    signature_headers: ClassVar[frozenset[str]] = frozenset()
    # Headers without which no delivery can verify: checked before the body is read.
    required_headers: ClassVar[tuple[str, ...]] = ()

    def __init__(self, max_skew_seconds: float | None = None) -> None:
        """`max_skew_seconds`: the replay window; None = the platform's own."""
        self.max_skew_seconds = max_skew_seconds

    def check_secrets(self, secrets: Sequence[str]) -> None:  # noqa: B027
        """Raise ConfigError at startup for a secret this source could never verify with."""

    def check_headers(self, headers: Headers) -> None:
        """Raise VerificationError (missing_signature) when a required header is absent."""
        for name in self.required_headers:
            if not headers.get(name):
                raise VerificationError(
                    f"header {name} is missing or empty", reason="missing_signature"
                )

    @abc.abstractmethod
    def verify(self, headers: Headers, body: bytes, secrets: Sequence[str], now: float) -> None:
        """Raise VerificationError (reason missing_signature|bad_signature|stale_timestamp)."""

    def parse(self, headers: Headers, body: bytes) -> dict[str, Any]:
        return parse_json_object(body)

    def check_payload(self, payload: Mapping[str, Any], now: float) -> None:  # noqa: B027
        """Checks on the signed payload itself (e.g. Linear's webhookTimestamp)."""

    @abc.abstractmethod
    def normalise(self, headers: Headers, payload: Mapping[str, Any]) -> Normalised:
        """Raise MalformedPayload when the payload lacks what the platform always sends."""

    def reply(self, payload: Mapping[str, Any], event_id: str, duplicate: bool) -> Reply:
        if duplicate:
            return Reply(200, orjson.dumps({"event_id": event_id, "duplicate": True}))
        return Reply(202, orjson.dumps({"event_id": event_id, "queued": True}))

    @abc.abstractmethod
    def sign(self, secret: str, body: bytes, now: float, headers: Headers | None = None) -> Signed:
        """Sign `body` as the platform would at time `now`; `headers` adds platform headers."""


def parse_json_object(body: bytes) -> dict[str, Any]:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedPayload(f"body is not valid JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise MalformedPayload("body must be a JSON object")
    return payload
