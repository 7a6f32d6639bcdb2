"""Hostile HTTP against the real `taskyard serve`: huge or many headers, idle and slow
connections, large unsigned bodies. The server's memory stays bounded, the bad connections are
closed, and a valid delivery still gets through in time while the attack runs."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from taskyard.intake import make_adapter
from tests.acceptance.test_serve import SECRET, Taskyard

pytestmark = pytest.mark.slow

BOUNDS = """
intake:
  header_timeout_seconds: 1.5
  body_timeout_seconds: 1.5
  max_connections: 300
  max_pending_body_bytes: 8388608
"""


@pytest.fixture(params=["sqlite", "postgres"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Taskyard]:
    url = request.getfixturevalue("pg_url") if request.param == "postgres" else None
    ty = Taskyard(tmp_path, url)
    ty.config.write_text(ty.config.read_text() + BOUNDS)
    ty.start()
    yield ty
    ty.stop()


def _rss_mb(ty: Taskyard) -> float:
    assert ty.proc is not None
    for line in Path(f"/proc/{ty.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _connect(ty: Taskyard) -> socket.socket:
    return socket.create_connection(("127.0.0.1", ty.port), timeout=5)


def _status(sock: socket.socket) -> int:
    head = sock.recv(4096)
    return int(head.split(b" ", 2)[1]) if head else 0


def _valid_delivery_seconds(ty: Taskyard) -> float:
    body = b'{"zen": "valid %s"}' % uuid.uuid4().hex.encode()
    signed = make_adapter("github").sign(SECRET, body, time.time(), {"x-github-event": "ping"})
    started = time.monotonic()
    answer = httpx.post(
        f"{ty.url}/webhooks/github", content=signed.body, headers=signed.headers, timeout=10
    )
    assert answer.status_code == 202, answer.text
    return time.monotonic() - started


def _counted(ty: Taskyard, reason: str, source: str = "connection") -> float:
    """One outcome's count in taskyard_webhooks_received_total."""
    text = httpx.get(f"{ty.url}/metrics", timeout=10).text
    line = f'taskyard_webhooks_received_total{{outcome="{reason}",source="{source}"}} '
    found = [ln for ln in text.splitlines() if ln.startswith(line)]
    return float(found[0].split()[-1]) if found else 0.0


def _head(extra: bytes = b"") -> bytes:
    return b"POST /webhooks/github HTTP/1.1\r\nhost: x\r\n" + extra


def test_oversized_header_is_431_and_costs_no_memory(server: Taskyard) -> None:
    before = _rss_mb(server)
    with _connect(server) as sock:
        sock.sendall(_head(b"x-big: "))
        sent = 0
        chunk = b"a" * (1 << 20)
        with contextlib.suppress(OSError):  # the server closes once the limit is passed
            while sent < 100 << 20:
                sock.sendall(chunk)
                sent += len(chunk)
        assert _status(sock) == 431
    assert sent < 100 << 20, "the server read a 100 MB header to the end"
    many = b"".join(b"x-h%d: v\r\n" % n for n in range(500)) + b"\r\n"
    with _connect(server) as sock:
        sock.sendall(_head(many))
        assert _status(sock) == 431
    assert _rss_mb(server) - before < 30
    assert _valid_delivery_seconds(server) < 1.0
    assert _counted(server, "headers_too_large") == 2


def test_idle_connections_are_closed_and_do_not_starve_deliveries(server: Taskyard) -> None:
    idle = [_connect(server) for _ in range(400)]  # past max_connections (300)
    try:
        assert _valid_delivery_seconds(server) < 1.0
        assert _counted(server, "connection_limit") >= 100
        time.sleep(2.5)  # past header_timeout_seconds
        for sock in idle:
            sock.settimeout(0.5)
            with contextlib.suppress(ConnectionResetError):
                assert sock.recv(16) == b"", "an idle connection is still open"
    finally:
        for sock in idle:
            sock.close()


def test_slow_heads_and_bodies_are_cut_off(server: Taskyard) -> None:
    slow = [_connect(server) for _ in range(100)]
    stop = threading.Event()

    signed_head = _head(b"x-hub-signature-256: sha256=00\r\ncontent-length: 1000\r\n\r\n")
    for i, sock in enumerate(slow):  # half send a head slowly, half a body
        sock.sendall(signed_head if i % 2 else _head(b"x-slow: "))

    def drip() -> None:  # one more byte every 0.2 s on every connection
        for _ in range(30):
            if stop.is_set():
                return
            for sock in slow:
                with contextlib.suppress(OSError):
                    sock.sendall(b"a")
            time.sleep(0.2)

    dripping = threading.Thread(target=drip)
    dripping.start()
    try:
        assert _valid_delivery_seconds(server) < 1.0
        time.sleep(3.0)
        statuses = []
        for sock in slow:
            sock.settimeout(1.0)
            with contextlib.suppress(ConnectionResetError):
                statuses.append(_status(sock))
        assert set(statuses) <= {408, 0}, statuses
        assert statuses.count(408) >= 90
        assert _counted(server, "timeout") >= 90
    finally:
        stop.set()
        dripping.join()
        for sock in slow:
            sock.close()


def test_unsigned_bodies_are_refused_before_they_are_read(server: Taskyard) -> None:
    before = _rss_mb(server)
    socks = [_connect(server) for _ in range(16)]
    try:
        for sock in socks:
            sock.sendall(
                _head(b"x-github-event: ping\r\ncontent-length: %d\r\n\r\n" % (25 << 20))
                + b"{" * (1 << 20)
            )
        assert [_status(sock) for sock in socks] == [401] * 16
        assert _rss_mb(server) - before < 30
    finally:
        for sock in socks:
            sock.close()
    assert _valid_delivery_seconds(server) < 1.0


def test_bodies_held_at_once_are_bounded(server: Taskyard) -> None:
    """Signed-looking (but forged) bodies are read before they can be verified: together
    they may hold no more than intake.max_pending_body_bytes (8 MiB here)."""
    head = _head(
        b"x-hub-signature-256: sha256=00\r\nx-github-event: ping\r\n"
        b"content-length: %d\r\n\r\n" % (5 << 20)
    )
    socks = [_connect(server) for _ in range(4)]
    try:
        for sock in socks:
            sock.sendall(head + b"{" * (3 << 20))
        time.sleep(0.5)
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.sendall(b"{" * (2 << 20))
        statuses = sorted(_status(sock) for sock in socks)
        assert 503 in statuses, statuses  # busy: the budget was spent
        assert set(statuses) <= {401, 503}, statuses
    finally:
        for sock in socks:
            sock.close()
    assert _counted(server, "busy", "github") >= 1
    assert _valid_delivery_seconds(server) < 1.0
