"""The webhook endpoint: `POST /webhooks/{source}` and `POST /webhooks/generic/{name}`.

A plain ASGI app, because it is the hot path: verify on the raw bytes → parse → normalise →
dedup + store (group commit) → answer. Every refusal is counted by reason and logged without
the body or any secret.
"""

from __future__ import annotations

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
    RateLimited,
    SourceNotFound,
    StoreUnavailable,
)
from taskyard.intake import make_adapter, source_key
from taskyard.intake.base import Reply, SourceAdapter
from taskyard.intake.limits import RateLimiter, check_address
from taskyard.intake.priority import PriorityRules
from taskyard.intake.shared import SharedIntakeState
from taskyard.intake.writer import EventWriter
from taskyard.models import Event, new_id
from taskyard.observe import Metrics
from taskyard.store.base import FOREVER, NewEvent
from taskyard.tracing import Tracing

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
                raise SourceNotFound(f"no enabled webhook source at /webhooks/{path}")
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
                "client": _client(scope),
            },
        )
        extra = {"retry-after": str(exc.retry_after)} if isinstance(exc, RateLimited) else {}
        body = orjson.dumps({"error": str(exc), "reason": exc.reason})
        await _answer(send, Reply(exc.status, body), extra)

    async def _handle(self, src: _Source, scope: Scope, receive: Any) -> tuple[Reply, str]:
        check_address(
            src.name, _client(scope, self.settings.intake.trust_forwarded_for), src.config.allow_ips
        )
        headers = _headers(scope)
        src.limiter.check(src.name)
        body = await _read_body(headers, receive, self.settings.intake.max_body_bytes)
        now = time.time()
        src.adapter.verify(headers, body, src.config.secrets, now)
        src.limiter.spend()
        payload = src.adapter.parse(headers, body)
        src.adapter.check_payload(payload, now)
        event = self._event(src, headers, body, payload, now)
        if self.verify_only:
            return src.adapter.reply(payload, event.id, False), "accepted"
        result = await self._store(event, now)
        if not result.duplicate:
            log.debug("event stored", extra={"event_id": event.id, "type": event.type})
            if self.tracing.enabled:
                about = {"taskyard.source": src.name, "taskyard.event_type": event.type}
                self.tracing.record("intake", event.id, now, time.time(), attributes=about)
        reply = src.adapter.reply(payload, result.event_id, result.duplicate)
        return reply, "duplicate" if result.duplicate else "accepted"

    def _event(
        self,
        src: _Source,
        headers: Mapping[str, str],
        body: bytes,
        payload: dict[str, Any],
        now: float,
    ) -> Event:
        norm = src.adapter.normalise(headers, payload)
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

    async def _store(self, event: Event, now: float) -> Any:
        if event.delivery_id:
            key, expires = f"id:{event.delivery_id}", FOREVER
        elif self.settings.intake.dedup_window_seconds > 0:
            key = f"sha256:{event.content_hash}"
            expires = now + self.settings.intake.dedup_window_seconds
        else:
            key, expires = f"none:{event.id}", now
        assert self.writer is not None
        try:
            return await self.writer.write(NewEvent(event, key, expires))
        except StoreUnavailable as exc:
            raise _StoreDown(str(exc)) from exc


class _StoreDown(IntakeError):
    status = 503
    reason = "store_unavailable"

    def __init__(self, message: str) -> None:
        super().__init__(f"event store unavailable, retry later ({message})")


def _headers(scope: Scope) -> dict[str, str]:
    out: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        out[name] = f"{out[name]}, {value}" if name in out else value
    return out


def _client(scope: Scope, trust_forwarded: bool = False) -> str | None:
    if trust_forwarded:
        for name, value in scope["headers"]:
            if name.lower() == b"x-forwarded-for":
                return str(value.decode("latin-1").split(",")[0].strip())
    client = scope.get("client")
    return str(client[0]) if client else None


async def _read_body(headers: Mapping[str, str], receive: Any, limit: int) -> bytes:
    declared = headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise MalformedPayload("invalid Content-Length")
        if int(declared) > limit:
            raise PayloadTooLarge(f"body of {declared} bytes is over the limit of {limit}")
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
