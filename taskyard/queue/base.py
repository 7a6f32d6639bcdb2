"""The queue interface: durable jobs with priority, idempotent by workflow id."""

from __future__ import annotations

import abc
from collections.abc import Sequence

from taskyard.models import Task
from taskyard.store.base import Dispatch


class JobQueue(abc.ABC):
    @abc.abstractmethod
    async def start(self) -> None:
        """Begin running queued jobs (and recover this worker's interrupted ones)."""

    @abc.abstractmethod
    async def stop(self) -> None: ...

    @abc.abstractmethod
    def enqueue(self, job: str, dispatches: Sequence[Dispatch]) -> None:
        """Queue each dispatch; a workflow id seen before is not queued again. Thread-safe."""

    @abc.abstractmethod
    def enqueue_tasks(self, tasks: Sequence[Task]) -> list[str]:
        """Queue each task's run under its workflow id (seen before: not queued again), the
        most urgent first, at most `runs.concurrency` running at once. Returns the ids of the
        tasks that will run in this process: a workflow another process started first runs
        there. Thread-safe."""

    def recover(self, worker_ids: Sequence[str]) -> None:  # noqa: B027
        """Take over the interrupted jobs of workers that died."""
