"""Sentry integration platform: `Sentry-Hook-Signature: <hex HMAC-SHA256 of the raw body>`
keyed with the client secret; `Sentry-Hook-Resource` names the event; no replay window."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from taskyard.exceptions import MalformedPayload
from taskyard.intake.base import Headers, Normalised, Signed
from taskyard.intake.checks import (
    Adapter,
    event_type,
    first_text,
    hmac_sha256_hex,
    require_header,
    require_secrets,
    text_at,
    verify_hex_hmac,
)

SIGNATURE = "sentry-hook-signature"
RESOURCE = "sentry-hook-resource"


class SentryAdapter(Adapter):
    name = "sentry"
    signature_headers = frozenset({SIGNATURE})
    required_headers = (SIGNATURE,)

    def verify(self, headers: Headers, body: bytes, secrets: Sequence[str], now: float) -> None:
        require_secrets(secrets)
        verify_hex_hmac(require_header(headers, SIGNATURE), body, secrets, name=SIGNATURE)

    def normalise(self, headers: Headers, payload: Mapping[str, Any]) -> Normalised:
        resource = headers.get(RESOURCE, "")
        if not resource:
            raise MalformedPayload(f"header {RESOURCE} is missing")
        subject = _SUBJECTS.get(resource, _no_subject)(payload)
        return Normalised(
            type=event_type(self.name, resource, text_at(payload, "action")),
            delivery_id=headers.get("request-id") or None,
            subject=subject or text_at(payload, "installation", "organization", "slug"),
            actor=first_text(text_at(payload, "actor", "name"), text_at(payload, "actor", "id")),
        )

    def sign(self, secret: str, body: bytes, now: float, headers: Headers | None = None) -> Signed:
        given = headers or {}
        return Signed(
            headers={
                "content-type": "application/json",
                RESOURCE: given.get(RESOURCE) or "issue",
                "sentry-hook-timestamp": str(int(now)),
                "request-id": given.get("request-id") or str(uuid.uuid4()),
                SIGNATURE: hmac_sha256_hex(secret, body),
            },
            body=body,
        )


def _joined(project: str | None, item: str | None) -> str | None:
    return f"{project}/{item}" if project and item else item


def _issue(payload: Mapping[str, Any]) -> str | None:
    issue = text_at(payload, "data", "issue", "shortId") or text_at(payload, "data", "issue", "id")
    return _joined(text_at(payload, "data", "issue", "project", "slug"), issue)


def _event_alert(payload: Mapping[str, Any]) -> str | None:
    return _joined(
        text_at(payload, "data", "event", "project"),
        text_at(payload, "data", "event", "issue_id"),
    )


def _metric_alert(payload: Mapping[str, Any]) -> str | None:
    incident = text_at(payload, "data", "metric_alert", "id")
    return f"metric_alert/{incident}" if incident else None


def _comment(payload: Mapping[str, Any]) -> str | None:
    return _joined(text_at(payload, "data", "project_slug"), text_at(payload, "data", "issue_id"))


def _no_subject(payload: Mapping[str, Any]) -> str | None:
    return None


_SUBJECTS: dict[str, Callable[[Mapping[str, Any]], str | None]] = {
    "issue": _issue,
    "event_alert": _event_alert,
    "metric_alert": _metric_alert,
    "comment": _comment,
}
