"""The hand-off from taskyard's own `events` table (the outbox) to the queue.

Intake commits events and returns; the dispatcher takes events still `received`, queues each
under its workflow id (so repeating a hand-off after a crash queues nothing twice), then marks
them `queued`. It also replays dead letters that are due, drops expired dedup keys, and keeps
this worker's heartbeat, taking over the jobs of workers that went silent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

from taskyard.config import QueueConfig
from taskyard.exceptions import StoreError
from taskyard.models import TaskStatus
from taskyard.queue.base import JobQueue
from taskyard.queue.jobs import ROUTE_JOB
from taskyard.queue.replay import replay_dead_letter
from taskyard.store.base import Store
from taskyard.util.loops import Wakeup

log = logging.getLogger(__name__)

HOUSEKEEPING_SECONDS = 60.0


class Dispatcher:
    def __init__(
        self,
        store: Store,
        queue: JobQueue,
        config: QueueConfig,
        worker_id: str,
        clock: Callable[[], float] = time.time,
        task_room: Callable[[], int] | None = None,
        claim: Callable[[Sequence[str]], None] | None = None,
        release: Callable[[Sequence[str]], None] | None = None,
        wakeup: Wakeup | None = None,
    ) -> None:
        """`wakeup`: what routing, the tasks and the decisions set to have it dispatch now."""
        self.store = store
        # How many tasks needing an agent this process can take now, and what to tell it
        # of those it took and of those it lost to another process (the executor's `room`,
        # `claim` and `release`); None: no limit.
        self.task_room = task_room
        self.claim = claim
        self.release = release
        self.queue = queue
        self.config = config
        self.worker_id = worker_id
        self.clock = clock
        self.wakeup = wakeup or Wakeup()
        self._tasks: list[asyncio.Task[None]] = []
        self._window = (0.0, 0)  # (start, events stored since): the intake's pressure
        self._backlogged = False  # the queue was full at the last look

    def notify(self, stored: int = 1) -> None:
        """Intake stored `stored` deliveries: count them (the burst policy reads the rate) and
        dispatch now rather than at the next poll. Called on the dispatcher's own loop."""
        now = time.monotonic()
        if now - self._window[0] > 1.0:
            self._window = (now, 0)
        self._window = (self._window[0], self._window[1] + stored)
        self.wakeup.set()

    def wake(self) -> None:
        """Routing stored tasks: dispatch now. Safe from any thread (routing jobs run on the
        queue engine's own event loop); not counted as intake pressure."""
        self.wakeup.set()

    def intake_busy(self) -> bool:
        """Deliveries are arriving faster than `busy_intake_per_second` (this second)."""
        started, stored = self._window
        return time.monotonic() - started <= 1.0 and stored >= self.config.busy_intake_per_second

    async def start(self) -> None:
        self.wakeup.bind(self.dispatch_tasks)
        self._tasks = [
            asyncio.create_task(self._dispatch_loop(), name="dispatch"),
            asyncio.create_task(self._liveness_loop(), name="liveness"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def dispatch_once(self, limit: int | None = None) -> int:
        """Hand one batch (at most `limit`) to the queue; return how many events it held. The
        queue is kept at most `max_in_flight` deep: the rest waits, cheaply, in the events table."""
        room = self.config.max_in_flight - self.store.count_in_flight()
        self._backlogged = room <= 0
        if self._backlogged:
            return 0
        size = min(room, self.config.dispatch_batch, limit or self.config.dispatch_batch)
        batch = self.store.events_to_dispatch(size)
        if batch:
            self.queue.enqueue(ROUTE_JOB, batch)
            self.store.mark_dispatched(batch)
        return len(batch)

    def dispatch_tasks(self) -> int:
        """Hand tasks that routing created (or `tasks retry` requeued) to the queue, most
        urgent first: those that need an agent only as far as this process has room for
        them (the rest wait in the table for whichever worker has room), those that only
        apply actions (`applying`) all. Each starts at once."""
        tasks = self.store.tasks_to_dispatch(self.config.dispatch_batch)
        if self.task_room is not None:
            room = self.task_room()
            taken = []
            for t in tasks:
                if t.status is TaskStatus.APPLYING or room > 0:
                    taken.append(t)
                    room -= t.status is not TaskStatus.APPLYING
            tasks = taken
        if tasks:
            if self.claim is not None:  # before: a task may start (and end) as it is queued
                self.claim([t.id for t in tasks])
            here = set(self.queue.enqueue_tasks(tasks))
            if self.release is not None:  # another process started these first: they run there
                self.release([t.id for t in tasks if t.id not in here])
            for t in tasks:
                self.store.mark_task_dispatched(t.id, t.workflow_id)
        return len(tasks)

    def housekeeping(self) -> None:
        now = self.clock()
        for letter in self.store.due_dead_letters(now, 100):
            if replay_dead_letter(self.store, letter.id, now):
                log.info(
                    "dead letter retried automatically",
                    extra={"dead_letter": letter.id, "ref": letter.ref},
                )
        self.store.delete_expired_dedup(now)

    async def _dispatch_loop(self) -> None:
        last_housekeeping = 0.0
        while True:
            try:
                if self.clock() - last_housekeeping > HOUSEKEEPING_SECONDS:
                    await asyncio.to_thread(self.housekeeping)
                    last_housekeeping = self.clock()
                if self.intake_busy():
                    # A burst is arriving: answering it comes first (platforms time out in
                    # 1-10 s). Jobs still start, at `busy_dispatch_per_second`; the backlog
                    # drains at full speed once the burst is over.
                    interval = self.config.busy_dispatch_interval_sec
                    share = max(1, int(self.config.busy_dispatch_per_second * interval))
                    await asyncio.to_thread(self.dispatch_tasks)
                    await asyncio.to_thread(self.dispatch_once, share)
                    await asyncio.sleep(interval)
                    continue
                full = await asyncio.to_thread(self._dispatch_all)
                if full:
                    continue
            except StoreError as exc:
                log.error("dispatch failed; will retry", extra={"error": str(exc)})
            except Exception:  # the loop must outlive any one failure; log.exception records it
                log.exception("dispatch failed unexpectedly; will retry")
            # A full queue frees room as jobs finish: look again soon.
            await self.wakeup.wait(0.05 if self._backlogged else self.config.dispatch_poll_sec)

    def _dispatch_all(self) -> bool:
        """Events first (a wake is most often a delivery just stored: an approval decision
        waits for its routing job), then tasks. True when a batch was full, so there is more
        to hand over at once."""
        events = self.dispatch_once()
        tasks = self.dispatch_tasks()
        return self.config.dispatch_batch in (tasks, events)

    def beat(self) -> list[str]:
        """Record that this worker lives; take over the jobs of workers silent too long."""
        now = self.clock()
        self.store.heartbeat(self.worker_id, now)
        dead = self.store.claim_stale_workers(self.worker_id, now - self.config.dead_after_seconds)
        if dead:
            self.queue.recover(dead)
        return dead

    async def _liveness_loop(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self.beat)
            except StoreError as exc:
                log.error("heartbeat failed", extra={"error": str(exc)})
            except Exception:  # the loop must outlive any one failure; log.exception records it
                log.exception("heartbeat or takeover failed unexpectedly")
            await asyncio.sleep(self.config.heartbeat_seconds)
