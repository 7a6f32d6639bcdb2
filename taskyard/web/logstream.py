"""A task's agent log (`outputs/log.jsonl`) as Server-Sent Events, followed until the task ends.

Each complete line of the log is one `log` event whose `id` is the byte offset just after it,
so a client that reconnects with `Last-Event-ID` goes on from there. A `status` event tells
each status the task passes through; the last event is `end`, once the task has ended and its
log is read to the end (an unfinished last line is sent then): a client closes the stream when
it gets it. A comment line keeps a quiet stream open through proxies. One stream lasts at most
`max_seconds`, then closes without `end`: an EventSource reconnects by itself (after the
`retry` the first event sets) and goes on from its Last-Event-ID.

The log is read through `taskyard.run.tasklogs.TaskLogs`: opened safely, `READ_MAX` bytes of whole
lines at a time (a longer line comes in pieces), redacted; the workspace's log while it is
there, else the copy kept with the task. A log that is not safe to open ends the stream with
an `end` event whose reason says so.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import orjson

from taskyard.exceptions import LogRefused, NotFound
from taskyard.models import Task, TaskStatus
from taskyard.run.tasklogs import TaskLogs
from taskyard.store.base import Store

POLL_SECONDS = 0.25
KEEPALIVE_SECONDS = 15.0
STREAM_SECONDS = 300.0
RECONNECT_MS = 1000
READ_MAX = 1 << 20  # a chunk read at a time: a long log is sent as it is read


def sse(event: str, data: str, event_id: int | None = None, retry: int | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    head += f"retry: {retry}\n" if retry is not None else ""
    return f"{head}event: {event}\ndata: {data}\n\n".encode()


def _status_data(task: Task) -> str:
    return orjson.dumps({"status": str(task.status), "reason": task.reason}).decode()


class LogFollower:
    """One client's stream; `offset` is where in the log it starts."""

    def __init__(
        self,
        store: Store,
        task_id: str,
        offset: int = 0,
        poll: float = POLL_SECONDS,
        keepalive: float = KEEPALIVE_SECONDS,
        max_seconds: float = STREAM_SECONDS,
        logs: TaskLogs | None = None,
    ) -> None:
        self.store = store
        self.task_id = task_id
        self.offset = offset  # the end of the last line sent
        self.poll = poll
        self.keepalive = keepalive
        self.max_seconds = max_seconds
        self.logs = logs or TaskLogs()
        self._status: TaskStatus | None = None

    async def events(self) -> AsyncIterator[bytes]:
        task = await self._task()
        if task is None:
            return
        self._status = task.status
        yield sse("status", _status_data(task), retry=RECONNECT_MS)
        last_sent = time.monotonic()
        deadline = last_sent + self.max_seconds
        while True:
            try:
                async for chunk in self._lines(task):
                    yield chunk
                    last_sent = time.monotonic()
            except LogRefused as exc:
                yield sse("end", orjson.dumps({"status": None, "reason": str(exc)}).decode())
                return
            if task.status is not self._status:  # after the lines written before it
                self._status = task.status
                yield sse("status", _status_data(task))
                last_sent = time.monotonic()
            if task.status.terminal:
                yield sse("end", _status_data(task))
                return
            now = time.monotonic()
            if now >= deadline:  # the client reconnects and goes on
                return
            if now - last_sent >= self.keepalive:
                yield b": keep-alive\n\n"
                last_sent = now
            await asyncio.sleep(self.poll)
            task = await self._task()
            if task is None:
                yield sse("end", orjson.dumps({"status": None, "reason": "task gone"}).decode())
                return

    async def _task(self) -> Task | None:
        """The task as it is now; None once it is gone (it was there when the stream began)."""
        try:
            return await asyncio.to_thread(self.store.get_task, self.task_id)
        except NotFound:
            return None

    async def _lines(self, task: Task) -> AsyncIterator[bytes]:
        """Every complete line written since the last read (all of it once the task ended),
        a page at a time."""
        while True:
            page = await asyncio.to_thread(self.logs.page, task, self.offset, READ_MAX)
            if page is None or page.next_offset == self.offset:
                return
            for line, end in page.lines():
                self.offset = end
                if line.strip():
                    yield sse("log", self._text(line), end)

    @staticmethod
    def _text(line: bytes) -> str:
        """One SSE data line: the log line, decoded, with no line break left in it."""
        return line.decode("utf-8", "replace").replace("\r", "")
