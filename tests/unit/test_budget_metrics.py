"""The budget gauges: this month's spend, the budget and the share of it used, read from the
store at scrape time."""

from __future__ import annotations

import pytest
from prometheus_client import generate_latest

from taskyard.config import BudgetConfig
from taskyard.models import Priority, Task, TaskStatus, new_id
from taskyard.observe.metrics import Metrics
from taskyard.run.budget import BudgetGuard
from taskyard.store import MemoryStore
from tests.lifecycle_paths import drive

JUNE = 1749988800.0  # 2025-06-15T12:00:00Z


def spend(store: MemoryStore, usd: float) -> None:
    task = Task(new_id(), new_id(), "r", "a", TaskStatus.QUEUED, Priority.P2, JUNE, JUNE, "wf")
    store.record_routing([], [task])
    drive(store, task.id, started_at=JUNE, cost_usd=usd)


def test_the_gauges_show_spend_limit_and_ratio() -> None:
    store = MemoryStore()
    spend(store, 8.5)
    metrics = Metrics()
    metrics.watch_budget(BudgetGuard(BudgetConfig(monthly_usd=10), store, lambda: JUNE).gauges)
    sample = metrics.registry.get_sample_value
    assert sample("taskyard_budget_spent_usd") == 8.5
    assert sample("taskyard_budget_limit_usd") == 10
    assert sample("taskyard_budget_used_ratio") == pytest.approx(0.85)
    text = generate_latest(metrics.registry).decode()
    assert "# TYPE taskyard_budget_used_ratio gauge" in text


def test_the_reads_are_cached_for_a_few_seconds() -> None:
    reads: list[int] = []

    def read() -> tuple[float, float | None]:
        reads.append(1)
        return 3.0, 2.0

    metrics = Metrics()
    metrics.watch_budget(read)
    for _ in range(3):
        generate_latest(metrics.registry)
    assert len(reads) == 1
    assert metrics.registry.get_sample_value("taskyard_budget_used_ratio") == 1.5


def test_without_a_budget_only_the_spend_is_shown() -> None:
    store = MemoryStore()
    spend(store, 1.25)
    metrics = Metrics()
    metrics.watch_budget(BudgetGuard(BudgetConfig(), store, lambda: JUNE).gauges)
    sample = metrics.registry.get_sample_value
    assert sample("taskyard_budget_spent_usd") == 1.25
    assert sample("taskyard_budget_limit_usd") is None
    assert sample("taskyard_budget_used_ratio") is None


def test_a_budget_of_zero_reads_as_used_up() -> None:
    metrics = Metrics()
    metrics.watch_budget(lambda: (0.0, 0.0))
    assert metrics.registry.get_sample_value("taskyard_budget_used_ratio") == 1.0
