"""How many body bytes the intake holds at once, over every request in this process.

Each request reads its body into memory before it can be verified; its source's limit bounds
one request, and this budget bounds all of them together: past it, a request is answered 503
(with Retry-After) instead of buffering more, so many large bodies at once cannot exhaust the
server's memory. A request gives its bytes back when it is answered.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from taskyard.exceptions import IntakeError


class Busy(IntakeError):
    status = 503
    reason = "busy"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.retry_after = 1


class BodyBuffer:
    """One request's share of the budget."""

    def __init__(self, owner: BodyBuffers) -> None:
        self._owner = owner
        self.size = 0

    def grow(self, size: int) -> None:
        self._owner.take(size)
        self.size += size


class BodyBuffers:
    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.held = 0

    def take(self, size: int) -> None:
        if self.held + size > self.budget:
            raise Busy("too many request bodies at once, retry later")
        self.held += size

    @asynccontextmanager
    async def holding(self) -> AsyncIterator[BodyBuffer]:
        buffer = BodyBuffer(self)
        try:
            yield buffer
        finally:
            self.held -= buffer.size
