"""Ideas' events out: the outbox relay and the publishers it sends through.

Each idea's transitions are written to its event log in the same transaction as the
transition itself (`Store.idea_transition`, `Store.note_idea`), so the log is the outbox: a
crash loses no event. `OutboxRelay` reads what is not yet published and sends each idea's
events in `seq` order, marking them published only once the stream has acknowledged them. An
idea's later event is never sent before its earlier one is acknowledged, so the order per
idea holds; an event may be sent twice (a relay killed between the acknowledgement and the
mark, two processes relaying at once), and the stream drops the second copy by its
`Nats-Msg-Id` (`<idea>-<seq>`), which consumers can dedupe by too.

A `Publisher` is one small interface so that another broker (Kafka) can follow;
`NatsPublisher` sends to a NATS JetStream stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from typing import Protocol

import nats
import nats.errors
import nats.js.errors
import orjson
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext

from taskyard.config.events import EventsConfig
from taskyard.exceptions import PublishError, PublisherUnavailable, StoreError
from taskyard.idea import IdeaEvent
from taskyard.store.base import Store
from taskyard.util.loops import Wakeup

log = logging.getLogger(__name__)

MSG_ID = "Nats-Msg-Id"
STREAM_SUBJECTS = "taskyard.>"  # every subject of `taskyard.idea.SUBJECTS`
# How long the stream remembers a message id: a relay restarted within it sends nothing twice.
DUPLICATE_WINDOW = 3600.0
PUBLISH_TIMEOUT = 5.0  # seconds to wait for the stream's acknowledgement


class Publisher(Protocol):
    """Sends one message and returns once the broker has it (or raises `PublishError`;
    `PublisherUnavailable` when nothing can be sent now)."""

    async def publish(
        self, subject: str, data: bytes, msg_id: str, headers: Mapping[str, str] | None = None
    ) -> None: ...

    async def close(self) -> None: ...


def message(event: IdeaEvent) -> bytes:
    """What is published of an event."""
    return orjson.dumps(
        {
            "idea_id": event.idea_id,
            "seq": event.seq,
            "kind": event.kind,
            "data": event.data,
            "at": event.at,
            "subject": event.subject,
        }
    )


# The client's errors that mean the server is out of reach (for every message, not just one).
_UNREACHABLE = (
    OSError,
    nats.errors.TimeoutError,
    nats.errors.NoServersError,
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.StaleConnectionError,
    nats.errors.OutboundBufferLimitError,
)


class NatsPublisher:
    """Publishes to the JetStream stream `stream`, which it makes on first use if it is
    missing (on `taskyard.>`, remembering message ids for `DUPLICATE_WINDOW`); a stream that
    exists is used as its operator configured it.

    It connects on first use, not when built, so taskyard starts while NATS is down. A lost
    connection is not retried by the client (whose own retries would hold a publish for
    minutes): the publish fails at once, and the relay's next pass connects again."""

    def __init__(self, url: str, stream: str, server: str, timeout: float = PUBLISH_TIMEOUT):
        self.url = url
        self.stream = stream
        self.server = server  # host:port, for messages (the URL may hold a credential)
        self.timeout = timeout
        self._client: NatsClient | None = None
        self._js: JetStreamContext | None = None
        self._stream_ready = False

    async def publish(
        self, subject: str, data: bytes, msg_id: str, headers: Mapping[str, str] | None = None
    ) -> None:
        js = await self._jetstream()
        try:
            await js.publish(
                subject,
                data,
                timeout=self.timeout,
                stream=self.stream,
                headers={**(headers or {}), MSG_ID: msg_id},
            )
        except nats.errors.NoRespondersError as exc:  # the stream went (or JetStream is off)
            self._stream_ready = False
            raise PublisherUnavailable(f"no stream {self.stream} at {self.server}") from exc
        except _UNREACHABLE as exc:
            await self.close()  # the next publish connects again
            raise PublisherUnavailable(f"NATS at {self.server}: {_said(exc)}") from exc
        except nats.errors.Error as exc:  # this message refused (too big, another stream…)
            raise PublishError(f"{msg_id} not published to {subject}: {_said(exc)}") from exc

    async def close(self) -> None:
        client, self._client, self._js = self._client, None, None
        self._stream_ready = False
        if client is not None and not client.is_closed:
            await client.close()

    async def _jetstream(self) -> JetStreamContext:
        """The connection's JetStream context, connected and with the stream made."""
        try:
            if self._js is None:
                self._client = await nats.connect(
                    self.url,
                    name="taskyard",
                    connect_timeout=int(self.timeout),
                    allow_reconnect=False,
                    max_reconnect_attempts=1,  # the least: two tries, a second apart
                    reconnect_time_wait=1,
                    error_cb=self._said_error,
                )
                self._js = self._client.jetstream(timeout=self.timeout)
            if not self._stream_ready:
                await self._ensure_stream(self._js)
        except (*_UNREACHABLE, nats.errors.Error) as exc:
            await self.close()
            raise PublisherUnavailable(f"NATS at {self.server}: {_said(exc)}") from exc
        return self._js

    async def _ensure_stream(self, js: JetStreamContext) -> None:
        try:
            await js.stream_info(self.stream)
        except nats.js.errors.NotFoundError:
            await js.add_stream(
                name=self.stream, subjects=[STREAM_SUBJECTS], duplicate_window=DUPLICATE_WINDOW
            )
            log.info("event stream made", extra={"stream": self.stream, "nats": self.server})
        self._stream_ready = True

    async def _said_error(self, exc: Exception) -> None:
        # The client's own callback logs a traceback per failed attempt; one line will do.
        log.debug("NATS client error", extra={"nats": self.server, "error": _said(exc)})


def _said(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


class OutboxRelay:
    """Publishes the outbox (`Store.unpublished_idea_events`), up to `batch` events a pass,
    every `interval` seconds or when woken (`wake`, from any thread).

    An idea whose event is refused keeps that event and its later ones for the next pass,
    while the other ideas' go out; when the publisher cannot be reached at all, the pass
    ends and the next one tries again. The relay owns its publisher and closes it on `stop`.
    (The outbox is read by idea id, so an idea with `batch` events held back fills every
    pass and holds back the ideas after it: a store query that skips such ideas would not.)"""

    def __init__(
        self,
        store: Store,
        publisher: Publisher,
        clock: Callable[[], float] = time.time,
        batch: int = 200,
        interval: float = 0.2,
    ) -> None:
        self.store = store
        self.publisher = publisher
        self.clock = clock
        self.batch = batch
        self.interval = interval
        self._nudge = Wakeup()
        self._task: asyncio.Task[None] | None = None
        self._refused: dict[str, str] = {}  # idea id → why its event was refused (said once)
        self._unreachable = False

    def wake(self) -> None:
        """Publish now rather than at the next interval (an idea noted an event)."""
        self._nudge.set()

    async def start(self) -> None:
        self._nudge.bind(self._nudge.set)
        self._task = asyncio.create_task(self._loop(), name="outbox-relay")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.publisher.close()

    async def relay(self) -> int:
        """One pass: publish what waits, in order per idea, and mark what went out. The
        number of events published."""
        events = await asyncio.to_thread(self.store.unpublished_idea_events, self.batch)
        sent: list[tuple[str, int]] = []
        stopped: set[str] = set()  # ideas with an event refused in this pass
        for event in events:
            if event.idea_id in stopped:
                continue  # never ahead of the event that was refused
            try:
                await self.publisher.publish(event.subject, message(event), event.msg_id)
            except PublisherUnavailable as exc:
                self._say_unreachable(exc)
                break
            except PublishError as exc:
                stopped.add(event.idea_id)
                self._say_refused(event, exc)
                continue
            sent.append((event.idea_id, event.seq))
            self._refused.pop(event.idea_id, None)
        if sent:
            self._say_reachable()
            await asyncio.to_thread(self.store.mark_idea_events_published, sent, self.clock())
        return len(sent)

    async def _loop(self) -> None:
        while True:
            full = False
            try:
                full = await self.relay() == self.batch  # more may wait: look again at once
            except StoreError as exc:
                log.error("event relay failed; will retry", extra={"error": str(exc)})
            except Exception:  # the relay must outlive any one failure
                log.exception("event relay failed unexpectedly; will retry")
            if not full:
                await self._nudge.wait(self.interval)

    def _say_unreachable(self, exc: PublishError) -> None:
        if not self._unreachable:
            log.warning("events not published; will retry", extra={"error": str(exc)})
        self._unreachable = True

    def _say_reachable(self) -> None:
        if self._unreachable:
            log.info("events published again")
        self._unreachable = False

    def _say_refused(self, event: IdeaEvent, exc: PublishError) -> None:
        if self._refused.get(event.idea_id) != str(exc):
            log.warning(
                "an idea's event was refused; its later events wait",
                extra={"idea_id": event.idea_id, "seq": event.seq, "error": str(exc)},
            )
        self._refused[event.idea_id] = str(exc)


def relay_from_settings(config: EventsConfig, store: Store) -> OutboxRelay | None:
    """The relay to NATS, or None while `events.nats_url` is not set."""
    if not config.nats_url:
        return None
    publisher = NatsPublisher(config.nats_url, config.stream, config.server)
    return OutboxRelay(store, publisher, batch=config.batch, interval=config.interval_ms / 1000)
