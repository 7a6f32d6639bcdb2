"""Sentry: the real payloads (resource from index.json), subjects and signing headers."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from taskyard.exceptions import MalformedPayload
from taskyard.intake import SentryAdapter
from tests.unit.intake.intake_cases import NOW, load_index

# file → (normalised type, subject, actor)
EXPECTED = {
    "example-app.installation.created.json": ("sentry:installation.created", "example", None),
    "example-app.installation.deleted.json": ("sentry:installation.deleted", "example", None),
    "example-app.issue.created.json": ("sentry:issue.created", "ipe/IPE-1", None),
    "example-app.issue.assigned.json": ("sentry:issue.assigned", "ipe/IPE-1", None),
    "example-app.issue.resolved.json": ("sentry:issue.resolved", "ipe/IPE-1", None),
    "example-app.issue.ignored.json": ("sentry:issue.ignored", "ipe/IPE-1", None),
    "example-app.comment.created.json": ("sentry:comment.created", "ipe/123", "name"),
    "example-app.event_alert.triggered.json": ("sentry:event_alert.triggered", "123", None),
    "example-app.metric_alert.critical.json": (
        "sentry:metric_alert.critical",
        "metric_alert/789",
        None,
    ),
    "example-app.metric_alert.resolved.json": (
        "sentry:metric_alert.resolved",
        "metric_alert/789",
        None,
    ),
    "docs.issue.created.json": ("sentry:issue.created", "front-end/FRONT-END-9", "Sentry"),
}


def test_every_corpus_file_is_expected(webhooks: Path) -> None:
    index = load_index(webhooks / "sentry")
    assert set(index) == set(EXPECTED)
    for name, meta in index.items():
        assert EXPECTED[name][0] == f"sentry:{meta['sentry_hook_resource']}.{meta['action']}"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_payload_signed_verifies_and_normalises(webhooks: Path, name: str) -> None:
    resource = load_index(webhooks / "sentry")[name]["sentry_hook_resource"]
    adapter = SentryAdapter()
    given = {"sentry-hook-resource": resource, "request-id": "req-1"}
    signed = adapter.sign("client-secret", (webhooks / "sentry" / name).read_bytes(), NOW, given)
    adapter.verify(signed.headers, signed.body, ["client-secret"], NOW)
    normalised = adapter.normalise(signed.headers, adapter.parse(signed.headers, signed.body))
    assert (normalised.type, normalised.subject, normalised.actor) == EXPECTED[name]
    assert normalised.delivery_id == "req-1"


def test_sign_headers() -> None:
    signed = SentryAdapter().sign("s", b"{}", NOW)
    assert signed.headers["sentry-hook-resource"] == "issue"
    assert signed.headers["sentry-hook-timestamp"] == "1700000000"
    assert signed.headers["content-type"] == "application/json"
    assert uuid.UUID(signed.headers["request-id"])
    assert SentryAdapter.signature_headers == {"sentry-hook-signature"}


# Source: RFC 4231 section 4.3 (HMAC-SHA256 test case 2); Sentry's signature is the hex
# HMAC-SHA256 of the raw body keyed with the client secret.
def test_rfc4231_vector() -> None:
    digest = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    body = b"what do ya want for nothing?"
    assert SentryAdapter().sign("Jefe", body, NOW).headers["sentry-hook-signature"] == digest
    SentryAdapter().verify({"sentry-hook-signature": digest}, body, ["Jefe"], NOW)


def test_missing_resource_header_is_malformed() -> None:
    with pytest.raises(MalformedPayload, match="sentry-hook-resource"):
        SentryAdapter().normalise({}, {"action": "created"})


def test_event_alert_with_project_and_unknown_resource() -> None:
    adapter = SentryAdapter()
    alert = {"action": "triggered", "data": {"event": {"project": 42, "issue_id": "9"}}}
    assert adapter.normalise({"sentry-hook-resource": "event_alert"}, alert).subject == "42/9"
    other = {"action": "x", "actor": {"id": 7}}
    normalised = adapter.normalise({"sentry-hook-resource": "seer"}, other)
    assert (normalised.type, normalised.subject, normalised.actor) == ("sentry:seer.x", None, "7")
