"""Metrics the job runtime reports into."""

from __future__ import annotations

from taskyard.observe import Metrics


def test_finished_jobs_are_counted_in_metrics() -> None:
    metrics = Metrics()
    metrics.job_finished("route", "processed")
    metrics.job_finished("route", "processed")
    metrics.job_finished("route", "dead")
    sample = metrics.registry.get_sample_value
    assert sample("taskyard_jobs_total", {"job": "route", "result": "processed"}) == 2
    assert sample("taskyard_jobs_total", {"job": "route", "result": "dead"}) == 1
