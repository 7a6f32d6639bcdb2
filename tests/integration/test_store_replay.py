"""Replay keys in the store (memory, SQLite, PostgreSQL): an event is stored only if its
delivery key and its content key are both free; a replay under a new delivery id is a duplicate
of the content's owner, and so is a redelivery of that new id."""

from __future__ import annotations

from taskyard.store.base import FOREVER, NewEvent, Store
from tests.integration.test_store import T0, event, store

__all__ = ["store"]  # the fixture, imported for this module's tests

WINDOW = 300.0


def _put(store: Store, items: list[tuple[str, str | None]], now: float) -> list[tuple[str, bool]]:
    batch = [
        NewEvent(event(), f"id:{delivery}", FOREVER, replay, now + WINDOW)
        for delivery, replay in items
    ]
    return [(r.event_id, r.duplicate) for r in store.insert_events(batch, now)]


def test_a_replay_under_a_new_id_is_a_duplicate_of_the_first(store: Store) -> None:
    [(first, new)] = _put(store, [("a", "sha256:body")], T0)
    assert not new
    assert _put(store, [("b", "sha256:body")], T0 + 1) == [(first, True)]
    # a redelivery of the replay's id is a duplicate of the same first event
    assert _put(store, [("b", "sha256:other")], T0 + 2) == [(first, True)]
    assert _put(store, [("a", "sha256:body")], T0 + 3) == [(first, True)]
    assert store.count_events() == {"received": 1}


def test_in_one_batch_too(store: Store) -> None:
    results = _put(store, [("a", "sha256:x"), ("b", "sha256:x"), ("c", "sha256:y")], T0)
    (first, _), (second, dup), (third, new_third) = results
    assert (second, dup) == (first, True)
    assert not new_third and third != first
    assert store.count_events() == {"received": 2}


def test_after_the_window_the_same_body_is_new(store: Store) -> None:
    [(first, _)] = _put(store, [("a", "sha256:body")], T0)
    [(later, dup)] = _put(store, [("b", "sha256:body")], T0 + WINDOW)
    assert not dup and later != first
    assert store.count_events() == {"received": 2}


def test_without_a_replay_key_only_the_id_counts(store: Store) -> None:
    results = _put(store, [("a", None), ("b", None)], T0)
    assert [dup for _, dup in results] == [False, False]
