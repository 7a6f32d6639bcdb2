"""OpenTelemetry spans for each step an event takes, exported by OTLP/HTTP when configured.

Spans: `intake` (verify → parse → store of one delivery), `route` (the routing job),
`context` (gathering a task's context), `run` (the agent's run), `apply` (applying a result's
actions) and `approval_wait` (from an approval request to its decision or expiry). Each carries
`taskyard.event_id`, and `taskyard.task_id` where a task is known.

All spans of one event share one trace whose id is derived from the event id (the id itself
when it is 32 hex digits, as taskyard's ids are; a hash of it otherwise), so the intake process,
the routing job and each task's worker produce one trace without passing anything along: a
trace can be looked up by its event id. Spans hang under a parent that is never exported (a
remote span id also derived from the event id); a span opened inside another of the same event
is its child.

Tracing is on when `tracing.otlp_endpoint` is set (`TASKYARD_OTLP_ENDPOINT`, else
`OTEL_EXPORTER_OTLP_ENDPOINT`): a base URL to which `/v1/traces` is appended, as the standard
variable means. Off, every call is a check of one attribute: no provider, no span objects.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, TraceFlags

from taskyard.config import Settings
from taskyard.records import Approval, DecisionOutcome

log = logging.getLogger(__name__)

STEPS = ("intake", "route", "context", "run", "apply", "approval_wait")
EVENT_ID = "taskyard.event_id"
TASK_ID = "taskyard.task_id"
_OFF: AbstractContextManager[Span] = nullcontext(trace.INVALID_SPAN)  # reusable: holds no state
Attributes = Mapping[str, str | bool | int | float]


def trace_id_of(event_id: str) -> int:
    """The trace id of an event's spans: its id when that is 32 hex digits, else a hash."""
    if len(event_id) == 32:
        try:
            value = int(event_id, 16)
        except ValueError:
            value = 0
        if value:
            return value
    return int.from_bytes(hashlib.sha256(event_id.encode()).digest()[:16], "big") or 1


def _root_span_id(event_id: str) -> int:
    digest = hashlib.sha256(b"taskyard-event:" + event_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") or 1


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL of a base endpoint (`/v1/traces` appended unless there)."""
    base = endpoint.rstrip("/")
    return base if base.endswith("/v1/traces") else base + "/v1/traces"


class Tracing:
    """Spans for the pipeline's steps; `Tracing.off()` when nothing is configured."""

    def __init__(self, processor: SpanProcessor | None, service_name: str = "taskyard") -> None:
        self.enabled = processor is not None
        self._provider: TracerProvider | None = None
        self._tracer: trace.Tracer | None = None
        if processor is not None:
            resource = Resource.create({"service.name": service_name})
            self._provider = TracerProvider(resource=resource, shutdown_on_exit=False)
            self._provider.add_span_processor(processor)
            self._tracer = self._provider.get_tracer("taskyard")

    @classmethod
    def off(cls) -> Tracing:
        return cls(None)

    @classmethod
    def from_settings(cls, settings: Settings) -> Tracing:
        """OTLP/HTTP export in batches to `tracing.otlp_endpoint`; off when it is unset."""
        config = settings.tracing
        if not config.otlp_endpoint:
            return cls.off()
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        url = traces_url(config.otlp_endpoint)
        exporter = OTLPSpanExporter(endpoint=url, timeout=config.export_timeout_seconds)
        shown = urlsplit(url)  # without any user:password@ it may hold
        port = f":{shown.port}" if shown.port else ""
        where = f"{shown.scheme}://{shown.hostname}{port}{shown.path}"
        log.info("tracing on", extra={"otlp_endpoint": where})
        return cls(BatchSpanProcessor(exporter), config.service_name)

    @classmethod
    def exporting_to(cls, exporter: SpanExporter, service_name: str = "taskyard") -> Tracing:
        """Each span handed to `exporter` as it ends (tests: an in-memory exporter)."""
        return cls(SimpleSpanProcessor(exporter), service_name)

    def span(
        self,
        name: str,
        event_id: str,
        task_id: str | None = None,
        attributes: Attributes | None = None,
    ) -> AbstractContextManager[Span]:
        """A span around a step of `event_id`'s; an exception leaving it marks it an error."""
        if self._tracer is None:
            return _OFF
        return self._tracer.start_as_current_span(
            name,
            context=_parent(event_id),
            attributes=_attributes(event_id, task_id, attributes),
        )

    def record(
        self,
        name: str,
        event_id: str,
        start: float,
        end: float,
        task_id: str | None = None,
        attributes: Attributes | None = None,
    ) -> None:
        """A span of a step that is already over, from `start` to `end` (Unix seconds)."""
        if self._tracer is None:
            return
        span = self._tracer.start_span(
            name,
            context=_parent(event_id),
            attributes=_attributes(event_id, task_id, attributes),
            start_time=_ns(start),
        )
        span.end(end_time=_ns(max(start, end)))

    def flush(self) -> None:
        if self._provider is not None:
            self._provider.force_flush()

    def shutdown(self) -> None:
        """Export what is left and stop (at most the exporter's timeout)."""
        if self._provider is not None:
            self._provider.shutdown()
            self._provider = None
            self._tracer = None
            self.enabled = False


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


def _attributes(event_id: str, task_id: str | None, extra: Attributes | None) -> dict[str, Any]:
    found: dict[str, Any] = {EVENT_ID: event_id}
    if task_id is not None:
        found[TASK_ID] = task_id
    if extra:
        found.update(extra)
    return found


def _parent(event_id: str) -> Context | None:
    """The open span when it belongs to the same event (None: the current context), else
    the event's never-exported root."""
    trace_id = trace_id_of(event_id)
    current = trace.get_current_span().get_span_context()
    if current.is_valid and current.trace_id == trace_id:
        return None
    root = SpanContext(
        trace_id=trace_id,
        span_id=_root_span_id(event_id),
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    return trace.set_span_in_context(NonRecordingSpan(root))


class ApprovalSpans:
    """`approval_wait` spans, one per approval request, when it is decided or expires.
    `event_of(task_id)` finds the task's event (asked only while tracing is on)."""

    def __init__(self, tracing: Tracing, event_of: Callable[[str], str]) -> None:
        self.tracing = tracing
        self.event_of = event_of

    def decided(self, outcome: DecisionOutcome) -> None:
        a = outcome.approval
        if a.status.decided and a.decided_at is not None:
            self._record(a, a.decided_at)

    def expired(self, approval: Approval) -> None:
        self._record(approval, approval.decided_at or time.time())

    def _record(self, a: Approval, end: float) -> None:
        if not self.tracing.enabled:
            return
        attributes = {
            "taskyard.approval_id": a.id,
            "taskyard.risk": a.risk,
            "taskyard.approval_status": str(a.status),
            "taskyard.action_type": a.action_type,
        }
        self.tracing.record(
            "approval_wait", self.event_of(a.task_id), a.created_at, end, a.task_id, attributes
        )
