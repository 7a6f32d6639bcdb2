"""Ideas' events out (`taskyard.ideas.events`), against the real nats-server with JetStream on
127.0.0.1:4222 (scripts/test starts it), on MemoryStore, SQLite and PostgreSQL: each idea's
events reach the stream in order, once each, even when a relay dies between publishing and
marking; an idea whose event is refused holds back only its own later events.

Each test has a stream of its own, deleted after it. Streams may not share subjects, so the
tests take a file lock (one run of this file at a time on a machine) and remove test streams
an earlier, killed run left."""

from __future__ import annotations

import asyncio
import fcntl
import logging
import secrets
import socket
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any, cast

import nats
import orjson
import pytest
from nats.js import JetStreamContext

from taskyard.config import Settings
from taskyard.config.events import EventsConfig
from taskyard.idea import EXECUTION, PLAN, REVIEW, Idea, IdeaEvent, IdeaStatus, IdeaStep
from taskyard.ideas.events import (
    MSG_ID,
    STREAM_SUBJECTS,
    NatsPublisher,
    OutboxRelay,
    relay_from_settings,
)
from taskyard.service.server import running
from taskyard.store import MemoryStore, Store

NATS_URL = "nats://127.0.0.1:4222"
SERVER = "127.0.0.1:4222"
TEST_PREFIX = "TY_TEST_"
LOCK = "/tmp/taskyard-nats-tests.lock"
T0 = 1_700_000_000.0


def _nats_reachable() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 4222), timeout=1).close()
    except OSError:
        return False
    return True


@pytest.fixture
async def stream() -> AsyncIterator[str]:
    """A fresh stream name on the server (the publisher makes the stream); deleted after."""
    if not _nats_reachable():
        pytest.skip(f"nats-server not reachable at {SERVER} (scripts/test starts it)")
    with open(LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        client = await nats.connect(NATS_URL)
        js = client.jetstream()
        try:
            await _clear_the_subjects(js)
            name = f"{TEST_PREFIX}{secrets.token_hex(4).upper()}"
            yield name
            await js.delete_stream(name)
        finally:
            await client.close()


async def _clear_the_subjects(js: JetStreamContext) -> None:
    for info in await js.streams_info():
        if STREAM_SUBJECTS not in (info.config.subjects or []):
            continue
        if not (info.config.name or "").startswith(TEST_PREFIX):
            pytest.fail(
                f"stream {info.config.name} on {SERVER} already takes {STREAM_SUBJECTS}: "
                "these tests need the subjects; delete it (nats stream rm) to run them"
            )
        await js.delete_stream(info.config.name or "")  # a killed run's


async def read_stream(name: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(subject, Nats-Msg-Id, message) of every message the stream holds, in stream order,
    through a JetStream consumer."""
    client = await nats.connect(NATS_URL)
    try:
        js = client.jetstream()
        count = (await js.stream_info(name)).state.messages
        if count == 0:
            return []
        sub = await js.pull_subscribe(STREAM_SUBJECTS, stream=name)
        got: list[Any] = []
        while len(got) < count:
            got += await sub.fetch(count - len(got), timeout=5)
        await sub.unsubscribe()
        return [(m.subject, (m.headers or {})[MSG_ID], orjson.loads(m.data)) for m in got]
    finally:
        await client.close()


def an_idea(store: Store, idea_id: str) -> Idea:
    idea = Idea(idea_id, IdeaStatus.REGISTERED, {"goal": f"goal of {idea_id}"},
                {"platform": "cli"}, f"e-{idea_id}", T0, T0)  # fmt: skip
    return store.create_idea(idea, {"goal": idea.goal})


def walk(store: Store, idea_id: str) -> None:
    """registered → planning → plan_ready → running, and a task started: 5 events."""
    an_idea(store, idea_id)
    store.idea_transition(idea_id, IdeaStep.PLAN, "planning", {}, T0 + 1)
    store.idea_transition(idea_id, IdeaStep.PLAN_READY, "plan_ready", {"tasks": 4}, T0 + 2)
    store.idea_transition(idea_id, IdeaStep.RUN, "running", {}, T0 + 3)
    store.note_idea(idea_id, EXECUTION, "task_started", {"key": "A"}, T0 + 4)


def relay_to(store: Store, stream: str, batch: int = 200) -> OutboxRelay:
    return OutboxRelay(store, NatsPublisher(NATS_URL, stream, SERVER), batch=batch)


def ids_of(held: Iterable[tuple[str, str, dict[str, Any]]], idea_id: str) -> list[str]:
    return [msg_id for _, msg_id, m in held if m["idea_id"] == idea_id]


async def test_two_ideas_events_reach_the_stream_in_order_once_each(
    store: Store, stream: str
) -> None:
    walk(store, "i1")
    walk(store, "i2")
    relay = relay_to(store, stream, batch=3)  # several passes: an idea spans two batches
    try:
        sent = [await relay.relay() for _ in range(5)]
    finally:
        await relay.stop()
    assert sent == [3, 3, 3, 1, 0]
    assert store.unpublished_idea_events() == []
    assert all(e.published_at is not None for e in store.idea_events("i1"))
    held = await read_stream(stream)
    assert ids_of(held, "i1") == [f"i1-{n}" for n in range(1, 6)]
    assert ids_of(held, "i2") == [f"i2-{n}" for n in range(1, 6)]
    events = {e.msg_id: e for i in ("i1", "i2") for e in store.idea_events(i)}
    for subject, msg_id, body in held:
        event = events[msg_id]
        assert subject == event.subject == body["subject"]
        assert body == {"idea_id": event.idea_id, "seq": event.seq, "kind": event.kind,
                        "data": event.data, "at": event.at, "subject": event.subject}  # fmt: skip
    assert [s for s, _, m in held if m["idea_id"] == "i1"][:3] == [
        "taskyard.intent", "taskyard.plan", "taskyard.plan"
    ]  # fmt: skip


class KilledBeforeMark:
    """The store, as a relay sees it, in a process killed between publishing and marking."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def unpublished_idea_events(self, limit: int = 500) -> list[IdeaEvent]:
        return self.store.unpublished_idea_events(limit)

    def mark_idea_events_published(self, keys: object, now: float) -> None:
        raise RuntimeError("killed before marking")


async def test_a_relay_killed_before_marking_resends_and_the_stream_keeps_one_copy(
    store: Store, stream: str
) -> None:
    walk(store, "i1")
    walk(store, "i2")
    killed = relay_to(cast(Store, KilledBeforeMark(store)), stream)
    try:
        with pytest.raises(RuntimeError, match="killed"):
            await killed.relay()
    finally:
        await killed.stop()
    assert len(await read_stream(stream)) == 10  # on the stream, but not marked
    assert len(store.unpublished_idea_events()) == 10
    store.idea_transition("i1", IdeaStep.REVIEW, "review", {}, T0 + 5)  # the idea went on

    restarted = relay_to(store, stream)
    try:
        assert await restarted.relay() == 11  # all sent again: the stream drops the copies
    finally:
        await restarted.stop()
    assert store.unpublished_idea_events() == []
    held = await read_stream(stream)
    assert len(held) == 11
    assert ids_of(held, "i1") == [f"i1-{n}" for n in range(1, 7)]
    assert ids_of(held, "i2") == [f"i2-{n}" for n in range(1, 6)]
    assert held[-1][0] == REVIEW


async def test_an_idea_whose_event_is_refused_holds_back_only_its_own_later_events(
    store: Store, stream: str
) -> None:
    an_idea(store, "i1")
    store.note_idea("i1", PLAN, "plan_written", {"plan": "x" * 1_200_000}, T0 + 1)  # > 1 MB
    store.note_idea("i1", EXECUTION, "task_started", {"key": "A"}, T0 + 2)
    walk(store, "i2")
    relay = relay_to(store, stream)
    try:
        assert await relay.relay() == 6  # i1-1, then i2's five
        assert await relay.relay() == 0  # i1-2 is refused again; i1-3 waits behind it
    finally:
        await relay.stop()
    held = await read_stream(stream)
    assert ids_of(held, "i1") == ["i1-1"]
    assert ids_of(held, "i2") == [f"i2-{n}" for n in range(1, 6)]
    assert [e.msg_id for e in store.unpublished_idea_events()] == ["i1-2", "i1-3"]


async def test_the_running_relay_publishes_when_woken(stream: str) -> None:
    store = MemoryStore()
    an_idea(store, "i1")
    relay = OutboxRelay(store, NatsPublisher(NATS_URL, stream, SERVER), interval=3600)
    await relay.start()
    try:
        await _until(lambda: not store.unpublished_idea_events())  # the first pass
        store.note_idea("i1", EXECUTION, "task_started", {"key": "A"}, T0 + 1)
        relay.wake()  # else the next pass is an hour away
        await _until(lambda: not store.unpublished_idea_events())
    finally:
        await relay.stop()
    assert ids_of(await read_stream(stream), "i1") == ["i1-1", "i1-2"]


async def test_events_wait_in_the_outbox_while_nats_is_out_of_reach() -> None:
    store = MemoryStore()
    an_idea(store, "i1")
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    relay = OutboxRelay(store, NatsPublisher(f"nats://127.0.0.1:{port}", "X", "x"))
    try:
        assert await relay.relay() == 0
    finally:
        await relay.stop()
    assert [e.msg_id for e in store.unpublished_idea_events()] == ["i1-1"]


async def test_a_configured_service_publishes_ideas_events_and_says_so(
    stream: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(
        home=tmp_path, events={"nats_url": NATS_URL, "stream": stream, "interval_ms": 50}
    )
    caplog.set_level(logging.INFO, logger="taskyard.service.server")
    async with running(settings, "worker", intake=False) as services:
        walk(services.store, "i1")  # the idea's scheduler may take it further: more events
        await _until(lambda: not services.store.unpublished_idea_events(), seconds=20)
        logged = [e.msg_id for e in services.store.idea_events("i1")]
    said = [r for r in caplog.records if r.getMessage() == "taskyard running"]
    assert said and said[0].idea_events == f"published to NATS at {SERVER}, stream {stream}"
    held = ids_of(await read_stream(stream), "i1")
    assert len(logged) >= 5 and held[: len(logged)] == logged
    assert held == [f"i1-{n}" for n in range(1, len(held) + 1)]  # in order, once each


def test_events_are_off_unless_a_nats_url_is_set() -> None:
    store = MemoryStore()
    assert Settings().events.nats_url is None
    assert relay_from_settings(Settings().events, store) is None
    config = EventsConfig(nats_url="nats://s3cret-token@nats.internal:4222", stream="EV")
    relay = relay_from_settings(config, store)
    assert relay is not None and isinstance(relay.publisher, NatsPublisher)
    assert (relay.publisher.stream, relay.publisher.server) == ("EV", "nats.internal:4222")
    settings = Settings(events={"nats_url": "nats://u:pw-123@h:4222"})
    assert "pw-123" in settings.secrets()
    assert "s3cret-token" in Settings(events=config).secrets()


async def _until(done: Any, seconds: float = 10.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if done():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("not done in time")
