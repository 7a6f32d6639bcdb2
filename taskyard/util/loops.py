"""Where the two event loops of a server process meet.

A server process runs two event loops. DBOS runs its workflows (every routing job and every
task run) on an event loop of its own, in a thread of its own. Everything else runs on the
server's loop: the HTTP server, the dispatcher, the approvals sweeper, and the approval
channels' clients that the API, the UI and the sweeper post with. An object bound to one
loop (an `asyncio.Event`, a future, an HTTP client's connections) cannot be used from the
other, so the crossings are these:

- `Wakeup`: the jobs' loop (a routing job that stored tasks, a task that ended, a decision
  taken inside a routing job) nudges the dispatcher on the server's loop, from any thread.
- `applied_wait`: an approval channel on the jobs' loop waits for a task that a decision
  handed back to apply its actions (`AppliedSignals` resolves each waiter on its own
  loop, whichever thread the task ended in).
- The sweeper, on the server's loop, tells and reminds through clients opened on that loop
  (`Approvals.tell_apart`, `Approvals.remind_apart`), as the API and the UI do: the
  channels' own clients were opened on the jobs' loop.
- `close_clients`: the platform clients' connections were opened on the jobs' loop, which is
  gone by the time the server stops; closing them may fail, and must not stop the shutdown.

A decision taken in a routing job starts its task in a thread of the default executor, not
with `asyncio.to_thread`, which would carry DBOS's workflow context along
(`taskyard.approvals.gate.Decisions`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from functools import partial
from typing import Protocol

log = logging.getLogger(__name__)

# How long a decision's note waits for the action it approved (see `AppliedSignals`).
APPLIED_WAIT = 1.0


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class Wakeup:
    """The dispatcher's nudge: it waits on it, everyone else only sets it, from any thread.

    Created before every part that sets it, so that none of them needs the dispatcher (which
    needs most of them). The dispatcher binds it to its loop, and to its hand-over of tasks,
    as it starts; until then a nudge is kept for its first look."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._dispatch: Callable[[], object] | None = None

    def bind(self, dispatch: Callable[[], object]) -> None:
        """The dispatcher starts: it waits on this loop, and `dispatch` hands tasks over."""
        with self._lock:
            self._loop = asyncio.get_running_loop()
            self._dispatch = dispatch

    def set(self) -> None:
        """Dispatch now rather than at the next poll. Safe from any thread and any loop."""
        loop = self._loop
        if loop is not None and _running_loop() is not loop:
            loop.call_soon_threadsafe(self._event.set)
        else:
            self._event.set()

    def dispatch_now(self) -> object:
        """Hand tasks over at once, in the caller's thread (a decision that resumed a task
        starts it without waiting for the dispatcher's loop); before the dispatcher started,
        a nudge for its first look."""
        with self._lock:
            dispatch = self._dispatch
        if dispatch is None:
            self.set()
            return None
        return dispatch()

    async def wait(self, seconds: float) -> None:
        """Until set or `seconds` have passed (on the dispatcher's loop); then cleared."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout=seconds)
        self._event.clear()


class Signals(Protocol):
    """`AppliedSignals`, as far as a waiter needs it."""

    async def wait(self, task_id: str, since: float, timeout: float) -> bool: ...


def applied_wait(signals: Signals) -> Callable[[str, float], Awaitable[object]]:
    """What an approval channel waits on before it says a decision was taken: the task's
    actions applied, or `APPLIED_WAIT` seconds."""
    return partial(signals.wait, timeout=APPLIED_WAIT)


async def close_clients(closers: Iterable[Callable[[], Awaitable[None]]]) -> None:
    """Close each client; one that fails (its loop is gone) is said and passed over."""
    for aclose in closers:
        try:
            await aclose()
        except Exception as exc:  # noqa: BLE001 - shutting down: say it and go on
            log.debug("platform client not closed cleanly", extra={"error": str(exc)})


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
