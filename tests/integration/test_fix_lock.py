"""One fix at a time per pull request (`taskyard.run.fixlock.take_turn`), on MemoryStore,
SQLite and PostgreSQL: a second fix of the same pull request waits until the first one is
finished; another pull request's does not; a fix whose task ended without finishing it (a
cancelled task, a dead worker) is cleared by the one waiting behind it."""

from __future__ import annotations

import asyncio

from taskyard.lifecycle import Kind
from taskyard.models import Priority, Task, TaskStatus
from taskyard.records import FixLimits, FixStatus
from taskyard.run.fixlock import take_turn
from taskyard.store import Store

PR, OTHER = "github:acme/api#12", "github:acme/api#13"
LIMITS = FixLimits(attempts_per_comment=9, fixes_per_pr_per_hour=9, cost_ceiling_per_pr_usd=9)
T0 = 1_700_000_000.0


def fix_task(store: Store, task_id: str, pr: str, comment: str, at: float) -> None:
    task = Task(task_id, f"e-{task_id}", "pr-fix", "codex", TaskStatus.QUEUED, Priority.P2, at,
                at, f"task-{task_id}")  # fmt: skip
    store.record_routing([], [task])
    assert store.request_fix(pr, comment, task_id, at, LIMITS).admitted


async def test_the_second_fix_of_a_pull_request_waits_for_the_first(store: Store) -> None:
    fix_task(store, "t1", PR, "c1", T0)
    fix_task(store, "t2", PR, "c2", T0 + 1)
    fix_task(store, "t3", OTHER, "c3", T0 + 2)
    first = await take_turn(store, PR, "t1", lambda: T0 + 5, poll=0.01)
    assert first is not None and first.status is FixStatus.RUNNING
    second = asyncio.create_task(take_turn(store, PR, "t2", lambda: T0 + 6, poll=0.01))
    other = await asyncio.wait_for(take_turn(store, OTHER, "t3", lambda: T0 + 6, poll=0.01), 2)
    assert other is not None  # another pull request does not wait
    await asyncio.sleep(0.1)
    assert not second.done()
    store.finish_fix(first.id, FixStatus.DONE, 0.2, T0 + 7)
    turn = await asyncio.wait_for(second, 2)
    assert turn is not None and turn.task_id == "t2" and turn.status is FixStatus.RUNNING


async def test_a_fix_whose_task_ended_does_not_hold_the_pull_request(store: Store) -> None:
    fix_task(store, "t1", PR, "c1", T0)
    fix_task(store, "t2", PR, "c2", T0 + 1)
    assert await take_turn(store, PR, "t1", lambda: T0 + 5, poll=0.01) is not None
    assert store.transition("t1", Kind.CANCEL, reason="cancelled", finished_at=T0 + 6)
    turn = await asyncio.wait_for(take_turn(store, PR, "t2", lambda: T0 + 7, poll=0.01), 2)
    assert turn is not None and turn.task_id == "t2"
    [old] = [f for f in store.fixes_of(PR) if f.task_id == "t1"]
    assert old.status is FixStatus.DONE


async def test_a_task_that_is_no_fix_takes_no_turn(store: Store) -> None:
    assert await take_turn(store, PR, "nobody", lambda: T0) is None
