"""Shared pieces of the intake adapter tests (imported by the test modules): a fixed clock
and one `Case` per source describing how its deliveries are signed and which headers matter."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from taskyard.intake import make_adapter
from taskyard.intake.base import Normalised, Signed, SourceAdapter
from taskyard.intake.discord import public_key_hex

NOW = 1_700_000_000.0
# Ed25519 seeds (RFC 8032 section 7.1, TEST 1 and TEST 2).
DISCORD_SEED = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
DISCORD_OTHER_SEED = "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb"
WHSEC = "whsec_" + base64.b64encode(b"taskyard generic secret A 32by!!").decode()
WHSEC_OTHER = "whsec_" + base64.b64encode(b"taskyard generic secret B 32by!!").decode()


def load_index(folder: Path) -> dict[str, dict[str, Any]]:
    index: dict[str, dict[str, Any]] = json.loads((folder / "index.json").read_text())
    return index


@dataclass
class Case:
    """How one source signs; `run` is the app's order: verify, parse, check_payload, normalise."""

    source: str
    secret: str  # what `sign` takes
    verify_secret: str  # what `verify` takes (differs for Discord: the public key)
    other_secret: str
    other_verify_secret: str
    body: bytes
    required_headers: tuple[str, ...]  # each one missing → missing_signature
    forged: dict[str, str]  # well-formed but wrong signature header(s)
    window: float | None  # the platform's replay window
    timestamped: bool  # the signature covers a send time
    sign_headers: dict[str, str] = field(default_factory=dict)

    def adapter(self, max_skew_seconds: float | None = None) -> SourceAdapter:
        return make_adapter(self.source, max_skew_seconds)

    def sign(
        self, *, secret: str | None = None, body: bytes | None = None, at: float = NOW
    ) -> Signed:
        return self.adapter().sign(
            secret or self.secret, self.body if body is None else body, at, self.sign_headers
        )

    def run(
        self,
        signed: Signed,
        secrets: list[str] | None = None,
        *,
        now: float = NOW,
        adapter: SourceAdapter | None = None,
    ) -> Normalised:
        adapter = adapter or self.adapter()
        adapter.verify(signed.headers, signed.body, secrets or [self.verify_secret], now)
        payload = adapter.parse(signed.headers, signed.body)
        adapter.check_payload(payload, now)
        return adapter.normalise(signed.headers, payload)


def _read(webhooks: Path, relative: str) -> bytes:
    return (webhooks / relative).read_bytes()


def _zero_b64() -> str:
    return base64.b64encode(bytes(32)).decode()


CASES: dict[str, Callable[[Path], Case]] = {
    "github": lambda w: Case(
        "github", "gh-secret-A", "gh-secret-A", "gh-secret-B", "gh-secret-B",
        _read(w, "github/issues.opened.json"), ("x-hub-signature-256",),
        {"x-hub-signature-256": "sha256=" + "0" * 64}, None, False, {"x-github-event": "issues"},
    ),
    "linear": lambda w: Case(
        "linear", "lin-secret-A", "lin-secret-A", "lin-secret-B", "lin-secret-B",
        _read(w, "linear/issue.create.json"), ("linear-signature",),
        {"linear-signature": "0" * 64}, 60.0, True,
    ),
    "slack": lambda w: Case(
        "slack", "slack-secret-A", "slack-secret-A", "slack-secret-B", "slack-secret-B",
        _read(w, "slack/url_verification.json"),
        ("x-slack-signature", "x-slack-request-timestamp"),
        {"x-slack-signature": "v0=" + "0" * 64}, 300.0, True,
    ),
    "sentry": lambda w: Case(
        "sentry", "sentry-secret-A", "sentry-secret-A", "sentry-secret-B", "sentry-secret-B",
        _read(w, "sentry/example-app.issue.created.json"), ("sentry-hook-signature",),
        {"sentry-hook-signature": "0" * 64}, None, False, {"sentry-hook-resource": "issue"},
    ),
    "discord": lambda w: Case(
        "discord", DISCORD_SEED, public_key_hex(DISCORD_SEED),
        DISCORD_OTHER_SEED, public_key_hex(DISCORD_OTHER_SEED),
        _read(w, "discord/application_command.type2.json"),
        ("x-signature-ed25519", "x-signature-timestamp"),
        {"x-signature-ed25519": "00" * 64}, 300.0, True,
    ),
    "generic:billing": lambda w: Case(
        "generic:billing", WHSEC, WHSEC, WHSEC_OTHER, WHSEC_OTHER,
        b'{"type": "invoice.paid", "subject": "inv_123", "data": {"amount": 4200}}',
        ("webhook-id", "webhook-timestamp", "webhook-signature"),
        {"webhook-signature": "v1," + _zero_b64()}, 300.0, True,
    ),
}  # fmt: skip
