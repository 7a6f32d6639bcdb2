"""The DBOS-backed queue on SQLite and PostgreSQL: retries, dead letters, one run per workflow id.

DBOS is one instance per process: each test launches it and destroys it on the way out, so the
tests run one after another in the same process. The tests of one backend share its databases
(each test's events are its own), so every launch after the first is a restart of taskyard on
an existing system database, and DBOS's schema is built once per backend.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest

from taskyard.config import RetryConfig
from taskyard.exceptions import PermanentError, StoreUnavailable, TransientError
from taskyard.models import Event, EventStatus, Priority, new_id
from taskyard.queue.durable import DurableQueue, system_database_url
from taskyard.queue.jobs import ROUTE_JOB, JobContext, JobRuntime
from taskyard.store import Dispatch, NewEvent, SQLStore
from taskyard.store.base import FOREVER

FINAL = (EventStatus.PROCESSED, EventStatus.DEAD)
POLL = 0.05


@dataclass
class Handler:
    """Fails the first `failures` calls with `error`, then succeeds; records every call."""

    failures: int = 0
    error: type[Exception] = TransientError
    calls: list[tuple[str, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def __call__(self, ctx: JobContext) -> None:
        with self.lock:
            self.calls.append((ctx.ref, ctx.attempt))
            n = len(self.calls)
        if n <= self.failures:
            raise self.error(f"failure {n}")


@dataclass
class Running:
    store: FlakyStore
    queue: DurableQueue
    handler: Handler

    def add_event(self) -> str:
        body = new_id().encode()
        e = Event(
            id=new_id(),
            source="github",
            type="github:push",
            delivery_id=None,
            subject=None,
            actor=None,
            received_at=time.time(),
            priority=Priority.P2,
            headers={},
            body=body,
            content_hash=hashlib.sha256(body).hexdigest(),
        )
        self.store.insert_events([NewEvent(e, f"k:{e.id}", FOREVER)], time.time())
        return e.id

    async def finished(self, event_id: str, timeout: float = 10.0) -> Event:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            event = await asyncio.to_thread(self.store.get_event, event_id)
            if event.status in FINAL:
                return event
            await asyncio.sleep(POLL)
        raise AssertionError(f"event {event_id} still {event.status} after {timeout} s")


class FlakyStore(SQLStore):
    """The store, except that the first `outages` calls of start_event find the database down."""

    outages = 0

    def start_event(self, event_id: str) -> None:
        if self.outages > 0:
            self.outages -= 1
            raise StoreUnavailable("postgresql unavailable: connection refused")
        super().start_event(event_id)


@pytest.fixture
def handler() -> Handler:
    return Handler()


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def databases(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[FlakyStore, str]]:
    """The backend's store (migrated) and DBOS's system database URL."""
    folder = tmp_path_factory.mktemp("durable")
    if request.param == "sqlite":
        url = f"sqlite:///{folder / 't.db'}"
    else:
        url = request.getfixturevalue("pg_databases").create()
    store = FlakyStore.open(url)
    store.migrate()
    yield store, system_database_url(url, str(folder / "queue.db"))
    store.close()
    if request.param == "postgres":
        request.getfixturevalue("pg_databases").drop(url)


@pytest.fixture
async def running(databases: tuple[FlakyStore, str], handler: Handler) -> AsyncIterator[Running]:
    store, system_url = databases
    runtime = JobRuntime(
        store, {ROUTE_JOB: handler}, RetryConfig(base_seconds=0.05, max_seconds=0.2, attempts=3)
    )
    queue = DurableQueue(
        runtime,
        system_url,
        executor_id=f"test-{secrets.token_hex(4)}",
        concurrency=4,
        polling_interval_sec=POLL,
    )
    await queue.start()
    try:
        yield Running(store, queue, handler)
    finally:
        await queue.stop()


async def test_transient_failures_are_retried_until_success(
    running: Running, handler: Handler
) -> None:
    handler.failures = 2
    event_id = running.add_event()
    running.queue.enqueue(ROUTE_JOB, [Dispatch(event_id, 2, event_id)])
    event = await running.finished(event_id)
    assert (event.status, event.attempts, event.error) == (EventStatus.PROCESSED, 3, None)
    assert handler.calls == [(event_id, 1), (event_id, 2), (event_id, 3)]
    assert running.store.replays_of(ROUTE_JOB, event_id) == 0


async def test_permanent_error_goes_to_dead_letters(running: Running, handler: Handler) -> None:
    handler.failures, handler.error = 1, PermanentError
    event_id = running.add_event()
    running.queue.enqueue(ROUTE_JOB, [Dispatch(event_id, 2, event_id)])
    event = await running.finished(event_id)
    assert event.status is EventStatus.DEAD
    assert handler.calls == [(event_id, 1)]
    (letter,) = [d for d in running.store.list_dead_letters("open", 100) if d.ref == event_id]
    assert (letter.ref, letter.attempts, letter.error) == (event_id, 1, "PermanentError: failure 1")


async def test_the_same_workflow_id_runs_once(running: Running, handler: Handler) -> None:
    event_id = running.add_event()
    dispatch = Dispatch(event_id, 2, event_id)
    running.queue.enqueue(ROUTE_JOB, [dispatch])
    running.queue.enqueue(ROUTE_JOB, [dispatch])
    assert (await running.finished(event_id)).status is EventStatus.PROCESSED
    running.queue.enqueue(ROUTE_JOB, [dispatch])  # again, after it finished
    await asyncio.sleep(POLL * 6)
    assert handler.calls == [(event_id, 1)]
    assert running.store.get_event(event_id).attempts == 1


async def test_a_store_outage_during_an_attempt_does_not_lose_the_job(
    running: Running, handler: Handler
) -> None:
    event_id = running.add_event()
    running.store.outages = 1
    running.queue.enqueue(ROUTE_JOB, [Dispatch(event_id, 2, event_id)])
    event = await running.finished(event_id)
    assert (event.status, event.attempts) == (EventStatus.PROCESSED, 1)
    assert handler.calls == [(event_id, 1)]


async def test_the_sqlite_system_database_keeps_a_write_ahead_log(
    running: Running, databases: tuple[FlakyStore, str]
) -> None:
    """DBOS's SQLite file is switched to WAL (its rollback journal made every commit of a
    job write and sync a journal file too)."""
    _, system_url = databases
    if not system_url.startswith("sqlite:///"):
        pytest.skip("PostgreSQL keeps its own log")
    conn = sqlite3.connect(system_url.removeprefix("sqlite:///"))
    try:
        (mode,) = conn.execute("PRAGMA journal_mode").fetchone()
    finally:
        conn.close()
    assert mode == "wal"


async def test_a_task_run_stopped_by_the_store_is_run_again(running: Running) -> None:
    """The task workflow has no DBOS step: a run that the store stops is retried by the
    workflow itself, after the first wait of the steps' retries (1 s)."""
    calls: list[str] = []
    done = asyncio.Event()
    loop = asyncio.get_running_loop()

    async def run_task(task_id: str) -> str:
        calls.append(task_id)
        if len(calls) == 1:
            raise StoreUnavailable("postgresql unavailable: connection refused")
        loop.call_soon_threadsafe(done.set)
        return "succeeded"

    running.queue.runtime.run_task = run_task
    task_id = new_id()
    task = SimpleNamespace(id=task_id, workflow_id=f"task-{task_id}")
    await asyncio.to_thread(running.queue.enqueue_tasks, [task])  # type: ignore[list-item]
    await asyncio.wait_for(done.wait(), 10)
    assert calls == [task_id, task_id]
