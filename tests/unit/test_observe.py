"""Metrics: what the job runtime reports into; the multiprocess guard."""

from __future__ import annotations

from pathlib import Path

import pytest

from taskyard.exceptions import ConfigError
from taskyard.observe import Metrics


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
