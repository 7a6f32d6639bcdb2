"""Group commit for the webhook hot path.

Each request hands its event to the writer and waits; one thread commits whatever has gathered
in a single transaction, then answers every waiter. Under load, batches grow by themselves, so
one commit (and one fsync) serves many deliveries; at rest, a delivery commits alone at once.
Nothing is answered before its transaction has committed. A batch the database refuses for one
of its rows (not for being unreachable) is stored again event by event, so only that event fails.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from taskyard.exceptions import StoreError, StoreUnavailable
from taskyard.models import StoreResult
from taskyard.store.base import NewEvent, Store

log = logging.getLogger(__name__)

_Waiter = tuple[NewEvent, "asyncio.Future[StoreResult]"]


class EventWriter:
    def __init__(
        self,
        store: Store,
        max_batch: int = 512,
        on_commit: Callable[[int], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.max_batch = max_batch
        self.on_commit = on_commit
        self.clock = clock
        self._pending: list[_Waiter] = []
        self._wakeup = asyncio.Event()
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="taskyard-writer")
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="event-writer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._fail_pending(StoreUnavailable("server shutting down"))
        self._thread.shutdown(wait=True)

    async def write(self, item: NewEvent) -> StoreResult:
        future: asyncio.Future[StoreResult] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        self._wakeup.set()
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                batch = self._pending[: self.max_batch]
                del self._pending[: self.max_batch]
                # A waiter that gave up (answered 503 already) is not stored later.
                batch = [(item, future) for item, future in batch if not future.done()]
                if batch:
                    await self._commit(loop, batch)

    async def _commit(self, loop: asyncio.AbstractEventLoop, batch: list[_Waiter]) -> None:
        items = [item for item, _ in batch]
        try:
            results = await loop.run_in_executor(self._thread, self._insert, items)
        except StoreUnavailable as exc:
            log.error("event batch not stored", extra={"events": len(items), "error": str(exc)})
            _fail(batch, StoreUnavailable(str(exc)))
            return
        except StoreError as exc:
            if len(batch) == 1:
                log.error(
                    "event not storable", extra={"event_id": items[0].event.id, "error": str(exc)}
                )
                _fail(batch, exc)
                return
            # One row the database refuses must not fail its neighbours: each on its own.
            log.warning(
                "event batch refused; storing its events one by one", extra={"error": str(exc)}
            )
            for waiter in batch:
                await self._commit(loop, [waiter])
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)
        if self.on_commit is not None:
            self.on_commit(sum(1 for r in results if not r.duplicate))

    def _insert(self, items: list[NewEvent]) -> list[StoreResult]:
        return self.store.insert_events(items, self.clock())

    def _fail_pending(self, exc: Exception) -> None:
        for _, future in self._pending:
            if not future.done():
                future.set_exception(exc)
        self._pending.clear()


def _fail(batch: list[_Waiter], exc: Exception) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(exc)
