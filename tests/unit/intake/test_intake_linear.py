"""Linear: real payloads, the body timestamp stamped at send time, and its freshness window."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from taskyard.exceptions import MalformedPayload, VerificationError
from taskyard.intake import LinearAdapter
from taskyard.intake.linear import stamp_timestamp
from tests.unit.intake.intake_cases import NOW

CREATOR = "80e102b0-xxxx-xxxx-xxxx-044bcfb4cd39"
# file → (normalised type, subject, actor)
EXPECTED = {
    "issue.create.json": ("linear:Issue.create", "KOR-11", CREATOR),
    "issue.update.state_change.json": ("linear:Issue.update", "KOR-11", CREATOR),
    "comment.create.sdk-test.json": (
        "linear:Comment.create",
        "LIN-1778",
        "aacdca22-6266-4c0a-ab3c-8fa70a26765c",
    ),
}


def test_every_corpus_file_is_expected(webhooks: Path) -> None:
    assert {p.name for p in (webhooks / "linear").glob("*.json")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_payload_signed_verifies_and_normalises(webhooks: Path, name: str) -> None:
    adapter = LinearAdapter()
    body = (webhooks / "linear" / name).read_bytes()
    signed = adapter.sign("secret", body, NOW, {"linear-delivery": "d-1"})
    adapter.verify(signed.headers, signed.body, ["secret"], NOW)
    payload = adapter.parse(signed.headers, signed.body)
    adapter.check_payload(payload, NOW)
    normalised = adapter.normalise(signed.headers, payload)
    assert (normalised.type, normalised.subject, normalised.actor) == EXPECTED[name]
    assert normalised.delivery_id == "d-1"
    assert signed.headers["linear-event"] == payload["type"]
    assert signed.headers["content-type"] == "application/json; charset=utf-8"


def test_sign_replaces_an_existing_timestamp_and_nothing_else(webhooks: Path) -> None:
    body = (webhooks / "linear" / "comment.create.sdk-test.json").read_bytes()
    signed = LinearAdapter().sign("secret", body, NOW + 0.5)
    assert signed.body == body.replace(b"1677611643000", b"1700000000500")


def test_sign_inserts_a_missing_timestamp_after_the_opening_brace(webhooks: Path) -> None:
    body = (webhooks / "linear" / "issue.create.json").read_bytes()
    signed = LinearAdapter().sign("secret", body, NOW)
    assert signed.body == b'{"webhookTimestamp":1700000000000,' + body[1:]


@pytest.mark.parametrize(
    ("body", "stamped"),
    [
        (b"{}", b'{"webhookTimestamp":5}'),
        (b" { } ", b' {"webhookTimestamp":5 } '),
        (b'{"webhookTimestamp": null, "a": 1}', b'{"webhookTimestamp": 5, "a": 1}'),
        (b'{"a":1,"webhookTimestamp" :1.5e3}', b'{"a":1,"webhookTimestamp" :5}'),
    ],
)
def test_stamp_timestamp(body: bytes, stamped: bytes) -> None:
    assert stamp_timestamp(body, 5) == stamped


@pytest.mark.parametrize("body", [b"[]", b"", b'{"data": {"webhookTimestamp": 1}}'])
def test_stamp_timestamp_refuses_what_it_cannot_stamp(body: bytes) -> None:
    with pytest.raises((ValueError, MalformedPayload)):
        stamp_timestamp(body, 5)


# Source: RFC 4231 section 4.3 (HMAC-SHA256 test case 2); Linear's signature is exactly this
# lowercase hex HMAC-SHA256 of the raw body (shared/webhooks/linear/SIGNATURE.md).
def test_rfc4231_vector() -> None:
    digest = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    LinearAdapter().verify(
        {"linear-signature": digest}, b"what do ya want for nothing?", ["Jefe"], NOW
    )


@pytest.mark.parametrize(
    ("stamp", "accepted"),
    [(NOW * 1000, True), (NOW * 1000 - 59_000, True), (NOW * 1000 + 59_000, True),
     (NOW * 1000 - 61_000, False), (NOW * 1000 + 61_000, False), (NOW, False)],
)  # fmt: skip
def test_webhook_timestamp_window(stamp: float, accepted: bool) -> None:
    payload = {"type": "Issue", "action": "create", "webhookTimestamp": stamp}
    if accepted:
        LinearAdapter().check_payload(payload, NOW)
        return
    with pytest.raises(VerificationError) as caught:
        LinearAdapter().check_payload(payload, NOW)
    assert caught.value.reason == "stale_timestamp"


@pytest.mark.parametrize("stamp", [None, "1700000000000", True, [1]])
def test_webhook_timestamp_must_be_a_number(stamp: Any) -> None:
    payload = {"type": "Issue", "action": "create", "webhookTimestamp": stamp}
    with pytest.raises(VerificationError, match="webhookTimestamp") as caught:
        LinearAdapter().check_payload(payload, NOW)
    assert caught.value.reason == "stale_timestamp"


def test_configured_window() -> None:
    payload = {"webhookTimestamp": NOW * 1000 - 100_000}
    LinearAdapter(max_skew_seconds=120).check_payload(payload, NOW)
    with pytest.raises(VerificationError):
        LinearAdapter().check_payload(payload, NOW)


@pytest.mark.parametrize("missing", ["type", "action"])
def test_type_and_action_are_required(missing: str) -> None:
    payload = {"type": "Issue", "action": "create"}
    del payload[missing]
    with pytest.raises(MalformedPayload, match=missing):
        LinearAdapter().normalise({}, payload)


@pytest.mark.parametrize(
    ("extra", "subject", "actor"),
    [
        ({"data": {"identifier": "ENG-7", "id": "u1"}, "url": "https://linear.app/x/issue/ENG-8/t"},
         "ENG-7", None),
        ({"data": {"id": "u1"}, "url": "https://linear.app/x/issue/ENG-8/title"}, "ENG-8", None),
        ({"data": {"id": "u1"}, "url": "https://linear.app/x/project/p"}, "u1", None),
        ({"actor": {"name": "Ada", "email": "ada@example.com"}}, None, "Ada"),
        ({"actor": {"id": "a1", "email": "ada@example.com"}}, None, "ada@example.com"),
        ({"data": {"userId": "u9"}}, None, "u9"),
    ],
)  # fmt: skip
def test_subject_and_actor_fallbacks(extra: dict[str, Any], subject: str, actor: str) -> None:
    payload = {"type": "Issue", "action": "update", **extra}
    normalised = LinearAdapter().normalise({}, json.loads(json.dumps(payload)))
    assert (normalised.subject, normalised.actor, normalised.delivery_id) == (subject, actor, None)
