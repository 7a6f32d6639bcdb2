"""The dispatcher's wake-up, set from the jobs' loop in another thread."""

from __future__ import annotations

import asyncio
import threading
import time

from taskyard.util.loops import Wakeup


async def test_a_nudge_from_another_thread_ends_the_wait_at_once() -> None:
    wakeup = Wakeup()
    wakeup.bind(lambda: 0)

    def later() -> None:
        time.sleep(0.05)
        wakeup.set()

    thread = threading.Thread(target=later)
    began = time.monotonic()
    thread.start()
    await wakeup.wait(5.0)
    thread.join()
    assert time.monotonic() - began < 2.0


async def test_a_nudge_before_the_dispatcher_starts_is_kept_for_its_first_look() -> None:
    wakeup = Wakeup()
    assert wakeup.dispatch_now() is None  # nothing bound: only a nudge
    began = time.monotonic()
    await wakeup.wait(5.0)
    assert time.monotonic() - began < 1.0


async def test_dispatch_now_hands_over_in_the_callers_thread_once_bound() -> None:
    wakeup = Wakeup()
    threads: list[int] = []

    def dispatch() -> int:
        threads.append(threading.get_ident())
        return 3

    wakeup.bind(dispatch)
    assert await asyncio.to_thread(wakeup.dispatch_now) == 3
    assert threads and threads[0] != threading.get_ident()
