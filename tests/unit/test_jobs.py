"""Retries, dead letters, replays and ordering, on MemoryStore + MemoryQueue (no real sleeping)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import pytest

from taskyard.config import QueueConfig, RetryConfig
from taskyard.exceptions import PermanentError, TransientError
from taskyard.models import Event, EventStatus, Priority, Task, TaskStatus, new_id
from taskyard.queue.dispatcher import Dispatcher
from taskyard.queue.jobs import ROUTE_JOB, JobContext, JobRuntime
from taskyard.queue.memory import MemoryQueue
from taskyard.queue.replay import replay_dead_letter
from taskyard.store import Dispatch, MemoryStore, NewEvent
from taskyard.store.base import FOREVER

T0 = 1_700_000_000.0
DAY = 24 * 3600.0


@dataclass
class Clock:
    now: float = T0

    def __call__(self) -> float:
        return self.now


@dataclass
class Harness:
    store: MemoryStore
    queue: MemoryQueue
    dispatcher: Dispatcher
    clock: Clock
    delays: list[float]
    calls: list[tuple[str, int]] = field(default_factory=list)  # (event id, attempt)
    outcomes: list[tuple[str, str]] = field(default_factory=list)  # (job, result) reported

    def add_event(self, priority: Priority = Priority.P2) -> str:
        body = new_id().encode()
        e = Event(
            id=new_id(),
            source="github",
            type="github:push",
            delivery_id=None,
            subject=None,
            actor=None,
            received_at=self.clock(),
            priority=priority,
            headers={},
            body=body,
            content_hash=hashlib.sha256(body).hexdigest(),
        )
        (result,) = self.store.insert_events([NewEvent(e, f"k:{e.id}", FOREVER)], self.clock())
        return result.event_id

    async def run_dispatched(self) -> int:
        """Hand every `received` event to the queue and wait until all jobs finished."""
        n = self.dispatcher.dispatch_once()
        await self.queue.drain()
        return n


Behaviour = Callable[[JobContext], Awaitable[None]]


@pytest.fixture
def behaviour() -> list[Behaviour]:
    """The handler's behaviour; a test replaces element 0."""

    async def succeed(ctx: JobContext) -> None:
        pass

    return [succeed]


@pytest.fixture
async def h(behaviour: list[Behaviour]) -> AsyncIterator[Harness]:
    store, clock, delays = MemoryStore(), Clock(), []

    async def fake_sleep(seconds: float) -> None:
        delays.append(seconds)

    async def handler(ctx: JobContext) -> None:
        harness.calls.append((ctx.ref, ctx.attempt))
        await behaviour[0](ctx)

    runtime = JobRuntime(store, {ROUTE_JOB: handler}, RetryConfig(), clock=clock)
    queue = MemoryQueue(runtime, concurrency=1, sleep=fake_sleep)
    dispatcher = Dispatcher(store, queue, QueueConfig(), "worker-1", clock=clock)
    harness = Harness(store, queue, dispatcher, clock, delays)
    runtime.on_outcome.append(lambda job, result: harness.outcomes.append((job, result)))
    await queue.start()
    yield harness
    await queue.stop()


def fail_first(n: int, error: type[Exception] = TransientError) -> Behaviour:
    """Fail the first n calls (across all runs of the job) with `error`, then succeed."""
    calls = 0

    async def run(ctx: JobContext) -> None:
        nonlocal calls
        calls += 1
        if calls <= n:
            raise error(f"failure {calls}")

    return run


async def test_transient_failures_are_retried_until_success(
    h: Harness, behaviour: list[Behaviour]
) -> None:
    behaviour[0] = fail_first(2)
    event_id = h.add_event()
    assert await h.run_dispatched() == 1
    assert h.calls == [(event_id, 1), (event_id, 2), (event_id, 3)]
    assert h.delays == [1.0, 2.0]
    assert h.queue.results == {event_id: "processed"}
    event = h.store.get_event(event_id)
    assert (event.status, event.attempts, event.error) == (EventStatus.PROCESSED, 3, None)
    assert h.outcomes == [(ROUTE_JOB, "processed")]
    assert event.processed_at == T0
    assert h.store.list_dead_letters(None, 10) == []


async def test_permanent_error_goes_to_dead_letters_at_once(
    h: Harness, behaviour: list[Behaviour]
) -> None:
    async def bad_input(ctx: JobContext) -> None:
        raise PermanentError("issue #12 has no repository")

    behaviour[0] = bad_input
    event_id = h.add_event()
    await h.run_dispatched()
    assert h.calls == [(event_id, 1)]
    assert h.delays == []
    (letter,) = h.store.list_dead_letters("open", 10)
    assert (letter.job, letter.ref, letter.attempts) == (ROUTE_JOB, event_id, 1)
    assert letter.error == "PermanentError: issue #12 has no repository"
    event = h.store.get_event(event_id)
    assert (event.status, event.error) == (EventStatus.DEAD, letter.error)
    assert h.outcomes == [(ROUTE_JOB, "dead")]


async def test_exhausted_retries_dead_letter_with_the_last_error(
    h: Harness, behaviour: list[Behaviour]
) -> None:
    behaviour[0] = fail_first(99, RuntimeError)  # an unexpected error counts as transient
    event_id = h.add_event()
    await h.run_dispatched()
    assert [attempt for _, attempt in h.calls] == [1, 2, 3]
    assert h.delays == [1.0, 2.0]
    (letter,) = h.store.list_dead_letters(None, 10)
    assert (letter.attempts, letter.error) == (3, "RuntimeError: failure 3")
    assert h.store.get_event(event_id).status is EventStatus.DEAD
    assert h.queue.results == {event_id: "dead"}


async def test_a_job_without_a_handler_is_dead_lettered(h: Harness) -> None:
    event_id = h.add_event()
    h.queue.enqueue("no-such-job", [Dispatch(event_id, 2, "wf-1")])
    await h.queue.drain()
    (letter,) = h.store.list_dead_letters(None, 10)
    assert (letter.job, letter.attempts) == ("no-such-job", 1)
    assert "no handler registered" in letter.error
    assert h.calls == []


async def test_only_the_first_dead_letter_of_a_job_is_retried_automatically(
    h: Harness, behaviour: list[Behaviour]
) -> None:
    behaviour[0] = fail_first(99, PermanentError)
    event_id = h.add_event()
    await h.run_dispatched()
    (first,) = h.store.list_dead_letters(None, 10)
    assert (first.failed_at, first.auto_retry_at, first.replays) == (T0, T0 + DAY, 0)

    h.clock.now = T0 + DAY
    h.dispatcher.housekeeping()
    await h.run_dispatched()
    second = next(d for d in h.store.list_dead_letters("open", 10) if d.id != first.id)
    assert (second.ref, second.failed_at, second.auto_retry_at, second.replays) == (
        event_id,
        T0 + DAY,
        None,
        1,
    )
    assert h.store.get_dead_letter(first.id).status == "replayed"
    h.clock.now = T0 + 10 * DAY
    h.dispatcher.housekeeping()
    assert await h.run_dispatched() == 0


async def test_replay_dead_letter_requeues_once_under_a_new_workflow_id(
    h: Harness, behaviour: list[Behaviour]
) -> None:
    behaviour[0] = fail_first(1, PermanentError)
    event_id = h.add_event()
    await h.run_dispatched()
    (letter,) = h.store.list_dead_letters(None, 10)

    workflow_id = replay_dead_letter(h.store, letter.id, T0 + 5)
    assert workflow_id is not None
    assert workflow_id not in (event_id, letter.id)
    assert replay_dead_letter(h.store, letter.id, T0 + 6) is None
    assert await h.run_dispatched() == 1
    assert h.calls == [(event_id, 1), (event_id, 1)]
    assert h.queue.results == {event_id: "dead", workflow_id: "processed"}
    assert h.store.get_event(event_id).status is EventStatus.PROCESSED
    assert await h.run_dispatched() == 0


async def test_housekeeping_replays_a_dead_letter_24_hours_later(
    h: Harness, behaviour: list[Behaviour]
) -> None:
    behaviour[0] = fail_first(1, PermanentError)
    event_id = h.add_event()
    await h.run_dispatched()
    (letter,) = h.store.list_dead_letters(None, 10)

    h.clock.now = T0 + DAY - 1
    h.dispatcher.housekeeping()
    assert await h.run_dispatched() == 0
    h.clock.now = T0 + DAY
    h.dispatcher.housekeeping()
    h.dispatcher.housekeeping()  # a second pass finds nothing due: still one replay
    assert await h.run_dispatched() == 1
    assert h.calls == [(event_id, 1), (event_id, 1)]
    assert h.store.get_event(event_id).status is EventStatus.PROCESSED
    replayed = h.store.get_dead_letter(letter.id)
    assert (replayed.status, replayed.replayed_at) == ("replayed", T0 + DAY)


async def test_a_workflow_id_enqueued_twice_runs_once(h: Harness) -> None:
    event_id = h.add_event()
    batch = h.store.events_to_dispatch(10)
    h.queue.enqueue(ROUTE_JOB, batch)  # then "crash" before mark_dispatched
    assert await h.run_dispatched() == 1  # the restarted dispatcher hands it over again
    h.queue.enqueue(ROUTE_JOB, batch)
    await h.queue.drain()
    assert h.calls == [(event_id, 1)]
    assert h.store.get_event(event_id).attempts == 1


async def test_higher_priority_runs_first(h: Harness) -> None:
    await h.queue.stop()  # queue everything before a worker can pick anything up
    ids = {p: h.add_event(p) for p in (Priority.P3, Priority.P1, Priority.P0, Priority.P2)}
    for p, event_id in ids.items():
        h.queue.enqueue(ROUTE_JOB, [Dispatch(event_id, int(p), event_id)])
    await h.queue.start()
    await h.queue.drain()
    assert [ref for ref, _ in h.calls] == [ids[p] for p in sorted(ids)]


def test_retry_delay_grows_and_caps_at_max_seconds() -> None:
    assert [RetryConfig().delay(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]
    assert RetryConfig(base_seconds=0.5, factor=3, max_seconds=5).delay(3) == 4.5


async def test_dispatcher_yields_to_a_burst_but_still_hands_over_work() -> None:
    store = MemoryStore()
    runtime = JobRuntime(store, {ROUTE_JOB: _noop}, RetryConfig())
    queue = MemoryQueue(runtime)
    config = QueueConfig(
        dispatch_batch=2,
        busy_intake_per_second=50,
        busy_dispatch_per_second=10,
        busy_dispatch_interval_sec=0.2,
    )
    dispatcher = Dispatcher(store, queue, config, "worker-1")
    assert not dispatcher.intake_busy()
    dispatcher.notify(10)
    assert not dispatcher.intake_busy()
    dispatcher.notify(40)
    assert dispatcher.intake_busy()
    for n in range(6):
        e = Event(
            new_id(), "github", "github:ping", f"d{n}", None, None, 1.0, Priority.P2, {}, b"{}", "h"
        )
        store.insert_events([NewEvent(e, f"id:d{n}", FOREVER)], 1.0)
    await dispatcher.start()
    try:
        await asyncio.sleep(0.3)
        assert 2 <= len(queue.seen) <= 4  # one batch per interval while busy
        await asyncio.sleep(1.2)  # the burst is over: the rest goes at once
        assert len(queue.seen) == 6
    finally:
        await dispatcher.stop()


async def test_a_wake_from_another_thread_dispatches_tasks_and_is_not_intake() -> None:
    store = MemoryStore()
    queue = MemoryQueue(JobRuntime(store, {ROUTE_JOB: _noop}, RetryConfig()))
    config = QueueConfig(dispatch_poll_sec=30, busy_intake_per_second=1)
    dispatcher = Dispatcher(store, queue, config, "worker-1")
    await dispatcher.start()
    try:
        await asyncio.sleep(0.1)  # the first look finds nothing; the next poll is 30 s away
        task = Task(new_id(), "e1", "r", "a", TaskStatus.QUEUED, Priority.P2, 1.0, 1.0, "wf-1")
        store.record_routing([], [task])
        await asyncio.to_thread(dispatcher.wake)  # as a routing job on another loop does
        await asyncio.sleep(0.2)
        assert queue.seen == {"wf-1"}  # handed over now, not at the next poll
        assert not dispatcher.intake_busy()  # a routing wake is not a delivery
    finally:
        await dispatcher.stop()


async def _noop(ctx: JobContext) -> None:
    return None


def test_dispatcher_keeps_the_queue_at_most_max_in_flight_deep() -> None:
    store = MemoryStore()
    queue = MemoryQueue(JobRuntime(store, {ROUTE_JOB: _noop}, RetryConfig()))
    dispatcher = Dispatcher(store, queue, QueueConfig(max_in_flight=3), "worker-1")
    for n in range(5):
        e = Event(
            new_id(), "github", "github:ping", f"d{n}", None, None, 1.0, Priority.P2, {}, b"{}", "h"
        )
        store.insert_events([NewEvent(e, f"id:d{n}", FOREVER)], 1.0)
    assert dispatcher.dispatch_once() == 3
    assert dispatcher.dispatch_once() == 0  # full: the other two wait in the events table
    first = sorted(queue.seen)[0]
    store.finish_event(first, EventStatus.PROCESSED, None, 2.0)
    assert dispatcher.dispatch_once() == 1
    assert store.count_in_flight() == 3


def test_a_task_another_process_started_first_is_not_counted_against_this_ones_room() -> None:
    """Two processes on one database hand over the same task at once: it runs where its
    workflow started first; the other releases its claim, so its room is not taken by a task
    it does not run (it once sat out 30 s with nothing to do)."""
    store = MemoryStore()
    queue = MemoryQueue(JobRuntime(store, {ROUTE_JOB: _noop}, RetryConfig()))
    queue.seen.add("wf-1")  # as if the other process had started it
    claims: dict[str, int] = {}

    def claim(ids: Sequence[str]) -> None:
        claims.update(dict.fromkeys(ids, 1))

    def release(ids: Sequence[str]) -> None:
        for task_id in ids:
            claims.pop(task_id)

    dispatcher = Dispatcher(
        store, queue, QueueConfig(), "worker-1", task_room=lambda: 2 - len(claims),
        claim=claim, release=release,
    )  # fmt: skip
    tasks = [
        Task(f"t{n}", "e1", f"r{n}", "a", TaskStatus.QUEUED, Priority.P2, 1.0, 1.0, f"wf-{n}")
        for n in (1, 2)
    ]
    store.record_routing([], tasks)
    assert dispatcher.dispatch_tasks() == 2
    assert claims == {"t2": 1}  # t1 runs in the other process
