"""The webhook endpoint: `POST /webhooks/{source}` and `POST /webhooks/generic/{name}`.

A plain ASGI app, because it is the hot path: required headers → read the body (bounded) →
verify on the raw bytes → parse → depth → normalise → storable? → dedup + store (group commit)
→ answer. Every refusal is counted by reason and logged without the body or any secret; caller
input appears in refusals only as a short escaped excerpt.

Dedup: a delivery id is kept for good; the body's content hash for the source's dedup window,
whatever the delivery id (GitHub's, Sentry's and Linear's ids are not signed, so a captured
delivery re-sent under a new id is a replay, answered 200 duplicate).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from taskyard.config import BUILTIN_SOURCES, Settings, SourceConfig
from taskyard.exceptions import (
    IntakeError,
    MalformedPayload,
    PayloadTooLarge,
    SourceNotFound,
    StoreError,
    StoreUnavailable,
)
from taskyard.intake import make_adapter, source_key
from taskyard.intake.base import Reply, SourceAdapter
from taskyard.intake.buffers import BodyBuffer, BodyBuffers
from taskyard.intake.limits import RateLimiter, check_address, client_address
from taskyard.intake.priority import PriorityRules
from taskyard.intake.shared import SharedIntakeState
from taskyard.intake.validate import check_depth, check_storable, excerpt
from taskyard.intake.writer import EventWriter
from taskyard.models import Event, StoreResult, new_id
from taskyard.observe.metrics import Metrics
from taskyard.observe.tracing import Tracing
from taskyard.store.base import FOREVER, NewEvent

log = logging.getLogger(__name__)

Scope = dict[str, Any]


@dataclass(frozen=True)
class _Source:
    name: str  # the Event.source value
    adapter: SourceAdapter
    config: SourceConfig
    limiter: RateLimiter


def build_sources(
    settings: Settings, shared: SharedIntakeState | None = None
) -> dict[str, _Source]:
    """Every enabled source, by the path that reaches it. Disabled ones are simply absent.
    With `shared`, rate limits count the deliveries of every intake process together."""
    sources: dict[str, _Source] = {}
    named = [(n, n, settings.sources.get(n, SourceConfig())) for n in BUILTIN_SOURCES]
    named += [(f"generic/{n}", n, c) for n, c in settings.generic.items()]
    for path, name, cfg in named:
        if cfg.enabled:
            adapter = make_adapter(source_key(path), cfg.max_skew_seconds)
            adapter.check_secrets(cfg.secrets)
            cell = shared.bucket(path) if shared is not None else None
            limiter = RateLimiter(cfg.rate_limit_per_hour, cell=cell)
            sources[path] = _Source(name, adapter, cfg, limiter)
    return sources


class IntakeApp:
    def __init__(
        self,
        settings: Settings,
        writer: EventWriter | None,
        metrics: Metrics,
        verify_only: bool = False,
        shared: SharedIntakeState | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self.settings = settings
        self.tracing = tracing or Tracing.off()
        self.writer = writer
        self.metrics = metrics
        self.verify_only = verify_only
        self.sources = build_sources(settings, shared)
        self.priorities = PriorityRules(settings.priority_rules, settings.default_priority)
        self.buffers = BodyBuffers(settings.intake.max_pending_body_bytes)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        started = time.perf_counter()
        path = scope["path"].removeprefix("/webhooks/").strip("/")
        source = self.sources.get(path)
        label = source.name if source else "unknown"
        try:
            if scope["method"] != "POST":
                await _answer(send, Reply(405, b'{"error": "use POST"}'), {"allow": "POST"})
                return
            if source is None:
                raise SourceNotFound(f"no enabled webhook source at /webhooks/{excerpt(path)}")
            reply, outcome = await self._handle(source, scope, receive)
            self.metrics.received(label, outcome)
            await _answer(send, reply)
        except IntakeError as exc:
            await self._refuse(send, label, exc, scope)
        finally:
            self.metrics.intake_took(label, time.perf_counter() - started)

    async def _refuse(self, send: Any, label: str, exc: IntakeError, scope: Scope) -> None:
        self.metrics.received(label, exc.reason)
        log.warning(
            "delivery refused",
            extra={
                "source": label,
                "reason": exc.reason,
                "status": exc.status,
                "error": str(exc),
                "client": self._client(scope),
            },
        )
        retry_after = getattr(exc, "retry_after", None)
        extra = {"retry-after": str(retry_after)} if retry_after is not None else {}
        body = orjson.dumps({"error": str(exc), "reason": exc.reason})
        await _answer(send, Reply(exc.status, body), extra)

    async def _handle(self, src: _Source, scope: Scope, receive: Any) -> tuple[Reply, str]:
        check_address(src.name, self._client(scope), src.config.allow_ips)
        headers = _headers(scope)
        src.limiter.check(src.name)
        src.adapter.check_headers(headers)  # an unsigned body is never read
        limit = src.config.max_body_bytes or self.settings.intake.max_body_bytes
        async with self.buffers.holding() as buffer:
            body = await _read_body(headers, receive, limit, buffer)
            return await self._verified(src, headers, body)

    async def _verified(
        self, src: _Source, headers: dict[str, str], body: bytes
    ) -> tuple[Reply, str]:
        now = time.time()
        src.adapter.verify(headers, body, src.config.secrets, now)
        src.limiter.spend()
        payload, event = self._parsed(src, headers, body, now)
        if self.verify_only:
            return src.adapter.reply(payload, event.id, False), "accepted"
        result = await self._store(src, event, now)
        if not result.duplicate:
            log.debug("event stored", extra={"event_id": event.id, "type": event.type})
            if self.tracing.enabled:
                about = {"taskyard.source": src.name, "taskyard.event_type": event.type}
                self.tracing.record("intake", event.id, now, time.time(), attributes=about)
        reply = src.adapter.reply(payload, result.event_id, result.duplicate)
        return reply, "duplicate" if result.duplicate else "accepted"

    def _parsed(
        self, src: _Source, headers: dict[str, str], body: bytes, now: float
    ) -> tuple[dict[str, Any], Event]:
        """The payload and its event; any shape the adapter did not expect is a 400."""
        try:
            payload = src.adapter.parse(headers, body)
            check_depth(payload, self.settings.intake.max_json_depth, body)
            src.adapter.check_payload(payload, now)
            event = self._event(src, headers, body, payload, now)
        except (TypeError, ValueError, KeyError, AttributeError, RecursionError) as exc:
            log.warning(
                "payload of an unexpected shape",
                extra={"source": src.name, "error": type(exc).__name__},
            )
            raise MalformedPayload(f"{src.name} payload has an unexpected shape") from exc
        return payload, event

    def _event(
        self,
        src: _Source,
        headers: Mapping[str, str],
        body: bytes,
        payload: dict[str, Any],
        now: float,
    ) -> Event:
        norm = src.adapter.normalise(headers, payload)
        check_storable(norm)
        priority = self.priorities.assign(src.name, norm.type, payload)
        kept = {k: v for k, v in headers.items() if k not in src.adapter.signature_headers}
        return Event(
            id=new_id(),
            source=src.name,
            type=norm.type,
            delivery_id=norm.delivery_id,
            subject=norm.subject,
            actor=norm.actor,
            received_at=now,
            priority=priority,
            headers=kept,
            body=body,
            content_hash=hashlib.sha256(body).hexdigest(),
        )

    async def _store(self, src: _Source, event: Event, now: float) -> StoreResult:
        window = src.config.dedup_window_seconds
        if window is None:
            window = self.settings.intake.dedup_window_seconds
        content = f"sha256:{event.content_hash}"
        if event.delivery_id:
            key, expires = f"id:{event.delivery_id}", FOREVER
            item = NewEvent(event, key, expires, content if window > 0 else None, now + window)
        elif window > 0:
            item = NewEvent(event, content, now + window)
        else:
            item = NewEvent(event, f"none:{event.id}", now)
        assert self.writer is not None
        deadline = self.settings.intake.store_timeout_seconds
        try:
            return await asyncio.wait_for(self.writer.write(item), deadline)
        except TimeoutError:
            raise _StoreDown(f"did not commit within {deadline:g} s") from None
        except StoreUnavailable:
            raise _StoreDown("is unavailable") from None
        except StoreError:  # this event alone (see EventWriter), which logged why; the checks
            # before the store answer 400 for what it cannot hold, so this may be the database
            raise _StoreDown("failed") from None

    def _client(self, scope: Scope) -> str | None:
        client = scope.get("client")
        peer = str(client[0]) if client else None
        if not self.settings.intake.trust_forwarded_for:
            return peer
        forwarded = [
            v.decode("latin-1") for n, v in scope["headers"] if n.lower() == b"x-forwarded-for"
        ]
        return client_address(peer, forwarded, self.settings.intake.trusted_proxies)


class _StoreDown(IntakeError):
    status = 503
    reason = "store_unavailable"

    def __init__(self, why: str) -> None:
        # The database's own error is logged by the writer; callers learn only to retry.
        super().__init__(f"event store {why}, retry later")
        self.retry_after = 1


def _headers(scope: Scope) -> dict[str, str]:
    out: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        out[name] = f"{out[name]}, {value}" if name in out else value
    return out


async def _read_body(
    headers: Mapping[str, str], receive: Any, limit: int, buffer: BodyBuffer
) -> bytes:
    declared = headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise MalformedPayload("invalid Content-Length")
        if len(declared) > 18 or int(declared) > limit:
            raise PayloadTooLarge(
                f"body of {excerpt(declared, 20)} bytes is over the limit of {limit}"
            )
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise MalformedPayload("client disconnected before the body ended")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body is over the limit of {limit} bytes")
        buffer.grow(len(chunk))
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _answer(send: Any, reply: Reply, extra: Mapping[str, str] | None = None) -> None:
    headers = [
        (b"content-type", reply.content_type.encode()),
        (b"content-length", str(len(reply.body)).encode()),
    ]
    headers += [(k.encode(), v.encode()) for k, v in (extra or {}).items()]
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": reply.body})
