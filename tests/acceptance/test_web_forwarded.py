"""The web API/UI's wrong-token throttle against the real `taskyard serve`: a client cannot
get a fresh record per attempt by writing a new `X-Forwarded-For`, and with
`intake.trust_forwarded_for` the client is the right-most untrusted hop, as at intake."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.acceptance.test_serve import Taskyard

pytestmark = pytest.mark.slow

TOKEN = "web-forwarded-token-0123456789"


def _serve(home: Path, extra: str = "") -> Taskyard:
    ty = Taskyard(home, None)
    ty.env["TASKYARD_API_TOKEN"] = TOKEN
    ty.config.write_text(ty.config.read_text() + extra)
    ty.start()
    return ty


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Taskyard]:
    ty = _serve(tmp_path)
    yield ty
    ty.stop()


def _attempt(ty: Taskyard, forwarded: str, token: str = "wrong") -> int:
    headers = {"authorization": f"Bearer {token}", "x-forwarded-for": forwarded}
    return httpx.get(f"{ty.url}/api/tasks", headers=headers, timeout=10).status_code


def test_a_new_forwarded_for_per_attempt_does_not_escape_the_throttle(server: Taskyard) -> None:
    codes = [_attempt(server, f"203.0.113.{i}") for i in range(1, 16)]
    # before: uvicorn believed the header from a loopback peer, so fifteen fresh "clients"
    assert codes[:5] == [401] * 5 and set(codes[5:]) == {429}, codes
    assert _attempt(server, "198.51.100.9", TOKEN) == 429  # the same peer: still waiting


def test_behind_a_trusted_proxy_the_right_most_untrusted_hop_is_the_client(
    tmp_path: Path,
) -> None:
    ty = _serve(tmp_path, "\nintake:\n  trust_forwarded_for: true\n")
    try:
        # the attacker writes any left part; the proxy (loopback) appends its real address
        codes = [_attempt(ty, f"10.0.0.{i}, 203.0.113.7") for i in range(1, 12)]
        assert codes[:5] == [401] * 5 and set(codes[5:]) == {429}, codes
        assert _attempt(ty, "198.51.100.2", TOKEN) == 200  # another client is not touched
    finally:
        ty.stop()


def test_behind_a_tls_proxy_the_sign_in_cookie_stays_secure(server: Taskyard) -> None:
    """uvicorn no longer reads proxy headers (above); the cookie still says Secure when the
    proxy in front says the browser came over https, and not on plain http."""
    with httpx.Client(base_url=server.url, timeout=10) as plain:
        plain.get("/ui/login")
        form = {"token": TOKEN, "csrf": plain.cookies["taskyard_csrf"], "next": "/"}
        signed = plain.post("/ui/login", data=form, headers={"origin": server.url})
        assert signed.status_code == 303
        cookie = signed.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "secure" not in cookie
    with httpx.Client(base_url=server.url, timeout=10) as proxied:
        tls = {"x-forwarded-proto": "https", "x-forwarded-for": "127.0.0.1"}
        page = proxied.get("/ui/login", headers=tls)
        assert "; secure" in page.headers["set-cookie"].lower()  # the CSRF cookie too
        csrf = proxied.cookies["taskyard_csrf"]
        form = {"token": TOKEN, "csrf": csrf, "next": "/"}
        # (httpx keeps a Secure cookie for https; the browser behind the proxy sends it)
        sent = {**tls, "origin": server.url, "cookie": f"taskyard_csrf={csrf}"}
        signed = proxied.post("/ui/login", data=form, headers=sent)
        assert signed.status_code == 303
        assert "; secure" in signed.headers["set-cookie"].lower()


def test_without_a_token_a_page_of_another_site_cannot_use_the_api(tmp_path: Path) -> None:
    """DNS rebinding: a site the operator visits points its own name at 127.0.0.1, and its
    page, now same-origin with taskyard, calls the token-less API and UI (the peer is
    loopback, the origin matches the Host). Only loopback names are answered."""
    ty = Taskyard(tmp_path, None)
    ty.env.pop("TASKYARD_API_TOKEN", None)
    ty.start()
    try:
        rebound = {"host": f"evil.example:{ty.port}", "origin": f"http://evil.example:{ty.port}"}
        assert httpx.get(f"{ty.url}/api/tasks", headers=rebound, timeout=10).status_code == 403
        assert httpx.get(f"{ty.url}/", headers=rebound, timeout=10).status_code == 403
        for host in (f"127.0.0.1:{ty.port}", f"localhost:{ty.port}", "[::1]"):
            answer = httpx.get(f"{ty.url}/api/tasks", headers={"host": host}, timeout=10)
            assert answer.status_code == 200, host
    finally:
        ty.stop()
