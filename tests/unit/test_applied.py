"""AppliedSignals: a decision's note waits for its task's action, never longer than asked."""

from __future__ import annotations

import asyncio
import threading
import time

from taskyard.util.loops import AppliedSignals


async def test_a_waiter_hears_of_an_apply_made_in_another_thread() -> None:
    signals = AppliedSignals()
    timer = threading.Timer(0.05, signals.applied, args=("t1",))
    began = time.monotonic()
    timer.start()
    assert await signals.wait("t1", 0.0, timeout=5) is True
    assert time.monotonic() - began < 2


async def test_an_apply_before_the_wait_is_not_waited_for() -> None:
    signals = AppliedSignals()
    signals.applied("t1")
    began = time.monotonic()
    assert await signals.wait("t1", 0.0, timeout=5) is True
    assert time.monotonic() - began < 0.5


async def test_an_apply_before_the_decision_does_not_count() -> None:
    """The task stopped (to wait for the decision) before the decision began: the wait is
    for the apply that the decision starts."""
    now = [10.0]
    signals = AppliedSignals(clock=lambda: now[0])
    signals.applied("t1")  # the first run ended, waiting for a person
    now[0] = 11.0
    waiting = asyncio.create_task(signals.wait("t1", 11.0, timeout=5))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    signals.applied("t1")  # the resumed run applied
    assert await waiting is True


async def test_the_wait_ends_at_its_timeout_and_leaves_nothing_behind() -> None:
    signals = AppliedSignals()
    began = time.monotonic()
    assert await signals.wait("t1", 0.0, timeout=0.05) is False
    assert 0.04 <= time.monotonic() - began < 1
    assert signals._waiting == {}
    signals.applied("t2")  # another task: the first waiter would not hear it either
    assert await signals.wait("t1", 0.0, timeout=0.01) is False


async def test_several_waiters_of_one_task_all_hear_it() -> None:
    signals = AppliedSignals()
    waits = [asyncio.create_task(signals.wait("t1", 0.0, timeout=5)) for _ in range(3)]
    await asyncio.sleep(0.01)
    signals.applied("t1")
    assert await asyncio.gather(*waits) == [True, True, True]


async def test_old_signals_are_forgotten() -> None:
    now = [0.0]
    signals = AppliedSignals(clock=lambda: now[0])
    signals.applied("t1")
    now[0] = 120.0
    signals.applied("t2")  # prunes what is older than a minute
    assert await signals.wait("t1", 0.0, timeout=0.01) is False
