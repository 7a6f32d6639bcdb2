"""The durable queue on DBOS Transact: each job is a workflow whose attempts are checkpointed.

DBOS keeps one instance per process, so this module holds the process's `JobRuntime` while the
queue runs; nothing else here is global. Only ids and small JSON values cross into workflows.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Sequence
from typing import Any

from dbos import DBOS, SetWorkflowID
from dbos._core import WorkflowHandleFuture
from dbos._serialization import DBOSPortableJSONSerializer

from taskyard.exceptions import StoreError, TaskyardError
from taskyard.models import Task
from taskyard.queue.base import JobQueue
from taskyard.queue.jobs import JobRuntime, Outcome, dead_letter, execute_attempt, run_attempts
from taskyard.store.base import Dispatch

log = logging.getLogger(__name__)

QUEUE_NAME = "taskyard-jobs"
APP_NAME = "taskyard"
APP_VERSION = "taskyard-1"  # bump only when the workflow's step sequence changes

_runtime: JobRuntime | None = None


def _rt() -> JobRuntime:
    if _runtime is None:
        raise TaskyardError("the durable queue is not running in this process")
    return _runtime


def _store_error(exc: BaseException) -> bool:
    return isinstance(exc, StoreError)


# An attempt catches every error of the handler; what escapes is the store failing around it
# (start/finish, dead letter). DBOS retries those steps (10 tries, waits doubling from ~1 s:
# 10-17 min in all), so an outage pauses the job rather than ending its workflow in ERROR with
# the event left `queued`, which nothing would dispatch again.
# A retried attempt may run its handler again: attempts are at-least-once.
_STORE_RETRIES: dict[str, Any] = {
    "retries_allowed": True,
    "interval_seconds": 1.0,
    "backoff_rate": 2.0,
    "max_attempts": 10,
    "should_retry": _store_error,
}


@DBOS.step(name="taskyard.attempt", **_STORE_RETRIES)
async def _attempt_step(job: str, ref: str, number: int) -> dict[str, Any]:
    return (await execute_attempt(_rt(), job, ref, number)).to_json()


@DBOS.step(name="taskyard.dead_letter", **_STORE_RETRIES)
async def _dead_letter_step(job: str, ref: str, attempts: int, error: str) -> str:
    return await dead_letter(_rt(), job, ref, attempts, error)


@DBOS.workflow(name="taskyard.job")
async def job_workflow(job: str, ref: str) -> str:
    async def attempt(number: int) -> Outcome:
        return Outcome.from_json(await _attempt_step(job, ref, number))

    async def bury(attempts: int, error: str) -> str:
        return await _dead_letter_step(job, ref, attempts, error)

    return await run_attempts(_rt().retry, attempt, DBOS.sleep_async, bury)


async def _run_task(task_id: str) -> str:
    run_task = _rt().run_task
    if run_task is None:
        raise TaskyardError("this worker cannot run tasks: no task executor is configured")
    delay = _STORE_RETRIES["interval_seconds"]
    for attempt in range(1, _STORE_RETRIES["max_attempts"] + 1):
        try:
            return await run_task(task_id)
        except StoreError:
            if attempt == _STORE_RETRIES["max_attempts"]:
                raise
            log.warning(
                "task run stopped by the store; will retry",
                extra={"task_id": task_id, "attempt": attempt},
            )
            await asyncio.sleep(delay)
            delay *= _STORE_RETRIES["backoff_rate"]
    raise AssertionError("unreachable: the loop returns or raises")


@DBOS.workflow(name="taskyard.task")
async def task_workflow(task_id: str) -> str:
    """One run of a task. The run records its progress in the tasks table, not in DBOS: no
    step (a step would cost two more writes of DBOS's before the task starts, on the path of
    every approved action), and a run repeated after a crash finds the interrupted attempt
    there, kills its stale process group, and runs attempt n+1 or ends the task `failed:
    worker lost` (a task already ended returns its status). The store failing around it is
    retried with the waits of the routing job's steps."""
    return await _run_task(task_id)


def system_database_url(store_url: str, home_queue_db: str) -> str:
    """DBOS keeps its tables beside ours on PostgreSQL, in its own file on SQLite."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if store_url.startswith(prefix):
            return "postgresql+psycopg://" + store_url.removeprefix(prefix)
    return f"sqlite:///{home_queue_db}"


def use_wal(system_url: str) -> None:
    """Put DBOS's SQLite file in write-ahead-log mode (the mode stays with the file). DBOS
    leaves SQLite's default rollback journal, where every commit writes and syncs a journal
    file and the database and blocks readers meanwhile; each job commits several times, which
    made the queue's SQLite the slowest part of a decision's path to its action."""
    if not system_url.startswith("sqlite:///"):
        return
    conn = sqlite3.connect(system_url.removeprefix("sqlite:///"))
    try:
        conn.execute("PRAGMA journal_mode=WAL")
    finally:
        conn.close()


class DurableQueue(JobQueue):
    def __init__(
        self,
        runtime: JobRuntime,
        system_url: str,
        executor_id: str,
        concurrency: int,
        polling_interval_sec: float,
    ) -> None:
        self.runtime = runtime
        self.system_url = system_url
        self.executor_id = executor_id
        self.concurrency = concurrency
        self.polling_interval_sec = polling_interval_sec

    async def start(self) -> None:
        await asyncio.to_thread(self._launch)

    def _launch(self) -> None:
        global _runtime
        if _runtime is not None:
            raise TaskyardError("a durable queue is already running in this process")
        _runtime = self.runtime
        use_wal(self.system_url)
        DBOS(
            config={
                "name": APP_NAME,
                "system_database_url": self.system_url,
                "executor_id": self.executor_id,
                "application_version": APP_VERSION,
                "serializer": DBOSPortableJSONSerializer(),
                "log_level": "WARNING",
            }
        )
        DBOS.launch()
        # Jobs now start without a queue (see `enqueue`); the queue stays registered so that
        # jobs an earlier version queued still run after an upgrade.
        DBOS.register_queue(
            QUEUE_NAME,
            worker_concurrency=self.concurrency,
            polling_interval_sec=self.polling_interval_sec,
            on_conflict="always_update",
        )
        log.info("durable queue started", extra={"executor_id": self.executor_id})

    async def stop(self) -> None:
        global _runtime
        await asyncio.to_thread(DBOS.destroy)
        _runtime = None

    def enqueue(self, job: str, dispatches: Sequence[Dispatch]) -> None:
        """Start each job's workflow at once: the dispatcher already hands events over most
        urgent first and keeps at most `max_in_flight` of them running, so a queue poll
        would only add its interval to every event's latency. Durable from here on; a
        workflow id seen before starts nothing. Call from a thread (see `enqueue_tasks`)."""
        for d in dispatches:
            with SetWorkflowID(d.workflow_id):
                DBOS.start_workflow(job_workflow, job, d.event_id)

    def enqueue_tasks(self, tasks: Sequence[Task]) -> list[str]:
        """Start each task's workflow at once (durably: it runs to its end even if this
        process dies, and a workflow id seen before starts nothing). The workflow then waits
        for an agent slot in the executor's limiter, which serves the most urgent first; a
        queue poll would add 50-100 ms before every agent start. Call from a thread: DBOS
        runs the workflow on its own event loop, like every other workflow here.

        With several processes on one database, two may hand over the same task at once: the
        workflow runs where its row was inserted first, and DBOS answers the other start with a
        handle that only polls (`WorkflowHandlePolling`; the one that runs here is a
        `WorkflowHandleFuture`). Only the tasks that run here are returned, so that a process
        counts against its room only what it runs."""
        here = []
        for t in tasks:
            with SetWorkflowID(t.workflow_id):
                handle = DBOS.start_workflow(task_workflow, t.id)
            if isinstance(handle, WorkflowHandleFuture):
                here.append(t.id)
        return here

    def recover(self, worker_ids: Sequence[str]) -> None:
        if worker_ids:
            handles = DBOS._recover_pending_workflows(list(worker_ids))
            log.warning(
                "recovered jobs of silent workers",
                extra={"workers": list(worker_ids), "jobs": len(handles)},
            )
