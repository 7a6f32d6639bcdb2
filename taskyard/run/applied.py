"""Hearing, in this process, that a task handed back by a decision has applied its actions.

A decision that arrives by webhook resumes its task and then says where it was made that it
was taken ("✅ approved by …"). Both are quick, but run at once they share the CPU and each
takes longer; the action is what the person waits for, so the note waits for the task to
have applied (or to have stopped applying for any reason), and at most `timeout` seconds:
a task that runs in another process, or takes long, never holds the note back longer.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

KEEP_SECONDS = 60.0  # how long a signal waits for a waiter that came late


class AppliedSignals:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._done: dict[str, float] = {}  # task id → when it applied (for late waiters)
        self._waiting: dict[str, list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]]] = {}

    def applied(self, task_id: str) -> None:
        """The task has applied what it could (or failed to). Safe from any thread."""
        now = self.clock()
        with self._lock:
            self._done = {t: at for t, at in self._done.items() if now - at < KEEP_SECONDS}
            self._done[task_id] = now
            waiting = self._waiting.pop(task_id, [])
        for loop, future in waiting:
            loop.call_soon_threadsafe(_resolve, future)

    async def wait(self, task_id: str, since: float, timeout: float) -> bool:
        """Until `task_id` has applied (at `since` on this clock or later: the same task may
        have stopped earlier, to wait for the decision), or `timeout` seconds; True if it has."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        entry = (loop, future)
        with self._lock:
            if self._done.get(task_id, -1.0) >= since:
                return True
            self._waiting.setdefault(task_id, []).append(entry)
        try:
            await asyncio.wait_for(future, timeout)
            return True
        except TimeoutError:
            return False
        finally:
            with self._lock:
                waiters = self._waiting.get(task_id)
                if waiters is not None and entry in waiters:
                    waiters.remove(entry)
                    if not waiters:
                        del self._waiting[task_id]


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
