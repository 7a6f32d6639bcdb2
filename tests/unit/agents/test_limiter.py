from __future__ import annotations

import asyncio
import contextlib

import pytest

from taskyard.agents.limiter import Limiter


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


class Holder:
    """Holds a slot until told to let go; records when it got it."""

    def __init__(self, limiter: Limiter, agent: str, priority: int, order: list[str]) -> None:
        self.release = asyncio.Event()
        self.name = f"{agent}/P{priority}"
        self.task = asyncio.create_task(self._run(limiter, agent, priority, order))

    async def _run(self, limiter: Limiter, agent: str, priority: int, order: list[str]) -> None:
        async with limiter.slot(agent, priority):
            order.append(self.name)
            await self.release.wait()


async def test_twenty_requests_never_exceed_the_global_cap() -> None:
    limiter = Limiter(3)
    running = 0
    peak = 0
    peak_reported = 0

    async def job(i: int) -> None:
        nonlocal running, peak, peak_reported
        async with limiter.slot(f"agent{i % 4}", i % 4):
            running += 1
            peak = max(peak, running)
            peak_reported = max(peak_reported, limiter.in_use)
            await asyncio.sleep(0.005)
            running -= 1

    await asyncio.gather(*(job(i) for i in range(20)))
    assert peak == 3
    assert peak_reported == 3
    assert limiter.in_use == 0
    assert limiter.waiting == 0


async def test_agent_at_its_cap_does_not_block_other_agents() -> None:
    limiter = Limiter(3, {"a": 1})
    order: list[str] = []
    first_a = Holder(limiter, "a", 2, order)
    await _settle()
    second_a = Holder(limiter, "a", 0, order)  # better priority, but "a" is at its cap
    await _settle()
    b = Holder(limiter, "b", 3, order)
    await _settle()
    assert order == ["a/P2", "b/P3"]
    assert limiter.in_use_by("a") == 1
    assert limiter.waiting_for("a") == 1
    first_a.release.set()
    await first_a.task
    await _settle()
    assert order == ["a/P2", "b/P3", "a/P0"]
    second_a.release.set()
    b.release.set()
    await asyncio.gather(second_a.task, b.task)
    assert limiter.in_use == 0


async def test_waiters_are_served_by_priority_then_arrival() -> None:
    limiter = Limiter(1)
    order: list[str] = []
    holder = Holder(limiter, "x", 2, order)
    await _settle()
    waiters = []
    for agent, priority in [("w1", 3), ("w2", 1), ("w3", 0), ("w4", 1), ("w5", 2)]:
        waiters.append(Holder(limiter, agent, priority, order))
        await _settle()
    assert limiter.waiting == 5
    holder.release.set()
    for waiter in waiters:
        waiter.release.set()
    await asyncio.gather(holder.task, *(w.task for w in waiters))
    assert order == ["x/P2", "w3/P0", "w2/P1", "w4/P1", "w5/P2", "w1/P3"]


async def test_a_cancelled_waiter_leaves_the_queue() -> None:
    limiter = Limiter(1)
    order: list[str] = []
    holder = Holder(limiter, "x", 2, order)
    await _settle()
    gone = Holder(limiter, "gone", 0, order)
    later = Holder(limiter, "later", 3, order)
    await _settle()
    gone.task.cancel()
    holder.release.set()  # a slot frees before the cancelled waiter has cleaned up
    with contextlib.suppress(asyncio.CancelledError):
        await gone.task
    await _settle()
    assert order == ["x/P2", "later/P3"]
    assert limiter.in_use == 1
    later.release.set()
    await asyncio.gather(holder.task, later.task)
    assert limiter.in_use == 0
    assert limiter.waiting == 0


async def test_a_slot_granted_to_a_waiter_cancelled_at_once_is_passed_on() -> None:
    limiter = Limiter(1)
    order: list[str] = []
    async with limiter.slot("x", 2):
        unlucky = Holder(limiter, "unlucky", 0, order)
        next_one = Holder(limiter, "next", 1, order)
        await _settle()
    # leaving the block granted the slot to "unlucky"; it is cancelled before it runs
    unlucky.task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await unlucky.task
    await _settle()
    assert order == ["next/P1"]
    assert limiter.in_use_by("next") == 1
    next_one.release.set()
    await next_one.task
    assert limiter.in_use == 0


async def test_a_slot_is_released_when_the_block_raises() -> None:
    limiter = Limiter(1)
    with pytest.raises(RuntimeError):
        async with limiter.slot("a", 0):
            raise RuntimeError("boom")
    assert limiter.in_use == 0
    async with asyncio.timeout(1):
        async with limiter.slot("a", 0):
            assert limiter.in_use == 1


def test_caps_below_one_are_refused() -> None:
    with pytest.raises(ValueError):
        Limiter(0)
    with pytest.raises(ValueError):
        Limiter(2, {"a": 0})
