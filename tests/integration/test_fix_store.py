"""The fixes asked of pull requests in each store (memory, SQLite, PostgreSQL): the bounds that
refuse one (attempts per comment, fixes per hour, the cost ceiling) in plain words, and one
running fix per PR, the next queued one starting when it finishes, racing starters included."""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
from collections.abc import Callable
from typing import TypeVar

import pytest

from taskyard.exceptions import NotFound, StoreError
from taskyard.records import Fix, FixLimits, FixStatus
from taskyard.store import SQLStore, Store

PR = "github:acme/api#12"
OTHER = "github:acme/web#7"
LIMITS = FixLimits(attempts_per_comment=3, fixes_per_pr_per_hour=5, cost_ceiling_per_pr_usd=3.0)
LOOSE = FixLimits(attempts_per_comment=100, fixes_per_pr_per_hour=100, cost_ceiling_per_pr_usd=99)
T = TypeVar("T")


def _queued(store: Store, pr: str, comment: str, now: float, limits: FixLimits = LOOSE) -> Fix:
    admission = store.request_fix(pr, comment, f"task-{comment}-{now}", now, limits)
    assert admission.admitted, admission.reason
    return admission.fix


def test_an_admitted_fix_is_queued_and_read_back(store: Store) -> None:
    admission = store.request_fix(PR, "123", "task-1", 1000.0, LIMITS)
    assert admission.admitted and admission.reason is None
    fix = admission.fix
    assert (fix.pr, fix.comment_id, fix.task_id) == (PR, "123", "task-1")
    assert (fix.status, fix.created_at, fix.cost_usd, fix.started_at) == (
        FixStatus.QUEUED,
        1000.0,
        None,
        None,
    )
    assert store.fixes_of(PR, since=0.0) == [fix]
    assert store.fixes_of(OTHER, since=0.0) == []
    assert store.pr_spend(PR) == 0.0


def test_the_fourth_attempt_on_a_comment_is_refused(store: Store) -> None:
    for i in range(3):
        _queued(store, PR, "123", 1000.0 + i, LIMITS)
    refused = store.request_fix(PR, "123", "task-4", 1010.0, LIMITS)
    assert not refused.admitted
    assert refused.reason == "the 4th attempt on comment 123: at most 3"
    assert refused.fix.status is FixStatus.REFUSED
    assert store.fixes_of(PR, since=1010.0) == [refused.fix]
    # Refused ones count for nothing; another comment has its own attempts.
    assert store.request_fix(PR, "123", "task-5", 1011.0, LIMITS).reason == (
        "the 4th attempt on comment 123: at most 3"
    )
    assert store.request_fix(PR, "456", "task-6", 1012.0, LIMITS).admitted


def test_the_sixth_fix_within_an_hour_is_refused_and_the_window_slides(store: Store) -> None:
    for i in range(5):
        _queued(store, PR, f"c{i}", 1000.0 + 60 * i, LIMITS)
    refused = store.request_fix(PR, "c5", "task-6", 1300.0, LIMITS)
    assert refused.reason == "the 6th fix on github:acme/api#12 within an hour: at most 5"
    assert store.request_fix(OTHER, "c5", "task-7", 1300.0, LIMITS).admitted
    # An hour after the first one, it no longer counts: one more fits, then none again.
    assert not store.request_fix(PR, "c6", "task-8", 4599.5, LIMITS).admitted
    assert store.request_fix(PR, "c6", "task-9", 4600.0, LIMITS).admitted
    assert not store.request_fix(PR, "c7", "task-10", 4601.0, LIMITS).admitted
    assert store.request_fix(PR, "c7", "task-11", 4660.0, LIMITS).admitted


def test_the_cost_ceiling_counts_finished_fixes_cost(store: Store) -> None:
    first = _queued(store, PR, "1", 1000.0, LIMITS)
    second = _queued(store, PR, "2", 1001.0, LIMITS)
    running = dataclasses.replace(first, status=FixStatus.RUNNING, started_at=1002.0)
    assert store.start_fix(PR, 1002.0) == running
    assert store.pr_spend(PR) == 0.0  # running: no cost yet
    store.finish_fix(first.id, FixStatus.DONE, 1.25, 1003.0)
    assert store.pr_spend(PR) == pytest.approx(1.25)
    assert store.request_fix(PR, "3", "task-3", 1004.0, LIMITS).admitted
    assert store.start_fix(PR, 1005.0) is not None
    store.finish_fix(second.id, FixStatus.DONE, 1.85, 1006.0)
    assert store.pr_spend(PR) == pytest.approx(3.10)
    refused = store.request_fix(PR, "4", "task-4", 1007.0, LIMITS)
    assert refused.reason == "github:acme/api#12 has spent $3.10 of its $3.00 ceiling"
    assert store.pr_spend(OTHER) == 0.0
    assert store.request_fix(OTHER, "4", "task-5", 1007.0, LIMITS).admitted


def test_one_fix_runs_at_a_time_and_the_queue_starts_in_order(store: Store) -> None:
    fixes = [_queued(store, PR, f"c{i}", 1000.0 + i) for i in range(3)]
    assert store.start_fix(OTHER, 1010.0) is None  # nothing queued there
    started = []
    for n, fix in enumerate(fixes):
        now = 1010.0 + 10 * n
        running = store.start_fix(PR, now)
        assert running is not None and running.id == fix.id
        assert (running.status, running.started_at) == (FixStatus.RUNNING, now)
        assert store.start_fix(PR, now + 1) is None  # the PR's lock is taken
        finished = store.finish_fix(fix.id, FixStatus.DONE, 0.5, now + 2)
        assert finished is not None
        assert (finished.status, finished.cost_usd, finished.finished_at) == (
            FixStatus.DONE,
            0.5,
            now + 2,
        )
        started.append(running.id)
    assert started == [f.id for f in fixes]
    assert store.start_fix(PR, 2000.0) is None  # the queue is empty
    assert [f.status for f in store.fixes_of(PR, since=0.0)] == [FixStatus.DONE] * 3
    assert store.pr_spend(PR) == pytest.approx(1.5)


def test_finishing_twice_changes_nothing_and_a_queued_fix_may_be_dropped(store: Store) -> None:
    first = _queued(store, PR, "1", 1000.0)
    second = _queued(store, PR, "2", 1001.0)
    assert store.start_fix(PR, 1002.0) is not None
    dropped = store.finish_fix(second.id, FixStatus.REFUSED, 0.0, 1003.0)
    assert dropped is not None and dropped.status is FixStatus.REFUSED
    assert store.finish_fix(first.id, FixStatus.DONE, 0.75, 1004.0) is not None
    assert store.finish_fix(first.id, FixStatus.DONE, 9.0, 1005.0) is None
    assert store.pr_spend(PR) == pytest.approx(0.75)
    assert store.start_fix(PR, 1006.0) is None  # nothing left queued
    with pytest.raises(NotFound):
        store.finish_fix("no-such-fix", FixStatus.DONE, 0.0, 1007.0)
    with pytest.raises(ValueError, match="done or refused"):
        store.finish_fix(first.id, FixStatus.RUNNING, 0.0, 1008.0)


def test_two_prs_run_independently(store: Store) -> None:
    a = _queued(store, PR, "1", 1000.0)
    a2 = _queued(store, PR, "2", 1001.0)
    b = _queued(store, OTHER, "1", 1002.0)
    assert getattr(store.start_fix(PR, 1003.0), "id", None) == a.id
    assert getattr(store.start_fix(OTHER, 1003.0), "id", None) == b.id
    store.finish_fix(b.id, FixStatus.DONE, 0.1, 1004.0)
    assert store.start_fix(PR, 1005.0) is None  # a still runs
    store.finish_fix(a.id, FixStatus.DONE, 0.1, 1006.0)
    assert getattr(store.start_fix(PR, 1007.0), "id", None) == a2.id


def test_fixes_of_reads_a_pr_since_a_time_oldest_first(store: Store) -> None:
    fixes = [_queued(store, PR, f"c{i}", 1000.0 + i) for i in range(4)]
    _queued(store, OTHER, "c9", 1002.0)
    assert [f.id for f in store.fixes_of(PR, since=1002.0)] == [f.id for f in fixes[2:]]
    assert store.fixes_of(PR, since=1004.0) == []


def _race(n: int, work: Callable[[int], T]) -> list[T]:
    """`work(i)` from `n` threads started together; every result, or the first error."""
    barrier = threading.Barrier(n)
    results: list[T] = []
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait()
            results.append(work(i))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    return results


def test_concurrent_starters_of_a_pr_get_one_winner(store: Store) -> None:
    for round_ in range(5):
        base = 1000.0 + 100 * round_
        for i in range(3):
            _queued(store, PR, f"r{round_}-{i}", base + i)
            _queued(store, OTHER, f"r{round_}-{i}", base + i)

        def start(i: int, at: float = base + 50) -> Fix | None:
            return store.start_fix(PR if i % 2 else OTHER, at)

        started = _race(8, start)
        winners = [f for f in started if f is not None]
        assert sorted(f.pr for f in winners) == sorted([PR, OTHER])
        for pr in (PR, OTHER):
            running = [f for f in store.fixes_of(pr, since=0.0) if f.status is FixStatus.RUNNING]
            assert len(running) == 1 and running[0].created_at == base
        for f in store.fixes_of(PR, since=0.0) + store.fixes_of(OTHER, since=0.0):
            if f.status is not FixStatus.DONE:
                store.finish_fix(f.id, FixStatus.DONE, 0.0, base + 60)


def test_concurrent_requests_on_one_comment_admit_only_its_attempts(store: Store) -> None:
    admissions = _race(8, lambda i: store.request_fix(PR, "123", f"task-{i}", 1000.0, LIMITS))
    assert sum(a.admitted for a in admissions) == 3
    assert sorted(a.reason or "" for a in admissions if not a.admitted) == (
        ["the 4th attempt on comment 123: at most 3"] * 5
    )


def test_the_database_refuses_a_second_running_fix_of_a_pr(store_url: str) -> None:
    """Whatever a caller does, the unique partial index keeps one running fix per PR."""
    store = SQLStore.open(store_url)
    try:
        store.migrate()
        _queued(store, PR, "1", 1000.0)
        second = _queued(store, PR, "2", 1001.0)
        assert store.start_fix(PR, 1002.0) is not None
        sql = "UPDATE pr_fixes SET status = 'running' WHERE id = :id"
        with (
            pytest.raises((StoreError, sqlite3.IntegrityError)),
            store.backend.transaction() as tx,
        ):
            tx.execute(sql, {"id": second.id})
        assert [f.status for f in store.fixes_of(PR, since=0.0)] == [
            FixStatus.RUNNING,
            FixStatus.QUEUED,
        ]
    finally:
        store.close()
