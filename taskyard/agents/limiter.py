"""How many agents run at once: a global cap and a cap per agent, waiters served by priority.

    limiter = Limiter(3, {"codex": 1})
    async with limiter.slot("codex", priority=1):
        ...  # at most 3 agents in all, at most 1 codex

Waiters are served lowest priority number first (P0 before P3), first come first served within
a priority. A waiter whose agent is at its own cap is skipped, so it never holds up waiters of
other agents. A cancelled waiter leaves the queue, and a slot granted to it in the same moment
is handed on.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field


@dataclass(order=True)
class _Waiter:
    priority: int
    seq: int
    agent: str = field(compare=False)
    granted: asyncio.Future[None] = field(compare=False)


class Limiter:
    def __init__(self, global_cap: int, per_agent: Mapping[str, int] | None = None) -> None:
        caps = dict(per_agent or {})
        if global_cap < 1 or any(cap < 1 for cap in caps.values()):
            raise ValueError(f"caps must be at least 1: global {global_cap}, per agent {caps}")
        self.global_cap = global_cap
        self.per_agent = caps
        self._running: Counter[str] = Counter()
        self._waiters: list[_Waiter] = []  # sorted by (priority, seq)
        self._seq = itertools.count()

    @property
    def in_use(self) -> int:
        """Slots held now, over all agents."""
        return sum(self._running.values())

    def in_use_by(self, agent: str) -> int:
        return self._running[agent]

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def waiting_for(self, agent: str) -> int:
        return sum(1 for w in self._waiters if w.agent == agent)

    @asynccontextmanager
    async def slot(self, agent: str, priority: int = 2) -> AsyncIterator[None]:
        """Hold one slot for `agent` while the block runs; waits for one if none is free."""
        await self._acquire(agent, priority)
        try:
            yield
        finally:
            self._release(agent)

    async def _acquire(self, agent: str, priority: int) -> None:
        loop = asyncio.get_running_loop()
        waiter = _Waiter(int(priority), next(self._seq), agent, loop.create_future())
        bisect.insort(self._waiters, waiter)
        self._grant()
        try:
            await waiter.granted
        except asyncio.CancelledError:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            elif waiter.granted.done() and not waiter.granted.cancelled():
                self._release(agent)  # granted as it was cancelled: pass the slot on
            raise

    def _release(self, agent: str) -> None:
        self._running[agent] -= 1
        if self._running[agent] <= 0:
            del self._running[agent]
        self._grant()

    def _free_for(self, agent: str) -> bool:
        cap = self.per_agent.get(agent)
        return cap is None or self._running[agent] < cap

    def _grant(self) -> None:
        """Hand free slots to waiters, best priority first, skipping agents at their cap."""
        for waiter in list(self._waiters):
            if waiter.granted.done():  # cancelled; its task has not run its cleanup yet
                self._waiters.remove(waiter)
                continue
            if self.in_use >= self.global_cap:
                return
            if not self._free_for(waiter.agent):
                continue
            self._waiters.remove(waiter)
            self._running[waiter.agent] += 1
            waiter.granted.set_result(None)
