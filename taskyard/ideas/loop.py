"""The ideas' scheduler, in the worker: it looks at every live idea when a task of one ends
(`wake`) and every `interval` seconds anyway, and once as it starts (what a crash left)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from taskyard.exceptions import TaskyardError
from taskyard.ideas.scheduler import IdeaScheduler
from taskyard.models import Task

log = logging.getLogger(__name__)


class IdeaLoop:
    def __init__(self, scheduler: IdeaScheduler, interval: float = 2.0) -> None:
        self.scheduler = scheduler
        self.interval = interval
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None

    def task_ended(self, task: Task) -> None:
        """An `on_finished` listener: a task of an idea ended. Safe from any thread."""
        if task.spec.get("idea") and self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._run(), name="ideas")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                await self.scheduler.advance_all()
            except TaskyardError as exc:
                log.warning("ideas not advanced", extra={"error": str(exc)})
            except Exception:  # a bug in one pass must not end the loop
                log.exception("ideas pass crashed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()
