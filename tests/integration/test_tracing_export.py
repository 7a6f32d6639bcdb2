"""With `tracing.otlp_endpoint` set, spans really leave by OTLP/HTTP: a local collector on
127.0.0.1 receives them as protobuf."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from taskyard.config import load_settings
from taskyard.models import new_id
from taskyard.observe.tracing import Tracing


class Collector:
    """An OTLP/HTTP receiver that keeps every request (path, headers, body)."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, str], bytes]] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                collector.received.append((self.path, headers, body))
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.01,))

    def spans(self) -> list[Any]:
        found = []
        for path, headers, body in self.received:
            assert path == "/v1/traces"
            assert headers["content-type"] == "application/x-protobuf"
            if headers.get("content-encoding") == "gzip":
                body = gzip.decompress(body)
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            for resource in request.resource_spans:
                for scope in resource.scope_spans:
                    found.extend((resource, span) for span in scope.spans)
        return found


@pytest.fixture
def collector() -> Iterator[Collector]:
    found = Collector()
    found.thread.start()
    try:
        yield found
    finally:
        found.server.shutdown()
        found.server.server_close()
        found.thread.join()


def test_spans_are_posted_to_the_collector_as_protobuf(
    tmp_path: Path, collector: Collector
) -> None:
    path = tmp_path / "taskyard.yaml"
    path.write_text("tracing: {service_name: taskyard-test}\n")
    settings = load_settings(path, {"TASKYARD_OTLP_ENDPOINT": collector.url})
    tracing = Tracing.from_settings(settings)
    assert tracing.enabled
    event_id = new_id()
    with tracing.span("route", event_id):
        pass
    tracing.record("intake", event_id, 100.0, 100.5, attributes={"taskyard.source": "github"})
    tracing.shutdown()  # exports the batch

    spans = collector.spans()
    assert sorted(span.name for _, span in spans) == ["intake", "route"]
    assert {span.trace_id for _, span in spans} == {bytes.fromhex(event_id)}
    for resource, span in spans:
        attributes = {a.key: a.value.string_value for a in span.attributes}
        assert attributes["taskyard.event_id"] == event_id
        service = {a.key: a.value.string_value for a in resource.resource.attributes}
        assert service["service.name"] == "taskyard-test"
    [intake] = [span for _, span in spans if span.name == "intake"]
    assert (intake.start_time_unix_nano, intake.end_time_unix_nano) == (
        100 * 10**9,
        100_500_000_000,
    )
