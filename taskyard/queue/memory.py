"""An in-memory queue for unit tests: same retry logic, no durability."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Awaitable, Callable, Sequence

from taskyard.exceptions import TaskyardError
from taskyard.models import Task
from taskyard.queue.base import JobQueue
from taskyard.queue.jobs import JobRuntime, dead_letter, execute_attempt, run_attempts
from taskyard.store.base import Dispatch

TASK_JOB = "task"  # a heap entry that runs a task rather than an event's job


class MemoryQueue(JobQueue):
    def __init__(
        self,
        runtime: JobRuntime,
        concurrency: int = 4,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.runtime = runtime
        self.concurrency = concurrency
        self.sleep = sleep
        self.seen: set[str] = set()
        self.results: dict[str, str] = {}
        self._heap: list[tuple[int, int, str, str, str]] = []
        self._order = itertools.count()
        self._wakeup = asyncio.Event()
        self._workers: list[asyncio.Task[None]] = []
        self._running = 0

    async def start(self) -> None:
        self._workers = [asyncio.create_task(self._work()) for _ in range(self.concurrency)]

    async def stop(self) -> None:
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)

    def enqueue(self, job: str, dispatches: Sequence[Dispatch]) -> None:
        for d in dispatches:
            if d.workflow_id in self.seen:
                continue
            self.seen.add(d.workflow_id)
            heapq.heappush(
                self._heap, (d.priority, next(self._order), d.workflow_id, job, d.event_id)
            )
        self._wakeup.set()

    def enqueue_tasks(self, tasks: Sequence[Task]) -> list[str]:
        started = []
        for t in tasks:
            if t.workflow_id in self.seen:
                continue
            self.seen.add(t.workflow_id)
            started.append(t.id)
            heapq.heappush(
                self._heap, (int(t.priority), next(self._order), t.workflow_id, TASK_JOB, t.id)
            )
        self._wakeup.set()
        return started

    async def drain(self) -> None:
        """Wait until every queued job has finished."""
        while self._heap or self._running:
            await asyncio.sleep(0.001)

    async def _work(self) -> None:
        while True:
            if not self._heap:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            _, _, workflow_id, job, ref = heapq.heappop(self._heap)
            self._running += 1
            try:
                self.results[workflow_id] = await self._run(job, ref)
            finally:
                self._running -= 1

    async def _run(self, job: str, ref: str) -> str:
        rt = self.runtime
        if job == TASK_JOB:
            if rt.run_task is None:
                raise TaskyardError("no task executor configured")
            return await rt.run_task(ref)
        return await run_attempts(
            rt.retry,
            attempt=lambda n: execute_attempt(rt, job, ref, n),
            sleep=self.sleep,
            bury=lambda n, error: dead_letter(rt, job, ref, n, error),
        )
