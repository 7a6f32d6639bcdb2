"""The audit log in each store (memory, SQLite, PostgreSQL): appended entries form one chain,
concurrent appends included; reads page by seq and by task."""

from __future__ import annotations

import threading

import pytest

from taskyard.audit import GENESIS, verify_chain
from taskyard.store import Store


def test_appends_form_a_chain_read_back_as_written(store: Store) -> None:
    first = store.append_audit("gate", "t1", "taskyard", {"gate": "tests", "ok": True}, 100)
    second = store.append_audit("verdict", "t2", "reviewer:codex", {"note": "ça va ✓"}, 101.25)
    third = store.append_audit("push", None, "taskyard", {"refs": ["main"], "n": 2.5}, 102.0)
    assert (first.seq, first.prev_hash) == (1, GENESIS)
    assert (second.seq, second.prev_hash) == (2, first.hash)
    assert (third.seq, third.prev_hash) == (3, second.hash)
    assert store.audit_entries() == [first, second, third]
    assert verify_chain(store.audit_entries()) == []


def test_entries_page_by_seq_and_filter_by_task(store: Store) -> None:
    for i in range(7):
        store.append_audit("transition", f"t{i % 2}", "taskyard", {"i": i}, 100.0 + i)
    assert [e.seq for e in store.audit_entries(limit=3)] == [1, 2, 3]
    assert [e.seq for e in store.audit_entries(after_seq=3, limit=3)] == [4, 5, 6]
    assert [e.seq for e in store.audit_entries(after_seq=6)] == [7]
    assert store.audit_entries(after_seq=7) == []
    assert [e.seq for e in store.audit_entries(task_id="t1")] == [2, 4, 6]
    assert [e.seq for e in store.audit_entries(task_id="t0", after_seq=3, limit=1)] == [5]
    assert store.audit_entries(task_id="nope") == []


def test_returned_entries_are_copies(store: Store) -> None:
    store.append_audit("gate", None, "taskyard", {"list": [1]}, 1.0)
    store.audit_entries()[0].data["list"].append(2)
    assert store.audit_entries()[0].data == {"list": [1]}


def test_invalid_data_stores_nothing(store: Store) -> None:
    with pytest.raises(ValueError, match="plain JSON"):
        store.append_audit("gate", None, "taskyard", {"x": float("inf")}, 1.0)
    assert store.audit_entries() == []


def test_the_store_has_no_way_to_change_or_remove_entries(store: Store) -> None:
    names = [n for n in dir(store) if "audit" in n and not n.startswith("_")]
    assert sorted(names) == ["append_audit", "audit_entries"]


def test_concurrent_appends_make_one_unbroken_chain(store: Store) -> None:
    threads, per_thread = 6, 15
    start = threading.Barrier(threads)
    errors: list[BaseException] = []

    def append(n: int) -> None:
        try:
            start.wait()
            for i in range(per_thread):
                store.append_audit("gate", f"t{n}", f"worker-{n}", {"i": i}, 1000.0 + i)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    workers = [threading.Thread(target=append, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert errors == []
    entries = store.audit_entries(limit=10_000)
    assert [e.seq for e in entries] == list(range(1, threads * per_thread + 1))
    assert verify_chain(entries) == []
    for n in range(threads):
        mine = store.audit_entries(task_id=f"t{n}")
        assert [e.data["i"] for e in mine] == list(range(per_thread))
