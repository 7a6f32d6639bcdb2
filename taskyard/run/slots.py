"""Taking a slot: how many tasks this process can take on (`room`), the ones handed to it
(`claim`/`release`), and, before an attempt, the wait for the month's budget and then for an
agent slot (`Slots.start_when_free`).

With several workers on one database, the dispatcher of each hands it no more than there is
room for, so each takes what it can run and leaves the rest to the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import TYPE_CHECKING

from taskyard.agents.limiter import Limiter
from taskyard.models import Task, TaskStatus
from taskyard.run.budget import BudgetWait, Position, Tell, waiting_notice
from taskyard.store.base import Store

if TYPE_CHECKING:
    from taskyard.run.applying import ActionsFor

CLAIM_SECONDS = 30.0  # a task handed over and not started by then is not counted as taken


class Slots:
    """The tasks this process took on: handed to it (not started yet) and running here, and
    the agent slots (`limiter`) their attempts run in. `room`, `claim` and `release` are safe
    from any thread."""

    def __init__(self, limiter: Limiter, budget_wait: BudgetWait) -> None:
        self.limiter = limiter
        self.budget_wait = budget_wait
        self._lock = threading.Lock()
        self._claimed: dict[str, float] = {}  # task id → when handed over (monotonic)
        self._active: set[str] = set()

    def room(self) -> int:
        """How many more tasks needing an agent this process can take on now. A task handed
        over but not started within `CLAIM_SECONDS` (its workflow ran elsewhere) no longer
        counts."""
        now = time.monotonic()
        with self._lock:
            self._claimed = {t: at for t, at in self._claimed.items() if now - at < CLAIM_SECONDS}
            taken = len(self._active) + len(self._claimed.keys() - self._active)
            return self.limiter.global_cap - taken

    def claim(self, task_ids: Sequence[str]) -> None:
        """The dispatcher handed these tasks to this process."""
        now = time.monotonic()
        with self._lock:
            self._claimed.update(dict.fromkeys(task_ids, now))

    def release(self, task_ids: Sequence[str]) -> None:
        """Of the tasks handed over, these run in another process (it started their workflows
        first)."""
        with self._lock:
            for task_id in task_ids:
                self._claimed.pop(task_id, None)

    @contextlib.contextmanager
    def taken(self, task_id: str) -> Iterator[None]:
        """The task's workflow runs here: it counts against the room until it returns, and
        is no longer only claimed after."""
        with self._lock:
            self._active.add(task_id)
        try:
            yield
        finally:
            with self._lock:
                self._active.discard(task_id)
                self._claimed.pop(task_id, None)

    async def start_when_free(
        self, task: Task, attempt: Callable[[Task], Awaitable[TaskStatus]]
    ) -> TaskStatus | None:
        """Run `attempt` in an agent slot once the month's budget lets the task start; while
        the budget is spent, wait without holding a slot. None: a cancel was asked while it
        waited (the task has not started)."""
        while True:
            task = await self.budget_wait.until_allowed(task)
            if task.cancel_requested:
                return None
            async with self.limiter.slot(task.agent, int(task.priority)):
                if await self.budget_wait.allows():
                    return await attempt(task)


def waiting_teller(store: Store, actions_for: ActionsFor) -> Tell:
    """What tells a task's source that it waits for the budget (`BudgetWait.tell`)."""

    async def tell(task: Task, position: Position) -> None:
        event = await asyncio.to_thread(store.get_event, task.event_id)
        acts = actions_for(task, event)
        if acts is not None:
            await acts.report_waiting(waiting_notice(position), subject=event.subject)

    return tell
