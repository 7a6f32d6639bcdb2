"""The Store contract: MemoryStore, SQLStore on SQLite and SQLStore on PostgreSQL agree."""

from __future__ import annotations

import fcntl
import hashlib
import itertools
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from taskyard.exceptions import NotFound, StoreUnavailable
from taskyard.models import DeadLetter, DeadLetterStatus, Event, EventStatus, Priority
from taskyard.store import Dispatch, EventFilter, MemoryStore, NewEvent, SQLStore, Store
from taskyard.store.backends import SqliteBackend
from taskyard.store.base import FOREVER

T0 = 1_700_000_000.0
_ids = itertools.count(1)


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "memory":
        yield MemoryStore()
        return
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 't.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    sql = SQLStore.open(url)
    sql.migrate()
    yield sql
    sql.close()


def event(
    *,
    source: str = "github",
    type: str = "github:issues.opened",
    received_at: float = T0,
    priority: Priority = Priority.P2,
    body: bytes = b'{"action":"opened"}',
    headers: dict[str, str] | None = None,
) -> Event:
    n = next(_ids)
    return Event(
        id=f"{n:032x}",
        source=source,
        type=type,
        delivery_id=f"d-{n}",
        subject=f"acme/repo#{n}",
        actor="octocat",
        received_at=received_at,
        priority=priority,
        headers=headers if headers is not None else {"x-github-event": "issues"},
        body=body,
        content_hash=hashlib.sha256(body).hexdigest(),
    )


def keyed(e: Event, key: str | None = None, expires_at: float = FOREVER) -> NewEvent:
    return NewEvent(e, key or f"delivery:{e.delivery_id}", expires_at)


def insert(store: Store, *events: Event, now: float = T0) -> list[str]:
    results = store.insert_events([keyed(e) for e in events], now)
    assert not any(r.duplicate for r in results)
    return [r.event_id for r in results]


def letter(ref: str, *, failed_at: float = T0, auto_retry_at: float | None = None) -> DeadLetter:
    return DeadLetter(
        id=f"dl{next(_ids):030x}",
        job="route",
        ref=ref,
        error="TransientError: boom",
        attempts=3,
        failed_at=failed_at,
        status=DeadLetterStatus.OPEN,
        auto_retry_at=auto_retry_at,
    )


def race(n: int, call: Callable[[], Any]) -> list[Any]:
    """Run `call` in n threads released at the same moment; return their results."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        results[i] = call()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


# --- insert and deduplication -------------------------------------------------------------


def test_same_delivery_twice_in_one_batch_is_stored_once(store: Store) -> None:
    first, second = event(), event()
    results = store.insert_events([keyed(first, "delivery:1"), keyed(second, "delivery:1")], T0)
    assert [(r.event_id, r.duplicate) for r in results] == [(first.id, False), (first.id, True)]
    with pytest.raises(NotFound):
        store.get_event(second.id)
    assert store.count_events() == {"received": 1}


def test_same_delivery_in_a_later_batch_is_a_duplicate_of_the_first(store: Store) -> None:
    first, again, other = event(), event(), event()
    store.insert_events([keyed(first, "delivery:1")], T0)
    results = store.insert_events(
        [keyed(other, "delivery:2"), keyed(again, "delivery:1")], T0 + 3600
    )
    assert [(r.event_id, r.duplicate) for r in results] == [(other.id, False), (first.id, True)]
    assert {e.id for e in store.list_events(EventFilter())} == {first.id, other.id}


def test_the_same_key_from_another_source_is_not_a_duplicate(store: Store) -> None:
    a, b = event(source="github"), event(source="linear")
    results = store.insert_events([keyed(a, "k"), keyed(b, "k")], T0)
    assert [r.duplicate for r in results] == [False, False]


def test_content_hash_key_deduplicates_within_its_window_only(store: Store) -> None:
    window = 300.0
    events = [event() for _ in range(4)]

    def put(e: Event, now: float) -> tuple[str, bool]:
        (r,) = store.insert_events([keyed(e, "sha256:abc", now + window)], now)
        return r.event_id, r.duplicate

    assert put(events[0], T0) == (events[0].id, False)
    assert put(events[1], T0 + window - 1) == (events[0].id, True)
    # at expiry the key is free again, and the newcomer owns it from then on
    assert put(events[2], T0 + window) == (events[2].id, False)
    assert put(events[3], T0 + window + 1) == (events[2].id, True)
    assert store.count_events() == {"received": 2}


def test_concurrent_inserts_of_one_delivery_store_it_once(store: Store) -> None:
    events = [event() for _ in range(4)]
    calls = iter(events)
    lock = threading.Lock()

    def put() -> tuple[str, bool]:
        with lock:
            e = next(calls)
        (r,) = store.insert_events([keyed(e, "delivery:race")], T0)
        return r.event_id, r.duplicate

    results = race(len(events), put)
    owners = {owner for owner, _ in results}
    assert len(owners) == 1
    assert sorted(dup for _, dup in results) == [False, True, True, True]
    assert store.count_events() == {"received": 1}


def test_delete_expired_dedup_frees_only_expired_keys(store: Store) -> None:
    a, b, c, d = event(), event(), event(), event()
    store.insert_events([keyed(a, "k1", T0 + 10), keyed(b, "k2", T0 + 20), keyed(c, "k3")], T0)
    assert store.delete_expired_dedup(T0 + 15) == 1
    assert store.delete_expired_dedup(T0 + 20) == 1  # expiry is inclusive
    assert store.delete_expired_dedup(T0 + 10**9) == 0  # delivery ids stay for good
    (r,) = store.insert_events([keyed(d, "k3")], T0 + 10**9)
    assert (r.event_id, r.duplicate) == (c.id, True)


# --- bodies and reads ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [b"", bytes(range(256)), b"\xff\xfe\x00not utf-8\x80\r\n", os.urandom(1024 * 1024)],
    ids=["empty", "all-bytes", "not-utf8", "1mb"],
)
def test_event_round_trips_byte_exact(store: Store, body: bytes) -> None:
    e = event(body=body, headers={"content-type": "application/json", "x-ünïcode": "✓ 值"})
    insert(store, e)
    got = store.get_event(e.id)
    assert got.body == body
    assert got == e


def test_unknown_ids_raise_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        store.get_event("0" * 32)
    with pytest.raises(NotFound):
        store.requeue_event("0" * 32, "wf")
    with pytest.raises(NotFound):
        store.get_dead_letter("0" * 32)
    assert store.mark_dead_letter_replayed("0" * 32, T0) is False


def test_list_events_filters_and_sorts_newest_first(store: Store) -> None:
    gh1 = event(source="github", type="github:push", received_at=T0 + 1)
    gh2 = event(source="github", type="github:issues.opened", received_at=T0 + 3)
    lin = event(source="linear", type="linear:Issue.create", received_at=T0 + 2)
    insert(store, gh1, gh2, lin)
    store.start_event(gh1.id)

    def ids(**kw: Any) -> list[str]:
        return [e.id for e in store.list_events(EventFilter(**kw))]

    assert ids() == [gh2.id, lin.id, gh1.id]
    assert ids(limit=2) == [gh2.id, lin.id]
    assert ids(source="github") == [gh2.id, gh1.id]
    assert ids(type="linear:Issue.create") == [lin.id]
    assert ids(status=EventStatus.PROCESSING) == [gh1.id]
    assert ids(status=EventStatus.RECEIVED, source="github") == [gh2.id]
    assert ids(source="slack") == []


# --- dispatch and the event state machine -------------------------------------------------


def test_events_to_dispatch_by_priority_then_age(store: Store) -> None:
    late_p0 = event(priority=Priority.P0, received_at=T0 + 5)
    old_p2 = event(priority=Priority.P2, received_at=T0)
    new_p2 = event(priority=Priority.P2, received_at=T0 + 1)
    insert(store, new_p2, old_p2, late_p0)
    assert store.events_to_dispatch(10) == [
        Dispatch(late_p0.id, 0, late_p0.id),
        Dispatch(old_p2.id, 2, old_p2.id),
        Dispatch(new_p2.id, 2, new_p2.id),
    ]
    assert [d.event_id for d in store.events_to_dispatch(2)] == [late_p0.id, old_p2.id]


def test_mark_dispatched_moves_only_received_rows_with_that_dispatch_key(store: Store) -> None:
    a, b = event(), event()
    insert(store, a, b)
    store.mark_dispatched([Dispatch(a.id, 2, "some-other-workflow"), Dispatch(b.id, 2, b.id)])
    assert store.get_event(a.id).status is EventStatus.RECEIVED
    assert store.get_event(b.id).status is EventStatus.QUEUED
    assert [d.event_id for d in store.events_to_dispatch(10)] == [a.id]

    store.start_event(a.id)  # a is running: a late mark must not move it back
    store.mark_dispatched([Dispatch(a.id, 2, a.id)])
    assert store.get_event(a.id).status is EventStatus.PROCESSING


def test_requeue_gives_the_event_a_new_dispatch_key(store: Store) -> None:
    e = event()
    insert(store, e)
    store.mark_dispatched(store.events_to_dispatch(10))
    store.start_event(e.id)
    store.finish_event(e.id, EventStatus.DEAD, "boom", T0 + 1)

    store.requeue_event(e.id, f"{e.id}:replay:1")
    got = store.get_event(e.id)
    assert (got.status, got.error) == (EventStatus.RECEIVED, None)
    assert store.events_to_dispatch(10) == [Dispatch(e.id, 2, f"{e.id}:replay:1")]
    store.mark_dispatched([Dispatch(e.id, 2, e.id)])  # the old workflow id: nothing moves
    assert store.get_event(e.id).status is EventStatus.RECEIVED
    store.mark_dispatched([Dispatch(e.id, 2, f"{e.id}:replay:1")])
    assert store.get_event(e.id).status is EventStatus.QUEUED


def test_start_and_finish_track_attempts_errors_and_time(store: Store) -> None:
    e = event()
    insert(store, e)
    store.start_event(e.id)
    got = store.get_event(e.id)
    assert (got.status, got.attempts, got.error, got.processed_at) == (
        EventStatus.PROCESSING,
        1,
        None,
        None,
    )
    store.finish_event(e.id, EventStatus.DEAD, "TransientError: boom", T0 + 7.25)
    got = store.get_event(e.id)
    assert (got.status, got.attempts, got.error, got.processed_at) == (
        EventStatus.DEAD,
        1,
        "TransientError: boom",
        T0 + 7.25,
    )
    store.start_event(e.id)
    got = store.get_event(e.id)
    assert (got.status, got.attempts, got.error) == (EventStatus.PROCESSING, 2, None)
    store.finish_event(e.id, EventStatus.PROCESSED, None, T0 + 9)
    assert replace(store.get_event(e.id), processed_at=None) == replace(
        e, status=EventStatus.PROCESSED, attempts=2
    )


def test_count_events_by_status(store: Store) -> None:
    assert store.count_events() == {}
    a, b, c = event(), event(), event()
    insert(store, a, b, c)
    store.mark_dispatched([Dispatch(b.id, 2, b.id), Dispatch(c.id, 2, c.id)])
    store.start_event(c.id)
    assert store.count_events() == {"received": 1, "queued": 1, "processing": 1}
    assert store.count_in_flight() == 2
    store.finish_event(c.id, EventStatus.PROCESSED, None, T0 + 1)
    assert store.count_in_flight() == 1


# --- dead letters -------------------------------------------------------------------------


def test_dead_letter_round_trip_and_listing(store: Store) -> None:
    older = letter("e1", failed_at=T0, auto_retry_at=T0 + 86400)
    newer = letter("e2", failed_at=T0 + 1)
    store.add_dead_letter(older)
    store.add_dead_letter(newer)
    assert store.get_dead_letter(older.id) == older
    assert store.list_dead_letters(None, 10) == [newer, older]
    assert store.list_dead_letters("open", 1) == [newer]
    assert store.list_dead_letters("replayed", 10) == []


def test_replaying_a_dead_letter_requeues_its_event_in_the_same_step(store: Store) -> None:
    e = event()
    insert(store, e)
    store.mark_dispatched(store.events_to_dispatch(10))
    store.finish_event(e.id, EventStatus.DEAD, "boom", T0 + 1)
    dl = letter(e.id)
    store.add_dead_letter(dl)
    assert store.mark_dead_letter_replayed(dl.id, T0 + 5, requeue_as="w2") is True
    assert store.events_to_dispatch(10) == [Dispatch(e.id, 2, "w2")]
    assert store.mark_dead_letter_replayed(dl.id, T0 + 6, requeue_as="w3") is False
    assert store.events_to_dispatch(10) == [Dispatch(e.id, 2, "w2")]


def test_dead_letter_is_replayed_once(store: Store) -> None:
    dl = letter("e1")
    store.add_dead_letter(dl)
    assert store.mark_dead_letter_replayed(dl.id, T0 + 5) is True
    assert store.mark_dead_letter_replayed(dl.id, T0 + 6) is False
    got = store.get_dead_letter(dl.id)
    assert (got.status, got.replayed_at) == (DeadLetterStatus.REPLAYED, T0 + 5)
    assert store.list_dead_letters("replayed", 10) == [got]
    assert store.list_dead_letters("open", 10) == []


def test_concurrent_replays_of_a_dead_letter_have_one_winner(store: Store) -> None:
    dl = letter("e1")
    store.add_dead_letter(dl)
    assert sorted(race(6, lambda: store.mark_dead_letter_replayed(dl.id, T0))) == [
        False,
        False,
        False,
        False,
        False,
        True,
    ]


def test_replays_of_counts_every_dead_letter_of_a_job(store: Store) -> None:
    assert store.replays_of("route", "e1") == 0
    first = letter("e1")
    store.add_dead_letter(first)
    store.mark_dead_letter_replayed(first.id, T0)
    store.add_dead_letter(letter("e1"))
    store.add_dead_letter(letter("e2"))
    assert store.replays_of("route", "e1") == 2
    assert store.replays_of("other-job", "e1") == 0


def test_due_dead_letters_are_open_and_past_their_retry_time(store: Store) -> None:
    due_old = letter("e1", failed_at=T0, auto_retry_at=T0 + 100)
    due_new = letter("e2", failed_at=T0 + 1, auto_retry_at=T0 + 50)
    later = letter("e3", auto_retry_at=T0 + 1000)
    never = letter("e4")
    replayed = letter("e5", auto_retry_at=T0 + 10)
    for dl in (due_new, later, never, due_old, replayed):
        store.add_dead_letter(dl)
    store.mark_dead_letter_replayed(replayed.id, T0)
    assert [d.id for d in store.due_dead_letters(T0 + 100, 10)] == [due_old.id, due_new.id]
    assert [d.id for d in store.due_dead_letters(T0 + 100, 1)] == [due_old.id]
    assert store.due_dead_letters(T0 + 49, 10) == []


# --- workers ------------------------------------------------------------------------------


def test_claim_stale_workers_skips_live_claimed_and_self(store: Store) -> None:
    for w in ("a", "b", "me"):
        store.register_worker(w, "worker", "host", 100, T0)
    store.heartbeat("b", T0 + 1000)
    assert store.claim_stale_workers("me", cutoff=T0 + 30) == ["a"]
    assert store.claim_stale_workers("other", cutoff=T0 + 30) == ["me"]
    assert store.claim_stale_workers("other2", cutoff=T0 + 30) == []
    # a worker that restarts registers again and can be recovered again later
    store.register_worker("a", "worker", "host", 101, T0 + 100)
    assert store.claim_stale_workers("me", cutoff=T0 + 90) == []
    assert store.claim_stale_workers("me", cutoff=T0 + 200) == ["a"]


def test_two_callers_claim_a_stale_worker_once(store: Store) -> None:
    for round_ in range(5):
        store.register_worker(f"dead-{round_}", "worker", "host", 1, T0)
        results = race(2, lambda: store.claim_stale_workers(f"me-{threading.get_ident()}", T0 + 1))
        assert sorted(results, key=len) == [[], [f"dead-{round_}"]]


def test_sqlite_failed_commit_releases_the_transaction(tmp_path: Path) -> None:
    """A COMMIT that fails must not leave the connection inside a transaction (holding the lock)."""
    store = SQLStore.open(f"sqlite:///{tmp_path / 't.db'}")
    store.migrate()
    backend = store.backend
    assert isinstance(backend, SqliteBackend)
    with backend.transaction() as tx:  # a deferred constraint is checked only at COMMIT
        tx.execute("CREATE TABLE p (id INTEGER PRIMARY KEY)")
        tx.execute("CREATE TABLE c (p INTEGER REFERENCES p (id) DEFERRABLE INITIALLY DEFERRED)")
    backend._connection().execute("PRAGMA foreign_keys=ON")
    with pytest.raises(StoreUnavailable, match="commit failed"), backend.transaction() as tx:
        tx.execute("INSERT INTO c VALUES (99)")
    e = event()
    insert(store, e)  # same thread, same connection
    assert store.get_event(e.id) == e
    store.close()


def test_sqlite_writer_waits_for_the_lock_then_reports_unavailable(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    sql = SQLStore(SqliteBackend(db, lock_seconds=0.3))
    sql.migrate()
    with open(db.with_name("t.db.lock"), "a+") as held:  # another process's writer
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(StoreUnavailable, match="locked by another writer"):
            sql.insert_events([keyed(event(), "delivery:locked")], T0)
        fcntl.flock(held, fcntl.LOCK_UN)
    assert not sql.insert_events([keyed(event(), "delivery:locked")], T0)[0].duplicate
    sql.close()
