"""Discord interactions: `X-Signature-Ed25519` (hex) over `timestamp + raw body`, with
`X-Signature-Timestamp`; secrets are the application's hex public keys. Every answer is an
interaction response with status 200 (duplicates too: Discord needs the response)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from taskyard.exceptions import ConfigError, MalformedPayload
from taskyard.intake.base import Headers, Normalised, Reply, Signed
from taskyard.intake.checks import (
    Adapter,
    bad_signature,
    check_window,
    event_type,
    first_text,
    require_header,
    require_secrets,
    text_at,
    unix_seconds,
)
from taskyard.intake.validate import excerpt

SIGNATURE = "x-signature-ed25519"
TIMESTAMP = "x-signature-timestamp"
# Interaction type → (event name, interaction response).
_INTERACTIONS: dict[int, tuple[str, dict[str, Any]]] = {
    1: ("ping", {"type": 1}),  # PONG
    2: ("application_command", {"type": 5}),  # deferred channel message
    3: ("message_component", {"type": 6}),  # deferred update message
    4: ("application_command_autocomplete", {"type": 8, "data": {"choices": []}}),
    5: ("modal_submit", {"type": 5}),
}


def public_key_hex(private_seed_hex: str) -> str:
    """The hex public key of a hex 32-byte Ed25519 private seed."""
    public = _private_key(private_seed_hex).public_key()
    return public.public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


class DiscordAdapter(Adapter):
    name = "discord"
    signature_headers = frozenset({SIGNATURE, TIMESTAMP})
    required_headers = (SIGNATURE, TIMESTAMP)
    # Discord documents no window; a signed interaction older than this is a replay.
    default_max_skew = 300.0

    def check_secrets(self, secrets: Sequence[str]) -> None:
        for key in secrets:
            try:
                Ed25519PublicKey.from_public_bytes(bytes.fromhex(key))
            except ValueError as exc:
                raise ConfigError("a configured Discord public key is not 32 bytes of hex") from exc

    def verify(self, headers: Headers, body: bytes, secrets: Sequence[str], now: float) -> None:
        require_secrets(secrets)
        signature_hex, sent = require_header(headers, SIGNATURE), require_header(headers, TIMESTAMP)
        signature = _signature_bytes(signature_hex)
        if self.max_skew is not None:
            check_window(unix_seconds(sent, name=TIMESTAMP), now, self.max_skew, name=TIMESTAMP)
        message = sent.encode("utf-8", "replace") + body
        if not any([_signed_by(key, signature, message) for key in secrets]):
            raise bad_signature(f"{SIGNATURE} does not verify under any configured public key")

    def normalise(self, headers: Headers, payload: Mapping[str, Any]) -> Normalised:
        name = text_at(payload, "data", "name")
        place = "/".join(
            p for p in (text_at(payload, "guild_id"), text_at(payload, "channel_id")) if p
        )
        subject = f"{place}:{name}" if place and name else place or name
        return Normalised(
            type=event_type(self.name, _interaction(payload)[0], None),
            delivery_id=text_at(payload, "id"),
            subject=subject,
            actor=first_text(
                text_at(payload, "member", "user", "username"),
                text_at(payload, "user", "username"),
            ),
        )

    def reply(self, payload: Mapping[str, Any], event_id: str, duplicate: bool) -> Reply:
        return Reply(200, orjson.dumps(_interaction(payload)[1]))

    def sign(self, secret: str, body: bytes, now: float, headers: Headers | None = None) -> Signed:
        sent = str(int(now))
        signature = _private_key(secret).sign(sent.encode() + body)
        return Signed(
            headers={
                "content-type": "application/json",
                SIGNATURE: signature.hex(),
                TIMESTAMP: sent,
            },
            body=body,
        )


def _interaction(payload: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    kind = payload.get("type")
    known = (
        _INTERACTIONS.get(kind) if isinstance(kind, int) and not isinstance(kind, bool) else None
    )
    if known is None:
        shown = excerpt(repr(kind), 32)
        raise MalformedPayload(f"discord interaction type {shown} is not one taskyard knows")
    return known


def _signature_bytes(header: str) -> bytes:
    try:
        signature = bytes.fromhex(header)
    except ValueError as exc:
        raise bad_signature(f"{SIGNATURE} is not hex") from exc
    if len(signature) != 64:
        raise bad_signature(f"{SIGNATURE} is not a 64-byte Ed25519 signature")
    return signature


def _signed_by(public_key_hex: str, signature: bytes, message: bytes) -> bool:
    try:
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key_hex))
    except ValueError as exc:
        raise ConfigError("a configured Discord public key is not 32 bytes of hex") from exc
    try:
        key.verify(signature, message)
    except InvalidSignature:
        return False
    return True


def _private_key(seed_hex: str) -> Ed25519PrivateKey:
    try:
        return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(seed_hex))
    except ValueError as exc:
        raise ValueError("a Discord signing key must be 32 bytes of hex (an Ed25519 seed)") from exc
