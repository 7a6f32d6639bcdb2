"""Bounds on every HTTP connection, below the app: uvicorn's httptools protocol plus guards.

uvicorn bounds neither the size nor the count of request headers under httptools, has no
deadline for a request's head or body, and keeps an idle fresh connection open for good. Here:
- a request whose line and headers pass `max_header_bytes`, or that has more than
  `max_headers` headers, is answered 431 and the connection closed (counted as read, so memory
  stays within the limit and one read);
- a request's head must arrive within `header_timeout_seconds` of the connection (or of the
  previous response), its body within `body_timeout_seconds` after the head: else 408 and close
  (a connection that sent nothing is just closed);
- past `max_connections` connections, a new one closes the oldest connection that is waiting
  for a request head (idle or slow); when none is waiting, the new one is closed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from taskyard.config import IntakeConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Bounds:
    max_header_bytes: int
    max_headers: int
    header_timeout: float
    body_timeout: float
    max_connections: int

    @classmethod
    def from_config(cls, intake: IntakeConfig) -> Bounds:
        return cls(
            intake.max_header_bytes,
            intake.max_headers,
            intake.header_timeout_seconds,
            intake.body_timeout_seconds,
            intake.max_connections,
        )


class _HeadTooLarge(Exception):
    pass


_REPLIES = {
    431: b"HTTP/1.1 431 Request Header Fields Too Large\r\n",
    408: b"HTTP/1.1 408 Request Timeout\r\n",
}


_REASONS = {431: "headers_too_large", 408: "timeout"}


def _uncounted(reason: str) -> None:
    pass


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    # Set on the subclass `guarded_protocol` makes.
    bounds: Bounds
    counted: Callable[[str], None] = staticmethod(_uncounted)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0
        self._header_count = 0
        self._in_head = True  # waiting for (the rest of) a request line and headers
        self._head_started = False  # some of the head has arrived
        self._waiting_since = time.monotonic()
        self._deadline: asyncio.TimerHandle | None = None
        self._refusal = 0

    # --- connections ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.bounds.header_timeout)
        guarded = [c for c in self.connections if isinstance(c, GuardedHttpToolsProtocol)]
        if len(guarded) > self.bounds.max_connections:
            self._make_room(guarded)

    def _make_room(self, guarded: list[GuardedHttpToolsProtocol]) -> None:
        waiting = [c for c in guarded if c._waiting() and c is not self]
        victim = min(waiting, key=lambda c: c._waiting_since) if waiting else self
        self.counted("connection_limit")
        _say("connection limit reached; closing the oldest connection waiting for a request")
        victim._close()

    def _waiting(self) -> bool:
        """Waiting for a request: no request being answered (a request whose body has
        arrived is still being answered, and a stream is still being sent)."""
        return self._in_head and (self.cycle is None or self.cycle.response_complete)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    # --- the head -----------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._head_started = True
            self._head_bytes += len(data)
        super().data_received(data)
        if self._in_head and self._head_bytes > self.bounds.max_header_bytes:
            self._refuse(431)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_count = 0
        if self._deadline is None:
            self._arm(self.bounds.header_timeout)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.bounds.max_headers:
            self._refusal = 431
            raise _HeadTooLarge
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._arm(self.bounds.body_timeout)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        self._in_head, self._head_started, self._head_bytes = True, False, 0
        self._waiting_since = time.monotonic()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._in_head and self._deadline is None and not self.transport.is_closing():
            self._arm(self.bounds.header_timeout)

    def send_400_response(self, msg: str) -> None:
        if self._refusal:
            self._refuse(self._refusal)
            return
        super().send_400_response(msg)

    # --- deadlines and refusals -----------------------------------------------------------

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._timed_out)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _timed_out(self) -> None:
        self._deadline = None
        if self.cycle is not None and not self.cycle.response_complete and not self._in_head:
            self._refuse(408)  # the body did not arrive in time
        elif self._head_started:
            self._refuse(408)  # nor did the head
        else:
            self._close()

    def _refuse(self, status: int) -> None:
        if self.transport.is_closing():
            return
        _say(f"request refused before the app: {status}")
        self.counted(_REASONS[status])
        if self.cycle is None or not self.cycle.response_started:
            self.transport.write(
                _REPLIES[status] + b"content-length: 0\r\nconnection: close\r\n\r\n"
            )
        self._close()

    def _close(self) -> None:
        self._disarm()
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        self.transport.close()


_said: dict[str, float] = {}
_SAY_EVERY = 10.0


def _say(message: str) -> None:
    """Warn, at most once every 10 s per message: an attack must not flood the log."""
    now = time.monotonic()
    if now - _said.get(message, -_SAY_EVERY) >= _SAY_EVERY:
        _said[message] = now
        log.warning(message)


def guarded_protocol(
    bounds: Bounds, counted: Callable[[str], None] | None = None
) -> type[GuardedHttpToolsProtocol]:
    """The protocol class to give uvicorn (`Config(http=...)`) for these bounds; `counted` is
    told the reason of each refusal (headers_too_large, timeout, connection_limit)."""
    fields: dict[str, Any] = {"bounds": bounds}
    if counted is not None:
        fields["counted"] = staticmethod(counted)
    return type("GuardedHttp", (GuardedHttpToolsProtocol,), fields)
