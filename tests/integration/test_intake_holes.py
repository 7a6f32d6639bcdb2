"""Intake refusals found by attacking it (issue 13), on SQLite and PostgreSQL: unstorable
deliveries, replays under new ids, payload shapes, forwarded addresses, a store that is down,
echoed input and deep nesting."""

from __future__ import annotations

import asyncio
import fcntl
import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from taskyard.exceptions import StoreError
from taskyard.intake.writer import EventWriter
from taskyard.models import Event, Priority, new_id
from taskyard.store import SQLStore
from taskyard.store.base import FOREVER, NewEvent
from tests.integration.intake_harness import Harness, running_intake
from tests.integration.test_intake_http import _psql


def _ping(text: str, **extra: Any) -> bytes:
    return json.dumps({"zen": text, **extra}).encode()


async def _github(h: Harness, body: bytes, delivery: str | None = None) -> Any:
    headers = {"x-github-event": "ping", "x-github-delivery": delivery or str(uuid.uuid4())}
    response, _, _ = await h.deliver("github", body, headers)
    return response


async def test_unstorable_deliveries_are_400_and_never_fail_their_neighbours(
    tmp_path: Path, store_url: str
) -> None:
    poison = [
        ("github", _ping("a"), "nul\x00id"),
        ("github", _ping("b", sender={"login": "ev\x00il"}), None),
        ("github", _ping("c"), "x" * 3000),
        ("github", _ping("d", repository={"full_name": "o/r\x00"}), None),
    ]
    async with running_intake(tmp_path, store_url) as h:
        clean = [_github(h, _ping(f"clean {n}")) for n in range(200)]
        bad = [_github(h, body, d) for _ in range(10) for _, body, d in poison]
        answers = await asyncio.gather(*clean, *bad)
        assert [a.status_code for a in answers[:200]] == [202] * 200
        assert {a.status_code for a in answers[200:]} <= {400}
        assert {a.json()["reason"] for a in answers[200:]} == {"unstorable"}
        assert h.count() == 200
        assert h.metric("github", "unstorable") == 40


@pytest.mark.postgres
async def test_a_row_the_database_refuses_fails_alone(pg_url: str) -> None:
    """Below the intake's checks: a batch with one row PostgreSQL refuses is stored row by row."""
    store = SQLStore.open(pg_url)
    store.migrate()
    writer = EventWriter(store)
    await writer.start()
    now = time.time()

    def item(actor: str) -> NewEvent:
        event = Event(
            id=new_id(), source="github", type="github:ping", delivery_id=None, subject=None,
            actor=actor, received_at=now, priority=Priority.P2, headers={}, body=b"{}",
            content_hash="h",
        )  # fmt: skip
        return NewEvent(event, f"id:{event.id}", FOREVER)

    try:
        items = [item("ok") for _ in range(20)] + [item("ba\x00d")]
        answers = await asyncio.gather(*(writer.write(i) for i in items), return_exceptions=True)
        assert all(not isinstance(a, BaseException) for a in answers[:20]), answers
        assert isinstance(answers[20], Exception)
        assert sum(store.count_events().values()) == 20
    finally:
        await writer.stop()
        store.close()


@pytest.mark.parametrize(
    ("source", "headers", "id_header"),
    [
        ("github", {"x-github-event": "issues"}, "x-github-delivery"),
        ("sentry", {"sentry-hook-resource": "issue"}, "request-id"),
        ("linear", {}, "linear-delivery"),
    ],
)
async def test_a_replay_under_a_new_delivery_id_is_a_duplicate(
    tmp_path: Path, store_url: str, shared_dir: Path, source: str, headers: dict[str, str],
    id_header: str,
) -> None:  # fmt: skip
    files = {
        "github": "github/issues.opened.json",
        "sentry": "sentry/example-app.issue.created.json",
        "linear": "linear/issue.create.json",
    }
    body = (shared_dir / "webhooks" / files[source]).read_bytes()
    async with running_intake(tmp_path, store_url) as h:
        first, sent, sent_headers = await h.deliver(source, body, headers)
        assert first.status_code == 202
        event_id = first.json()["event_id"]
        replay_id = str(uuid.uuid4())
        for _ in range(5):  # the captured delivery, re-sent under a new id each time
            again = await h.post(source, sent, {**sent_headers, id_header: str(uuid.uuid4())})
            assert again.json() == {"event_id": event_id, "duplicate": True}
        replay = await h.post(source, sent, {**sent_headers, id_header: replay_id})
        redelivered = await h.post(source, sent, {**sent_headers, id_header: replay_id})
        assert replay.json() == redelivered.json() == {"event_id": event_id, "duplicate": True}
        assert h.count() == 1


async def test_the_replay_window_is_configurable_per_source(tmp_path: Path, store_url: str) -> None:
    sources = {"github": {"dedup_window_seconds": 0}}
    async with running_intake(tmp_path, store_url, sources=sources) as h:
        body = _ping("heartbeat")
        assert (await _github(h, body)).status_code == 202
        assert (await _github(h, body)).status_code == 202  # the window is off for github
        assert h.count() == 2


@pytest.mark.parametrize("kind", [["event_callback"], {"a": 1}, 7, None, ""])
async def test_every_slack_shape_error_is_a_counted_400(
    tmp_path: Path, store_url: str, kind: Any
) -> None:
    async with running_intake(tmp_path, store_url) as h:
        body = json.dumps({"type": kind, "event_id": "Ev1", "event": {"type": "message"}})
        response, _, _ = await h.deliver("slack", body.encode())
        assert response.status_code == 400, response.text
        assert h.metric("slack", "malformed") == 1


async def test_a_signed_body_that_is_not_utf8_is_400(tmp_path: Path, store_url: str) -> None:
    async with running_intake(tmp_path, store_url) as h:
        body = b'{"type": "event_callback", "x": "\xff\xfe"}'
        signed = _slack_sign(body)
        response = await h.post("slack", body, signed)
        assert response.status_code == 400, response.text
        bogus = await h.post("slack", body, {**signed, "x-slack-signature": "v0=" + "0" * 64})
        assert bogus.status_code == 401


def _slack_sign(body: bytes) -> dict[str, str]:
    import hmac

    from tests.integration.intake_harness import SECRETS

    sent = str(int(time.time()))
    digest = hmac.new(SECRETS["slack"].encode(), b"v0:" + sent.encode() + b":" + body, "sha256")
    return {
        "content-type": "application/json",
        "x-slack-request-timestamp": sent,
        "x-slack-signature": "v0=" + digest.hexdigest(),
    }


FORWARDED_CASES = {
    "192.0.2.7": 202,
    "192.0.2.7, 203.0.113.9": 403,  # the client wrote the allowed address itself
    "203.0.113.9, 192.0.2.7": 202,  # whatever the client wrote, the proxy saw 192.0.2.7
    "192.0.2.7, not-an-ip": 403,
}


@pytest.mark.parametrize(
    ("proxies", "cases"),
    [
        (None, FORWARDED_CASES),  # the default: loopback proxies (the harness's client)
        (
            ["127.0.0.1", "10.0.0.0/8"],
            {"192.0.2.7, 10.1.1.1": 202, "192.0.2.7, 203.0.113.9, 10.1.1.1": 403},
        ),
    ],
)
async def test_forwarded_for_is_read_from_the_right(
    tmp_path: Path, store_url: str, proxies: list[str] | None, cases: dict[str, int]
) -> None:
    intake: dict[str, Any] = {"trust_forwarded_for": True}
    if proxies is not None:
        intake["trusted_proxies"] = proxies
    overrides = {"intake": intake, "sources": {"github": {"allow_ips": ["192.0.2.7"]}}}
    async with running_intake(tmp_path, store_url, **overrides) as h:
        for forwarded, status in cases.items():
            body, headers = h.signed("github", _ping(forwarded), {"x-github-event": "ping"})
            response = await h.post("github", body, {**headers, "x-forwarded-for": forwarded})
            assert response.status_code == status, forwarded


async def test_a_store_that_is_down_is_answered_503_within_a_second(
    tmp_path: Path, store_url: str
) -> None:
    async with running_intake(tmp_path, store_url) as h:
        assert (await _github(h, _ping("up"))).status_code == 202
        with _store_down(store_url):
            for n in range(3):
                started = time.monotonic()
                response = await _github(h, _ping(f"down {n}"))
                took = time.monotonic() - started
                assert response.status_code == 503, response.text
                assert response.headers["retry-after"] == "1"
                assert took < 1.5, took  # 1 s deadline, plus a busy machine's slack
                assert "postgres" not in response.text and "sqlite" not in response.text
            if store_url.startswith("postgresql"):
                started = time.monotonic()
                assert (await h.client.get("/readyz")).status_code == 503
                assert time.monotonic() - started < 1.5
        answers = []
        for n in range(60):
            # A new body each time: one answered 503 may still have committed a moment later,
            # and then the same body again is, rightly, a replay (200, duplicate).
            response = await _github(h, _ping(f"back {n}"))
            if response.status_code == 202:
                break
            answers.append((round(time.monotonic(), 1), response.status_code, response.text))
            await asyncio.sleep(0.5)
        else:
            raise AssertionError(f"intake did not recover: {answers[:3]} … {answers[-3:]}")


@pytest.mark.postgres
def test_after_a_long_outage_postgres_is_used_again_within_seconds(pg_url: str) -> None:
    """The pool backs off between reconnection attempts (1, 2, 4, 8 s …); without a ceiling,
    its next try after an 11 s outage would come about 4 s after the database is back, and
    after an outage of an hour, about an hour later."""
    store = SQLStore.open(pg_url)
    try:
        store.migrate()
        with _store_down(pg_url):
            deadline = time.monotonic() + 11
            while time.monotonic() < deadline:
                with pytest.raises(StoreError):
                    store.ping()
                time.sleep(0.5)
        started = time.monotonic()
        while True:
            try:
                store.ping()
                break
            except StoreError:
                assert time.monotonic() - started < 3, "the store was not used again in 3 s"
                time.sleep(0.1)
    finally:
        store.close()


class _store_down:
    """SQLite: another writer holds the database's lock. PostgreSQL: no connections."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.fd: Any = None

    def __enter__(self) -> None:
        if self.url.startswith("sqlite:///"):
            path = Path(self.url.removeprefix("sqlite:///"))
            self.fd = (path.parent / (path.name + ".lock")).open("a")
            fcntl.flock(self.fd, fcntl.LOCK_EX)
            return
        database = self.url.rsplit("/", 1)[1]
        _psql(f"ALTER DATABASE {database} ALLOW_CONNECTIONS false")
        _psql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname='{database}'")

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            self.fd.close()
            return
        _psql(f"ALTER DATABASE {self.url.rsplit('/', 1)[1]} ALLOW_CONNECTIONS true")


async def test_refusals_quote_no_caller_input(tmp_path: Path, store_url: str) -> None:
    async with running_intake(tmp_path, store_url) as h:
        path = "x" * 5000 + "%1b[31m%3Cscript%3E"
        response = await h.client.post(f"/webhooks/{path}", content=b"{}")
        assert response.status_code == 404
        assert len(response.content) < 300 and "<script>" not in response.text
        body = json.dumps({"id": "1", "type": "T" * 100_000}).encode()
        response, _, _ = await h.deliver("discord", body)
        assert response.status_code == 400
        assert len(response.content) < 300
        form = b"team_id=T1&<script>" + b"x" * 10_000
        response, _, _ = await h.deliver("slack", form)
        assert response.status_code == 400
        assert len(response.content) < 300 and "<script>" not in response.text


@pytest.mark.parametrize(("depth", "status"), [(64, 202), (65, 400), (1000, 400)])
async def test_deep_payloads_are_refused_at_intake(
    tmp_path: Path, store_url: str, depth: int, status: int
) -> None:
    nested = "[" * (depth - 1) + "]" * (depth - 1)
    body = b'{"zen": "deep", "x": %s}' % nested.encode()
    async with running_intake(tmp_path, store_url) as h:
        response = await _github(h, body)
        assert response.status_code == status, response.text
        if status == 400:
            assert response.json()["reason"] == "too_deep"
            assert h.count() == 0


async def test_stale_discord_interactions_are_refused(tmp_path: Path, store_url: str) -> None:
    body = b'{"id": "1", "type": 1}'
    async with running_intake(tmp_path, store_url) as h:
        response, _, _ = await h.deliver("discord", body, now=time.time() - 600)
        assert response.status_code == 401
        assert response.json()["reason"] == "stale_timestamp"
