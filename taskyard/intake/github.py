"""GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>`, no replay window."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from taskyard.exceptions import MalformedPayload
from taskyard.intake.base import Headers, Normalised, Signed
from taskyard.intake.checks import (
    Adapter,
    bad_signature,
    event_type,
    first_text,
    hmac_sha256_hex,
    require_header,
    require_secrets,
    text_at,
    verify_hex_hmac,
)

SIGNATURE = "x-hub-signature-256"
_PREFIX = "sha256="


class GitHubAdapter(Adapter):
    name = "github"
    signature_headers = frozenset({SIGNATURE, "x-hub-signature"})
    required_headers = (SIGNATURE,)

    def verify(self, headers: Headers, body: bytes, secrets: Sequence[str], now: float) -> None:
        require_secrets(secrets)
        header = require_header(headers, SIGNATURE)
        if not header.startswith(_PREFIX):
            raise bad_signature(f"{SIGNATURE} must start with {_PREFIX!r}")
        verify_hex_hmac(header[len(_PREFIX) :], body, secrets, name=SIGNATURE)

    def normalise(self, headers: Headers, payload: Mapping[str, Any]) -> Normalised:
        event = headers.get("x-github-event", "")
        if not event:
            raise MalformedPayload("header x-github-event is missing")
        return Normalised(
            type=event_type(self.name, event, text_at(payload, "action")),
            delivery_id=headers.get("x-github-delivery") or None,
            subject=_subject(payload),
            actor=text_at(payload, "sender", "login"),
        )

    def sign(self, secret: str, body: bytes, now: float, headers: Headers | None = None) -> Signed:
        given = headers or {}
        return Signed(
            headers={
                "content-type": "application/json",
                "x-github-event": given.get("x-github-event", "ping"),
                "x-github-delivery": given.get("x-github-delivery") or str(uuid.uuid4()),
                SIGNATURE: _PREFIX + hmac_sha256_hex(secret, body),
                "user-agent": "GitHub-Hookshot/taskyard",
            },
            body=body,
        )


def _subject(payload: Mapping[str, Any]) -> str | None:
    """`owner/repo#N` for issues and pull requests, else `owner/repo`, else the account."""
    repo = text_at(payload, "repository", "full_name")
    number = first_text(
        text_at(payload, "issue", "number"),
        text_at(payload, "pull_request", "number"),
        text_at(payload, "number"),
    )
    if repo and number:
        return f"{repo}#{number}"
    return first_text(
        repo,
        text_at(payload, "organization", "login"),
        text_at(payload, "installation", "account", "login"),
    )
