"""Pre-store checks, excerpts of caller input, and the forwarded client address."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import time

import pytest

from taskyard.exceptions import MalformedPayload
from taskyard.intake.base import Normalised
from taskyard.intake.generic import GenericAdapter
from taskyard.intake.limits import client_address
from taskyard.intake.validate import check_depth, check_storable, excerpt

WHSEC = "whsec_" + base64.b64encode(b"k" * 32).decode()


def _nested(depth: int) -> object:
    value: object = {}
    for n in range(depth - 1):
        value = [value] if n % 2 else {"k": value}
    return value


@pytest.mark.parametrize(("depth", "refused"), [(1, False), (64, False), (65, True)])
def test_depth_is_counted_over_objects_and_arrays(depth: int, refused: bool) -> None:
    if refused:
        with pytest.raises(MalformedPayload) as caught:
            check_depth(_nested(depth), 64)
        assert caught.value.reason == "too_deep"
    else:
        check_depth(_nested(depth), 64)


def test_the_depth_walk_does_not_recurse() -> None:
    with pytest.raises(MalformedPayload):
        check_depth(_nested(100_000), 64)  # a recursive walk would overflow the stack


@pytest.mark.parametrize(
    "norm",
    [
        Normalised("github:ping", "a\x00b", None, None),
        Normalised("github:ping", "x" * 257, None, None),
        Normalised("github:ping", None, None, "ev\x00il"),
        Normalised("github:ping", None, "o/r\ud800", None),
        Normalised("github:pi\x00ng", None, None, None),
        Normalised("github:ping", None, "s" * 1025, None),
    ],
)
def test_unstorable_fields_are_refused(norm: Normalised) -> None:
    with pytest.raises(MalformedPayload) as caught:
        check_storable(norm)
    assert caught.value.reason == "unstorable"
    assert "\x00" not in str(caught.value)


def test_ordinary_fields_are_storable() -> None:
    check_storable(Normalised("github:ping", "x" * 256, "o/r#1", "octo ✓"))


def test_excerpts_are_short_and_escaped() -> None:
    shown = excerpt("\x1b[31m<b>" + "x" * 500)
    assert "\x1b" not in shown and len(shown) < 100 and shown.endswith("…")
    assert excerpt("plain") == "plain"


TRUSTED = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("127.0.0.1/32")]


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        ("203.0.113.1", ["1.2.3.4"], "203.0.113.1"),  # an untrusted peer's header is ignored
        ("127.0.0.1", ["1.2.3.4"], "1.2.3.4"),
        ("127.0.0.1", ["6.6.6.6, 1.2.3.4"], "1.2.3.4"),  # the left entry is the client's own
        ("127.0.0.1", ["6.6.6.6, 1.2.3.4, 10.0.0.2"], "1.2.3.4"),
        ("127.0.0.1", ["6.6.6.6", "1.2.3.4, 10.0.0.2"], "1.2.3.4"),  # several headers
        ("127.0.0.1", ["10.0.0.3, 10.0.0.2"], "10.0.0.3"),  # every hop a proxy
        ("127.0.0.1", ["1.2.3.4, junk"], "127.0.0.1"),  # malformed: the last trusted hop
        ("127.0.0.1", [], "127.0.0.1"),
    ],
)
def test_forwarded_for_is_read_from_the_right(peer: str, forwarded: list[str], client: str) -> None:
    assert client_address(peer, forwarded, TRUSTED) == client


def test_generic_signed_non_utf8_body_is_malformed_not_unsigned() -> None:
    adapter = GenericAdapter("billing")
    now = time.time()
    utf8 = adapter.sign(WHSEC, b'{"a": 1}', now)
    adapter.verify(utf8.headers, utf8.body, [WHSEC], now)  # the library's own signature
    body = b'{"a": "\xff"}'
    msg_id, sent = utf8.headers["webhook-id"], utf8.headers["webhook-timestamp"]
    key = base64.b64decode(WHSEC.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{sent}.".encode() + body, hashlib.sha256).digest()
    headers = {**utf8.headers, "webhook-signature": "v1," + base64.b64encode(mac).decode()}
    with pytest.raises(MalformedPayload):
        adapter.verify(headers, body, [WHSEC], now)
