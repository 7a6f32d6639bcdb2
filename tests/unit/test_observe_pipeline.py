"""The pipeline metrics added to `Metrics` (durations, agent failures, platform requests, rate
limit waits, dead letters, workspace disk) and the JSON logs (ids from the context, secrets
redacted)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import generate_latest

from taskyard.models import Priority, Task, TaskStatus
from taskyard.observe.metrics import (
    AGENT_FAILURE_REASONS,
    PLATFORMS,
    ContextFilter,
    JsonFormatter,
    Metrics,
    log_context,
    redact_in_logs,
    setup_logging,
)

log = logging.getLogger("taskyard.test")


def _task(route: str, status: TaskStatus, created: float, finished: float | None) -> Task:
    return Task(
        id="t1",
        event_id="e1",
        route=route,
        agent="codex",
        status=status,
        priority=Priority.P2,
        created_at=created,
        updated_at=created,
        workflow_id="wf",
        finished_at=finished,
        cost_usd=0.5,
    )


def test_a_finished_task_adds_its_time_from_creation_to_end() -> None:
    metrics = Metrics()
    metrics.task_finished(_task("triage", TaskStatus.SUCCEEDED, 100.0, 107.5))
    metrics.task_finished(_task("triage", TaskStatus.FAILED, 100.0, 100.5))
    metrics.task_finished(_task("triage", TaskStatus.CANCELLED, 100.0, None))  # not ended yet
    sample = metrics.registry.get_sample_value
    labels = {"route": "triage", "agent": "codex"}
    assert sample("taskyard_task_duration_seconds_count", labels) == 2
    assert sample("taskyard_task_duration_seconds_sum", labels) == 8.0
    assert sample("taskyard_task_duration_seconds_bucket", {**labels, "le": "1.0"}) == 1
    assert sample("taskyard_task_duration_seconds_bucket", {**labels, "le": "10.0"}) == 2
    assert sample("taskyard_tasks_total", {**labels, "status": "cancelled"}) == 1


def test_agent_failures_start_at_zero_for_every_reason() -> None:
    metrics = Metrics()
    metrics.watch_agents(["codex", "claude"], lambda a: 0, lambda a: 0)
    metrics.agent_failed("codex", "timed_out")
    sample = metrics.registry.get_sample_value
    for agent in ("codex", "claude"):
        for reason in AGENT_FAILURE_REASONS:
            want = 1 if (agent, reason) == ("codex", "timed_out") else 0
            found = sample("taskyard_agent_failures_total", {"agent": agent, "reason": reason})
            assert found == want, (agent, reason)


def test_platform_requests_and_rate_limit_waits_are_counted() -> None:
    metrics = Metrics()
    metrics.platform_request("github", "write", "rate_limited")
    metrics.platform_request("github", "write", "ok")
    metrics.platform_request("github", "write", "ok")
    metrics.rate_limit_waited("github", 2.5)
    metrics.rate_limit_waited("github", 0.5)
    sample = metrics.registry.get_sample_value
    requests = "taskyard_platform_requests_total"
    assert sample(requests, {"platform": "github", "kind": "write", "outcome": "ok"}) == 2
    assert sample(requests, {"platform": "github", "kind": "write", "outcome": "rate_limited"}) == 1
    assert sample("taskyard_platform_rate_limit_wait_seconds_total", {"platform": "github"}) == 3
    for platform in PLATFORMS:  # every platform's series exist from the start
        assert sample(requests, {"platform": platform, "kind": "read", "outcome": "error"}) == 0


def test_dead_letters_are_read_from_the_store_by_status() -> None:
    metrics = Metrics()
    counts = {"open": 3}
    metrics.watch_dead_letters(lambda: counts)
    text = generate_latest(metrics.registry).decode()
    assert 'taskyard_dead_letters{status="open"} 3.0' in text
    assert 'taskyard_dead_letters{status="replayed"} 0.0' in text


def test_workspace_disk_is_measured_at_most_once_per_period() -> None:
    measured: list[int] = []

    def measure() -> int:
        measured.append(1)
        return 4096 * len(measured)

    cached, fresh = Metrics(), Metrics()
    cached.watch_workspace_disk(measure, cache_seconds=3600)
    for _ in range(3):
        assert cached.registry.get_sample_value("taskyard_workspace_disk_bytes") == 4096
    assert len(measured) == 1
    fresh.watch_workspace_disk(measure, cache_seconds=0)
    assert fresh.registry.get_sample_value("taskyard_workspace_disk_bytes") == 8192
    assert fresh.registry.get_sample_value("taskyard_workspace_disk_bytes") == 12288


# --- logs ---------------------------------------------------------------------------------


@pytest.fixture
def lines() -> Iterator[tuple[io.StringIO, logging.Handler]]:
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter(["s3cr3t-token-value"]))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    yield buffer, handler
    log.removeHandler(handler)


def _records(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_records_carry_the_ids_of_their_context(
    lines: tuple[io.StringIO, logging.Handler],
) -> None:
    buffer, _ = lines
    log.info("outside")
    with log_context(event_id="e1"):
        log.info("routing")
        with log_context(task_id="t1"):
            log.info("running")
            log.info("its own", extra={"task_id": "t-given"})
        log.info("back")
    got = [(r["message"], r.get("event_id"), r.get("task_id")) for r in _records(buffer)]
    assert got == [
        ("outside", None, None),
        ("routing", "e1", None),
        ("running", "e1", "t1"),
        ("its own", "e1", "t-given"),
        ("back", "e1", None),
    ]


async def test_ids_follow_into_tasks_and_threads_but_not_out(
    lines: tuple[io.StringIO, logging.Handler],
) -> None:
    buffer, _ = lines

    async def one(n: int) -> None:
        with log_context(event_id=f"e{n}", task_id=f"t{n}"):
            await asyncio.sleep(0.01)
            await asyncio.to_thread(log.info, "in a thread")
            await asyncio.create_task(_say("in a task"))

    await asyncio.gather(one(1), one(2))
    other = threading.Thread(target=log.info, args=("another thread",))
    other.start()
    other.join()
    found = {(r["message"], r.get("event_id"), r.get("task_id")) for r in _records(buffer)}
    assert found == {
        ("in a thread", "e1", "t1"),
        ("in a task", "e1", "t1"),
        ("in a thread", "e2", "t2"),
        ("in a task", "e2", "t2"),
        ("another thread", None, None),
    }


async def _say(message: str) -> None:
    log.info(message)


def test_configured_secrets_are_redacted_anywhere_in_the_line(
    lines: tuple[io.StringIO, logging.Handler],
) -> None:
    buffer, handler = lines
    assert isinstance(handler.formatter, JsonFormatter)
    tricky = 'pa"ss\\word\nline-2'  # JSON escapes it: the escaped form is redacted too
    handler.formatter.add_secrets([tricky, "abc"])  # too short to redact safely: ignored
    log.warning("sent with s3cr3t-token-value", extra={"reason": f"x {tricky} y", "abc": 1})
    try:
        raise RuntimeError("boom s3cr3t-token-value")
    except RuntimeError:
        log.exception("failed")
    raw = buffer.getvalue()
    assert "s3cr3t-token-value" not in raw and "ss\\\\word" not in raw
    first, second = _records(buffer)
    assert first["message"] == "sent with [redacted]"
    assert first["reason"] == "x [redacted] y"
    assert first["abc"] == 1
    assert "boom [redacted]" in second["exc"]


def test_setup_logging_installs_ids_and_redaction(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    try:
        setup_logging("INFO", "json", ["first-secret"])
        redact_in_logs(["later-secret"])
        with log_context(event_id="e9"):
            log.info("first-secret and later-secret")
        setup_logging("INFO", "text", ["first-secret"])
        log.info("text first-secret")
    finally:
        root.handlers[:] = saved
        root.setLevel(level)
    err = capsys.readouterr().err.splitlines()
    record = json.loads(err[0])
    assert record["message"] == "[redacted] and [redacted]" and record["event_id"] == "e9"
    assert err[1].endswith("taskyard.test: text [redacted]")
