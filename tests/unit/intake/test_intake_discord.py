"""Discord interactions: Ed25519 over timestamp + body, interaction types and responses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from taskyard.exceptions import ConfigError, MalformedPayload, VerificationError
from taskyard.intake import DiscordAdapter
from taskyard.intake.discord import public_key_hex
from tests.unit.intake.intake_cases import DISCORD_SEED, NOW

PUBLIC = public_key_hex(DISCORD_SEED)

# file → (normalised type, delivery id, subject, interaction response)
EXPECTED = {
    "ping.type1.json": ("discord:ping", "787053080478613555", None, {"type": 1}),
    "application_command.type2.json": (
        "discord:application_command",
        "787053080478613556",
        "test",
        {"type": 5},
    ),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_payload_signed_verifies_normalises_and_replies(webhooks: Path, name: str) -> None:
    adapter = DiscordAdapter()
    signed = adapter.sign(DISCORD_SEED, (webhooks / "discord" / name).read_bytes(), NOW)
    adapter.verify(signed.headers, signed.body, [PUBLIC], NOW)
    payload = adapter.parse(signed.headers, signed.body)
    normalised = adapter.normalise(signed.headers, payload)
    kind, delivery, subject, response = EXPECTED[name]
    assert (normalised.type, normalised.delivery_id, normalised.subject) == (
        kind,
        delivery,
        subject,
    )
    for duplicate in (False, True):
        reply = adapter.reply(payload, "ev-1", duplicate)
        assert (reply.status, orjson.loads(reply.body)) == (200, response)


def test_every_corpus_file_is_expected(webhooks: Path) -> None:
    assert {p.name for p in (webhooks / "discord").glob("*.json")} == set(EXPECTED)


@pytest.mark.parametrize(
    ("kind", "name", "response"),
    [
        (1, "discord:ping", {"type": 1}),
        (2, "discord:application_command", {"type": 5}),
        (3, "discord:message_component", {"type": 6}),
        (4, "discord:application_command_autocomplete", {"type": 8, "data": {"choices": []}}),
        (5, "discord:modal_submit", {"type": 5}),
    ],
)
def test_interaction_types(kind: int, name: str, response: dict[str, Any]) -> None:
    payload = {"id": "1", "type": kind}
    adapter = DiscordAdapter()
    assert adapter.normalise({}, payload).type == name
    assert orjson.loads(adapter.reply(payload, "e", False).body) == response


@pytest.mark.parametrize("kind", [None, 0, 6, "2", True])
def test_unknown_interaction_types_are_malformed(kind: Any) -> None:
    with pytest.raises(MalformedPayload):
        DiscordAdapter().normalise({}, {"id": "1", "type": kind})


@pytest.mark.parametrize(
    ("extra", "subject", "actor"),
    [
        ({"guild_id": "G1", "channel_id": "C1", "data": {"name": "deploy"},
          "member": {"user": {"username": "ada"}}}, "G1/C1:deploy", "ada"),
        ({"channel_id": "C1", "user": {"username": "bob"}}, "C1", "bob"),
        ({"guild_id": "G1", "channel_id": "C1", "data": {"custom_id": "ok"}}, "G1/C1", None),
    ],
)  # fmt: skip
def test_subject_and_actor(extra: dict[str, Any], subject: str, actor: str | None) -> None:
    normalised = DiscordAdapter().normalise({}, {"id": "9", "type": 2, **extra})
    assert (normalised.subject, normalised.actor) == (subject, actor)


class _NoWindow(DiscordAdapter):
    default_max_skew = None


# Source: RFC 8032 section 7.1, Ed25519 TEST 1 and TEST 2 (secret key → public key; TEST 2
# signs the one-byte message 0x72, i.e. "r": here timestamp "r" followed by an empty body,
# which only an adapter without a replay window takes).
def test_rfc8032_vectors() -> None:
    assert PUBLIC == "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
    public2 = public_key_hex("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb")
    assert public2 == "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c"
    signature = (
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
        "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"
    )
    headers = {"x-signature-ed25519": signature, "x-signature-timestamp": "r"}
    _NoWindow().verify(headers, b"", [PUBLIC, public2], NOW)
    with pytest.raises(VerificationError):
        _NoWindow().verify(headers, b"", [PUBLIC], NOW)


@pytest.mark.parametrize(("age", "refused"), [(299, False), (301, True), (-301, True)])
def test_timestamps_older_than_five_minutes_are_stale(age: float, refused: bool) -> None:
    signed = DiscordAdapter().sign(DISCORD_SEED, b'{"id": "1", "type": 1}', NOW - age)
    if not refused:
        DiscordAdapter().verify(signed.headers, signed.body, [PUBLIC], NOW)
        return
    with pytest.raises(VerificationError) as caught:
        DiscordAdapter().verify(signed.headers, signed.body, [PUBLIC], NOW)
    assert caught.value.reason == "stale_timestamp"


def test_sign_signs_timestamp_then_body() -> None:
    body = json.dumps({"id": "1", "type": 1}).encode()
    signed = DiscordAdapter().sign(DISCORD_SEED, body, NOW + 0.9)
    assert signed.headers["x-signature-timestamp"] == "1700000000"
    key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(PUBLIC))
    key.verify(bytes.fromhex(signed.headers["x-signature-ed25519"]), b"1700000000" + body)
    assert DiscordAdapter.signature_headers == {"x-signature-ed25519", "x-signature-timestamp"}


@pytest.mark.parametrize("signature", ["zz" * 64, "00" * 63, "abc"])
def test_malformed_signatures_are_bad_signatures(signature: str) -> None:
    headers = {"x-signature-ed25519": signature, "x-signature-timestamp": "1700000000"}
    with pytest.raises(VerificationError) as caught:
        DiscordAdapter().verify(headers, b"{}", [PUBLIC], NOW)
    assert caught.value.reason == "bad_signature"


def test_timestamp_must_be_unix_seconds_when_a_window_is_set() -> None:
    signed = DiscordAdapter().sign(DISCORD_SEED, b"{}", NOW)
    headers = {**signed.headers, "x-signature-timestamp": "yesterday"}
    with pytest.raises(VerificationError) as caught:
        DiscordAdapter(max_skew_seconds=60).verify(headers, b"{}", [PUBLIC], NOW)
    assert caught.value.reason == "bad_signature"


def test_a_bad_configured_public_key_is_a_config_error() -> None:
    signed = DiscordAdapter().sign(DISCORD_SEED, b"{}", NOW)
    with pytest.raises(ConfigError):
        DiscordAdapter().verify(signed.headers, signed.body, ["not-hex"], NOW)


def test_a_bad_signing_seed_is_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        DiscordAdapter().sign("abcd", b"{}", NOW)
