"""Metrics: what the job runtime reports into; the multiprocess guard."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import generate_latest

from taskyard.exceptions import ConfigError
from taskyard.observe.metrics import Metrics


def test_finished_jobs_are_counted_in_metrics() -> None:
    metrics = Metrics()
    metrics.job_finished("route", "processed")
    metrics.job_finished("route", "processed")
    metrics.job_finished("route", "dead")
    sample = metrics.registry.get_sample_value
    assert sample("taskyard_jobs_total", {"job": "route", "result": "processed"}) == 2
    assert sample("taskyard_jobs_total", {"job": "route", "result": "dead"}) == 1


def test_shared_metrics_need_the_multiprocess_mode_chosen_at_import(tmp_path: Path) -> None:
    # prometheus_client was imported here without PROMETHEUS_MULTIPROC_DIR: counting into a
    # shared directory would silently count in this process only, so it is refused.
    with pytest.raises(ConfigError, match="PROMETHEUS_MULTIPROC_DIR"):
        Metrics(tmp_path)


def test_task_and_agent_gauges_are_read_at_scrape_time() -> None:
    from prometheus_client import generate_latest

    metrics = Metrics()
    counts = {"running": 2, "failed": 1}
    running = {"codex": 1, "claude": 0}
    metrics.watch_tasks(lambda: counts)
    metrics.watch_agents(
        ["codex", "claude"], running.__getitem__, lambda a: 3 if a == "codex" else 0
    )
    text = generate_latest(metrics.registry).decode()
    assert 'taskyard_tasks{status="running"} 2.0' in text
    assert 'taskyard_tasks{status="queued"} 0.0' in text
    assert 'taskyard_agents_running{agent="codex"} 1.0' in text
    assert 'taskyard_agents_waiting{agent="codex"} 3.0' in text
    running["claude"] = 2
    text = generate_latest(metrics.registry).decode()
    assert 'taskyard_agents_running{agent="claude"} 2.0' in text


def test_known_routes_count_their_first_failure_from_zero() -> None:
    metrics = Metrics()
    metrics.routes_known([("pr-review", "codex")])
    text = generate_latest(metrics.registry).decode()
    for status in ("succeeded", "failed", "timed_out", "cancelled", "expired"):
        series = f'taskyard_tasks_total{{agent="codex",route="pr-review",status="{status}"}} 0.0'
        assert series in text
    assert 'status="running"' not in text  # not a way a task ends
