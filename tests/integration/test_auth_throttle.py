"""Wrong API/UI tokens are throttled per client; other clients and right tokens are not."""

from __future__ import annotations

import re
import time
from pathlib import Path

from starlette.testclient import TestClient

from taskyard.store import MemoryStore
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
