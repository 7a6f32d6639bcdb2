"""The pushes taskyard made and the failing checks of pull requests, in each store (memory,
SQLite, PostgreSQL): a failing check asks for a fix only on a head taskyard pushed, at most
three per head; the same check failing again on that head is a flaky rerun, counted apart;
the per-PR bounds hold for CI fixes too; and a routing job that runs again gets its first
answer back."""

from __future__ import annotations

from taskyard.records import CI_FIXES_PER_HEAD, CiOutcome, FixLimits, FixStatus
from taskyard.store import Store

PR = "github:acme/api#12"
OTHER = "github:acme/web#7"
HEAD = "a" * 40
NEXT = "b" * 40
LOOSE = FixLimits(attempts_per_comment=100, fixes_per_pr_per_hour=100, cost_ceiling_per_pr_usd=99)


def test_a_push_is_recorded_once_per_pull_request_and_commit(store: Store) -> None:
    assert not store.pushed_by_taskyard(PR, HEAD)
    store.record_push(PR, HEAD, "task-1", 1000.0)
    store.record_push(PR, HEAD, "task-2", 1001.0)  # the same push again: nothing changes
    assert store.pushed_by_taskyard(PR, HEAD)
    assert not store.pushed_by_taskyard(PR, NEXT)
    assert not store.pushed_by_taskyard(OTHER, HEAD)


def test_a_failing_check_on_a_head_taskyard_did_not_push_is_refused(store: Store) -> None:
    found = store.request_ci_fix(PR, HEAD, "lint", "task-1", 1000.0, LOOSE)
    assert found.outcome is CiOutcome.REFUSED
    assert found.reason == f"taskyard did not push {HEAD[:12]} to {PR}"
    assert found.fix_id is None
    assert store.fixes_of(PR) == []


def test_a_failing_check_on_a_pushed_head_queues_a_fix(store: Store) -> None:
    store.record_push(PR, HEAD, "task-0", 999.0)
    found = store.request_ci_fix(PR, HEAD, "lint", "task-1", 1000.0, LOOSE)
    assert (found.outcome, found.reason, found.check, found.task_id) == (
        CiOutcome.FIX,
        None,
        "lint",
        "task-1",
    )
    [fix] = store.fixes_of(PR)
    assert (fix.id, fix.task_id, fix.status) == (found.fix_id, "task-1", FixStatus.QUEUED)
    assert fix.comment_id == f"check:lint@{HEAD}"
    assert store.start_fix(PR, 1001.0) is not None  # it takes its turn like any fix


def test_the_same_check_failing_again_on_that_head_is_a_flaky_rerun(store: Store) -> None:
    store.record_push(PR, HEAD, "task-0", 999.0)
    assert store.request_ci_fix(PR, HEAD, "test", "task-1", 1000.0, LOOSE).outcome is CiOutcome.FIX
    again = store.request_ci_fix(PR, HEAD, "test", "task-2", 1001.0, LOOSE)
    assert again.outcome is CiOutcome.RERUN
    assert again.reason == f"test failed again on {HEAD[:12]}, already fixed there"
    assert len(store.fixes_of(PR)) == 1  # no second model run
    store.record_push(PR, NEXT, "task-1", 1002.0)  # the fix pushed a new head
    moved = store.request_ci_fix(PR, NEXT, "test", "task-3", 1003.0, LOOSE)
    assert moved.outcome is CiOutcome.FIX
    assert store.ci_outcomes("github:acme/api") == {CiOutcome.FIX: 2, CiOutcome.RERUN: 1}
    assert store.ci_outcomes("github:acme/web") == {}


def test_at_most_three_fixes_per_head(store: Store) -> None:
    store.record_push(PR, HEAD, "task-0", 999.0)
    for i in range(CI_FIXES_PER_HEAD):
        found = store.request_ci_fix(PR, HEAD, f"check-{i}", f"task-{i}", 1000.0 + i, LOOSE)
        assert found.outcome is CiOutcome.FIX, found.reason
    fourth = store.request_ci_fix(PR, HEAD, "check-3", "task-3", 1010.0, LOOSE)
    assert fourth.outcome is CiOutcome.REFUSED
    assert fourth.reason == f"the 4th fix for failing checks on {HEAD[:12]}: at most 3 per head"
    store.record_push(OTHER, HEAD, "task-0", 999.0)  # another PR's heads count apart
    assert store.request_ci_fix(OTHER, HEAD, "x", "task-9", 1011.0, LOOSE).outcome is CiOutcome.FIX


def test_the_pull_requests_bounds_refuse_a_ci_fix_in_words(store: Store) -> None:
    hourly = FixLimits(attempts_per_comment=3, fixes_per_pr_per_hour=1, cost_ceiling_per_pr_usd=9)
    store.record_push(PR, HEAD, "task-0", 999.0)
    assert store.request_fix(PR, "123", "task-1", 1000.0, hourly).admitted
    found = store.request_ci_fix(PR, HEAD, "lint", "task-2", 1001.0, hourly)
    assert found.outcome is CiOutcome.REFUSED
    assert found.reason == f"the 2nd fix on {PR} within an hour: at most 1"
    refused = [f for f in store.fixes_of(PR) if f.status is FixStatus.REFUSED]
    assert [f.id for f in refused] == [found.fix_id]


def test_asked_again_for_the_same_task_the_first_answer(store: Store) -> None:
    store.record_push(PR, HEAD, "task-0", 999.0)
    first = store.request_ci_fix(PR, HEAD, "lint", "task-1", 1000.0, LOOSE)
    assert store.request_ci_fix(PR, HEAD, "lint", "task-1", 1005.0, LOOSE) == first
    comment = store.request_fix(PR, "77", "task-2", 1006.0, LOOSE)
    assert store.request_fix(PR, "77", "task-2", 1007.0, LOOSE) == comment
    assert len(store.fixes_of(PR)) == 2


def test_a_repositorys_fixes_newest_first(store: Store) -> None:
    for i, pr in enumerate([PR, OTHER, "github:acme/api#13", "github:acme/api2#1", PR]):
        store.request_fix(pr, f"c{i}", f"task-{i}", 1000.0 + i, LOOSE)
    assert [f.task_id for f in store.repo_fixes("github:acme/api", 10)] == [
        "task-4",
        "task-2",
        "task-0",
    ]
    assert [f.task_id for f in store.repo_fixes("github:acme/api", 2)] == ["task-4", "task-2"]
    assert store.fixed_prs() == sorted({PR, OTHER, "github:acme/api#13", "github:acme/api2#1"})
