"""The executor and the monthly budget, with real command agents on a MemoryStore: a task
whose month's budget is spent waits (`budget exhausted`, its source told once, no agent slot
held) and starts when the month turns or a raised budget is loaded; a cancel ends the wait."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from taskyard.lifecycle import Kind
from taskyard.models import Task, TaskStatus
from taskyard.run.budget import BUDGET_EXHAUSTED, Position, waiting_reason
from taskyard.run.executor import TaskExecutor
from taskyard.store import MemoryStore
from tests.executor_harness import build_executor
from tests.integration.test_cost_ceiling import FINISHER
from tests.integration.test_executor import queue_task

JUNE = 1749988800.0  # 2025-06-15T12:00:00Z
JULY = 1751328001.0  # 2025-07-01T00:00:01Z


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def executor(
    tmp_path: Path, store: MemoryStore, clock: Clock, monthly: float
) -> tuple[TaskExecutor, list[tuple[str, Position]]]:
    """An executor whose agent reports $0.02 a run, with `monthly` as its budget; the list
    receives what its tasks' sources are told while they wait."""
    finisher = {"kind": "command", "argv": [sys.executable, "-c", FINISHER, "0.02"]}
    budget = {"monthly_usd": monthly, "recheck_seconds": 0.1}
    ex, _, _ = build_executor(tmp_path, finisher, store=store, budget=budget, clock=clock)
    told: list[tuple[str, Position]] = []

    async def tell(task: Task, position: Position) -> None:
        told.append((task.id, position))

    ex.budget_wait.tell = tell
    ex.budget_wait.poll_seconds = 0.05
    return ex, told


async def until(check: Any, seconds: float = 10.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out waiting")


async def test_the_next_task_waits_once_the_budget_is_spent_until_the_month_turns(
    tmp_path: Path,
) -> None:
    store, clock = MemoryStore(), Clock(JUNE)
    ex, told = executor(tmp_path, store, clock, monthly=0.01)
    first = queue_task(store)
    assert await ex.run(first.id) == "succeeded"
    assert store.get_task(first.id).cost_usd == 0.02  # over the $0.01 budget
    assert ex.budget.check().exhausted

    second = queue_task(store)
    running = asyncio.create_task(ex.run(second.id))
    await until(lambda: store.get_task(second.id).reason == BUDGET_EXHAUSTED)
    await asyncio.sleep(0.5)  # several rechecks: still waiting
    waiting = store.get_task(second.id)
    assert not running.done()
    assert (waiting.status, waiting.attempts, waiting_reason(waiting)) == (
        TaskStatus.QUEUED, 0, BUDGET_EXHAUSTED
    )  # fmt: skip
    assert ex.limiter.in_use_by("a") == 0  # it holds no agent slot
    assert [(task_id, p.limit_usd, p.spent_usd) for task_id, p in told] == [(second.id, 0.01, 0.02)]

    clock.now = JULY  # the month turns
    assert await asyncio.wait_for(running, 30) == "succeeded"
    done = store.get_task(second.id)
    assert (done.status, done.reason, done.attempts) == (TaskStatus.SUCCEEDED, None, 1)
    assert len(told) == 1  # told once


async def test_a_raised_budget_starts_the_waiting_task(tmp_path: Path) -> None:
    store, clock = MemoryStore(), Clock(JUNE)
    ex, _ = executor(tmp_path / "a", store, clock, monthly=0.01)
    assert await ex.run(queue_task(store).id) == "succeeded"
    held = queue_task(store)
    running = asyncio.create_task(ex.run(held.id))
    await until(lambda: store.get_task(held.id).reason == BUDGET_EXHAUSTED)
    running.cancel()  # the process stops (its workflow is recovered on restart) ...
    await asyncio.gather(running, return_exceptions=True)
    assert store.get_task(held.id).status is TaskStatus.QUEUED
    raised, told = executor(tmp_path / "b", store, clock, monthly=1.0)  # ... with a new budget
    assert await raised.run(held.id) == "succeeded"
    assert told == []


async def test_a_waiting_task_can_be_cancelled(tmp_path: Path) -> None:
    store, clock = MemoryStore(), Clock(JUNE)
    ex, _ = executor(tmp_path, store, clock, monthly=0.0)  # a budget of 0: nothing starts
    task = queue_task(store)
    running = asyncio.create_task(ex.run(task.id))
    await until(lambda: store.get_task(task.id).reason == BUDGET_EXHAUSTED)
    assert store.transition(task.id, Kind.REQUEST_CANCEL, updated_at=JUNE)
    assert await asyncio.wait_for(running, 10) == "cancelled"
    done = store.get_task(task.id)
    assert (done.status, done.attempts, done.started_at) == (TaskStatus.CANCELLED, 0, None)
