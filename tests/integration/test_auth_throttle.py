"""Wrong API/UI tokens are throttled per client; other clients and right tokens are not."""

from __future__ import annotations

import ipaddress
import re
import time
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from taskyard.store import MemoryStore
from taskyard.web import params
from taskyard.web.throttle import AuthThrottle, client_key
from tests.integration.api_harness import BEARER, TOKEN, app_for

ATTACKER = ("203.0.113.7", 40000)
OPERATOR = ("198.51.100.2", 40001)


def test_a_hundred_wrong_tokens_are_mostly_refused_and_others_still_get_in(
    tmp_path: Path,
) -> None:
    app = app_for(MemoryStore(), tmp_path, throttle=AuthThrottle(base_seconds=60))
    wrong = {"authorization": "Bearer not-the-token"}
    with TestClient(app, client=ATTACKER) as attacker, TestClient(app, client=OPERATOR) as ok:
        codes = [attacker.get("/api/tasks", headers=wrong).status_code for _ in range(100)]
        assert codes[:5] == [401] * 5  # a few mistakes are free
        assert codes.count(429) == 95  # before: a hundred 401s, in 0.1 s
        refused = attacker.get("/api/tasks", headers=BEARER)  # not even looked at
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
        assert refused.json()["error"].startswith("too many wrong tokens")
        assert ok.get("/api/tasks", headers=BEARER).status_code == 200
        assert attacker.get("/api/tasks").status_code == 401  # no token: not an attempt
        # the UI shares the count: the sign-in form is refused too
        attacker.get("/ui/login")
        csrf = attacker.cookies["taskyard_csrf"]
        form = {"token": TOKEN, "csrf": csrf, "next": "/"}
        origin = {"origin": "http://testserver"}
        signin = attacker.post("/ui/login", data=form, headers=origin, follow_redirects=False)
        assert signin.status_code == 429 and "retry-after" in signin.headers


def test_wrong_sign_ins_on_the_form_are_throttled(tmp_path: Path) -> None:
    app = app_for(MemoryStore(), tmp_path)
    with TestClient(app, client=ATTACKER) as c:
        c.get("/ui/login")
        origin = {"origin": "http://testserver"}
        form = {"token": "guess", "csrf": c.cookies["taskyard_csrf"], "next": "/"}
        codes = [c.post("/ui/login", data=form, headers=origin).status_code for _ in range(20)]
        assert codes[:5] == [401] * 5 and set(codes[5:]) == {429}
        page = c.post("/ui/login", data=form, headers=origin)
        assert re.search(r"try again in \d+ s", page.text)


def test_the_wait_doubles_clears_on_success_and_memory_is_bounded() -> None:
    now = [1000.0]
    throttle = AuthThrottle(
        free=2, base_seconds=1, max_seconds=8, max_clients=3, clock=lambda: now[0]
    )
    throttle.failed("a")
    assert throttle.retry_after("a") is None
    waits = []
    for _ in range(5):
        throttle.failed("a")
        waits.append(throttle.retry_after("a"))
        now[0] += 100  # the wait is over, the failures are remembered
    assert waits == [1, 2, 4, 8, 8]
    throttle.succeeded("a")
    assert throttle.retry_after("a") is None
    for name in "bcdef":
        throttle.failed(name)
    assert throttle.clients == 3  # the least recently failed were forgotten
    now[0] += 10_000
    assert throttle.retry_after("f") is None  # forgotten after the window


def test_clients_are_told_apart_by_address_and_an_ipv6_by_its_64() -> None:
    assert client_key({"client": ("203.0.113.7", 1)}) == "203.0.113.7"
    assert client_key({"client": ("2001:db8::1", 1)}) == client_key({"client": ("2001:db8::2", 1)})
    assert client_key({"client": ("2001:db8:0:1::1", 1)}) != client_key(
        {"client": ("2001:db8::1", 1)}
    )
    assert client_key({"client": ("::ffff:203.0.113.7", 1)}) == "203.0.113.7"
    assert client_key({}) == "local"


def test_throttling_costs_nothing_for_right_tokens(tmp_path: Path) -> None:
    app = app_for(MemoryStore(), tmp_path)
    with TestClient(app, client=OPERATOR, headers=BEARER) as c:
        began = time.monotonic()
        assert all(c.get("/api/tasks").status_code == 200 for _ in range(50))
        assert time.monotonic() - began < 10


def test_forwarded_for_names_the_client_only_through_trusted_proxies() -> None:
    scope = {"client": ("127.0.0.1", 1), "headers": [(b"x-forwarded-for", b"1.2.3.4, 5.6.7.8")]}
    assert client_key(scope) == "127.0.0.1"  # not believed unless configured
    trusted = (ipaddress.ip_network("127.0.0.1/32"),)
    assert client_key(scope, trusted) == "5.6.7.8"  # the right-most untrusted hop
    far = {"client": ("203.0.113.7", 1), "headers": scope["headers"]}
    assert client_key(far, trusted) == "203.0.113.7"  # an untrusted peer's header: ignored


@pytest.mark.parametrize(
    "header",
    [
        (b"x-forwarded-for", b"203.0.113.5"),
        (b"x-forwarded-for", b"127.0.0.1, 203.0.113.5"),
        (b"forwarded", b'for="[2001:db8::1]";proto=https'),
        (b"forwarded", b"for=unknown"),
    ],
)
def test_without_a_token_a_request_relayed_for_a_remote_client_is_not_loopback(
    tmp_path: Path, header: tuple[bytes, bytes]
) -> None:
    # uvicorn's proxy headers are off (so that a client cannot pick its throttle record);
    # a reverse proxy on this machine relaying a stranger must not open the token-less API
    app = app_for(MemoryStore(), tmp_path, token=None)
    with TestClient(app, client=("127.0.0.1", 5000), base_url="http://localhost") as local:
        assert local.get("/api/tasks").status_code == 200
        assert local.get("/api/tasks", headers={"x-forwarded-for": "127.0.0.1"}).status_code == 200
        relayed = {header[0].decode(): header[1].decode()}
        assert local.get("/api/tasks", headers=relayed).status_code == 403
        assert local.get("/", headers=relayed).status_code == 403


def test_the_sign_in_cookie_is_good_for_twelve_hours_and_cannot_be_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before, the cookie was one fixed value derived from the token: a copy of it (a shared
    browser profile, a log) signed its holder in for ever, whatever logout did."""
    app = app_for(MemoryStore(), tmp_path)
    with TestClient(app, client=OPERATOR) as c:
        c.get("/ui/login")
        form = {"token": TOKEN, "csrf": c.cookies["taskyard_csrf"], "next": "/"}
        c.post("/ui/login", data=form, headers={"origin": "http://testserver"})
        cookie = c.cookies["taskyard_session"]
        assert c.get("/ui/tasks", follow_redirects=False).status_code == 200
        issued, _, mac = cookie.partition(".")
        now = time.time()
        for forged in (f"{int(issued) + 3600}.{mac}", f"{issued}.{'0' * 64}", mac, "1.2"):
            c.cookies.clear()
            c.cookies.set("taskyard_session", forged)
            assert c.get("/ui/tasks", follow_redirects=False).status_code == 303, forged
        c.cookies.clear()
        c.cookies.set("taskyard_session", cookie)
        assert c.get("/ui/tasks", follow_redirects=False).status_code == 200
        monkeypatch.setattr(time, "time", lambda: now + 12 * 3600 + 1)
        assert c.get("/ui/tasks", follow_redirects=False).status_code == 303  # expired


@pytest.mark.parametrize(
    ("host", "local"),
    [
        ("localhost", True),
        ("LOCALHOST:8080", True),
        ("app.localhost:3000", True),
        ("127.0.0.1:1", True),
        ("127.9.9.9", True),
        ("[::1]:8080", True),
        ("[::ffff:127.0.0.1]", True),
        ("evil.example:8080", False),
        ("127.0.0.1.nip.io", False),
        ("localhost.evil.example", False),
        ("0.0.0.0:8080", False),
        ("[::1", False),
        ("", False),
    ],
)
def test_only_loopback_host_names_count_as_this_machine(host: str, local: bool) -> None:
    scope = {"client": ("127.0.0.1", 1), "headers": [(b"host", host.encode())]}
    assert params.client_is_loopback(scope) is local
