"""Spans: one trace per event (its id), children within a step, post-hoc spans, the approval
wait, off by default, and the endpoint from config or env."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from taskyard.config import load_settings
from taskyard.exceptions import ConfigError
from taskyard.models import new_id
from taskyard.observe.tracing import (
    EVENT_ID,
    TASK_ID,
    ApprovalSpans,
    Tracing,
    trace_id_of,
    traces_url,
)
from taskyard.records import Approval, ApprovalStatus, DecisionOutcome


@pytest.fixture
def spans() -> tuple[Tracing, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    return Tracing.exporting_to(exporter), exporter


def test_the_trace_id_is_the_event_id_or_a_stable_hash_of_it() -> None:
    event_id = new_id()
    assert trace_id_of(event_id) == int(event_id, 16)
    assert trace_id_of("delivery-42") == trace_id_of("delivery-42") != trace_id_of("delivery-43")
    assert 0 < trace_id_of("0" * 32) < 2**128  # an all-zero id is no valid trace id
    assert 0 < trace_id_of("x" * 32) < 2**128


def test_traces_url_appends_the_signal_path_once() -> None:
    assert traces_url("http://collector:4318") == "http://collector:4318/v1/traces"
    assert traces_url("http://collector:4318/") == "http://collector:4318/v1/traces"
    assert traces_url("http://c:4318/v1/traces") == "http://c:4318/v1/traces"


def test_off_makes_no_spans() -> None:
    tracing = Tracing.off()
    assert not tracing.enabled
    with tracing.span("route", new_id()) as span:
        assert not span.is_recording()
    tracing.record("intake", new_id(), 1.0, 2.0)
    tracing.shutdown()


def test_steps_of_one_event_share_its_trace_and_nest(
    spans: tuple[Tracing, InMemorySpanExporter],
) -> None:
    tracing, exporter = spans
    event_id, other = new_id(), new_id()
    with tracing.span("run", event_id, "task-1", {"taskyard.agent": "codex"}):
        with tracing.span("context", event_id, "task-1"):
            pass
        with tracing.span("route", other):  # another event's step inside: its own trace
            pass
    with tracing.span("apply", event_id, "task-1"):
        pass
    found = {s.name: s for s in exporter.get_finished_spans()}
    assert {s.context.trace_id for n, s in found.items() if n != "route"} == {int(event_id, 16)}
    assert found["route"].context.trace_id == int(other, 16)
    assert found["context"].parent is not None
    assert found["context"].parent.span_id == found["run"].context.span_id
    root = found["run"].parent
    assert root is not None and root.is_remote
    assert found["apply"].parent == root  # siblings under the event's root
    assert found["route"].parent is not None and found["route"].parent.span_id != root.span_id
    assert found["run"].attributes == {
        EVENT_ID: event_id,
        TASK_ID: "task-1",
        "taskyard.agent": "codex",
    }
    assert TASK_ID not in (found["route"].attributes or {})


def test_a_step_that_raises_is_an_error_span(spans: tuple[Tracing, InMemorySpanExporter]) -> None:
    tracing, exporter = spans
    with pytest.raises(ValueError), tracing.span("route", new_id()):
        raise ValueError("no such route")
    [span] = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert [e.name for e in span.events] == ["exception"]


async def test_separate_tasks_of_one_event_join_one_trace(
    spans: tuple[Tracing, InMemorySpanExporter],
) -> None:
    tracing, exporter = spans
    event_id = new_id()

    async def step(name: str) -> None:
        with tracing.span(name, event_id):
            await asyncio.sleep(0.01)

    await asyncio.gather(step("route"), step("context"), step("run"))
    finished = exporter.get_finished_spans()
    assert len(finished) == 3
    assert {s.context.trace_id for s in finished} == {int(event_id, 16)}
    assert len({s.parent.span_id for s in finished if s.parent is not None}) == 1
    assert trace.get_current_span() is trace.INVALID_SPAN


def test_a_step_already_over_is_recorded_with_its_times(
    spans: tuple[Tracing, InMemorySpanExporter],
) -> None:
    tracing, exporter = spans
    event_id = new_id()
    tracing.record("intake", event_id, 1000.25, 1000.5, attributes={"taskyard.source": "github"})
    [span] = exporter.get_finished_spans()
    assert (span.start_time, span.end_time) == (1_000_250_000_000, 1_000_500_000_000)
    assert span.context.trace_id == int(event_id, 16)
    assert span.attributes == {EVENT_ID: event_id, "taskyard.source": "github"}


def _approval(status: ApprovalStatus, decided_at: float | None) -> Approval:
    return Approval(
        id="ap-1",
        task_id="task-7",
        action_key="k",
        route="triage",
        action_type="close_issue",
        risk="medium",
        rule="closing",
        summary="close it",
        details={},
        status=status,
        created_at=500.0,
        expires_at=2300.0,
        decided_at=decided_at,
    )


def test_an_approval_wait_spans_request_to_decision(
    spans: tuple[Tracing, InMemorySpanExporter],
) -> None:
    tracing, exporter = spans
    event_id = new_id()
    asked: list[str] = []

    def event_of(task_id: str) -> str:
        asked.append(task_id)
        return event_id

    waits = ApprovalSpans(tracing, event_of)
    waits.decided(DecisionOutcome(True, _approval(ApprovalStatus.APPROVED, 560.0), None, True))
    waits.decided(DecisionOutcome(True, _approval(ApprovalStatus.PENDING, None)))
    waits.expired(_approval(ApprovalStatus.EXPIRED, 2300.0))
    first, second = exporter.get_finished_spans()
    assert (first.name, first.start_time, first.end_time) == ("approval_wait", 500e9, 560e9)
    assert first.attributes is not None and first.attributes[TASK_ID] == "task-7"
    assert first.attributes["taskyard.approval_status"] == "approved"
    assert second.end_time == 2300e9 and second.context.trace_id == int(event_id, 16)
    assert asked == ["task-7", "task-7"]  # a "more information" answer is no decision


def test_approval_spans_ask_nothing_while_tracing_is_off() -> None:
    def event_of(task_id: str) -> str:
        raise AssertionError("looked up with tracing off")

    ApprovalSpans(Tracing.off(), event_of).expired(_approval(ApprovalStatus.EXPIRED, 9.0))


def _settings(tmp_path: Path, environ: dict[str, str], config: str = "") -> str | None:
    path = tmp_path / "taskyard.yaml"
    path.write_text(config)
    return load_settings(path, environ).tracing.otlp_endpoint


def test_the_endpoint_comes_from_config_then_env(tmp_path: Path) -> None:
    assert _settings(tmp_path, {}) is None
    file = "tracing: {otlp_endpoint: 'http://file:4318'}\n"
    assert _settings(tmp_path, {}, file) == "http://file:4318"
    standard = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel:4318"}
    assert _settings(tmp_path, standard, file) == "http://otel:4318"
    both = {**standard, "TASKYARD_OTLP_ENDPOINT": "https://ty:4318"}
    assert _settings(tmp_path, both, file) == "https://ty:4318"
    with pytest.raises(ConfigError, match="otlp_endpoint"):
        _settings(tmp_path, {"TASKYARD_OTLP_ENDPOINT": "collector:4318"})


def test_unset_endpoint_means_tracing_off(tmp_path: Path) -> None:
    path = tmp_path / "taskyard.yaml"
    path.write_text("")
    assert not Tracing.from_settings(load_settings(path, {})).enabled


def test_the_endpoint_is_logged_without_credentials(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "taskyard.yaml"
    path.write_text("")
    endpoint = "http://otel:pw-secret-1@127.0.0.1:9/base"
    caplog.set_level("INFO", logger="taskyard.observe.tracing")
    tracing = Tracing.from_settings(load_settings(path, {"TASKYARD_OTLP_ENDPOINT": endpoint}))
    tracing.shutdown()  # nothing to export: no request is made
    [record] = [r for r in caplog.records if r.getMessage() == "tracing on"]
    assert record.__dict__["otlp_endpoint"] == "http://127.0.0.1:9/base/v1/traces"
    assert "pw-secret-1" not in caplog.text
