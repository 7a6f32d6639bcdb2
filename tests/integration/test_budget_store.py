"""The spend queries of every store (memory, SQLite, PostgreSQL): the month's sum and each
costed task, counted when its agent started."""

from __future__ import annotations

from taskyard.config import BudgetConfig
from taskyard.models import Priority, Task, TaskStatus, new_id
from taskyard.run.budget import BudgetGuard, breakdown, month_bounds
from taskyard.store import Store
from tests.lifecycle_paths import drive

JUNE_1 = 1748736000.0  # 2025-06-01T00:00:00Z
JULY_1 = 1751328000.0  # 2025-07-01T00:00:00Z
DAY = 86400.0


def add(store: Store, route: str, started: float | None, cost: float | None) -> str:
    task = Task(new_id(), new_id(), route, "agent", TaskStatus.QUEUED, Priority.P2,
                JUNE_1 - DAY, JUNE_1 - DAY, "wf")  # fmt: skip
    store.record_routing([], [task])
    drive(store, task.id, TaskStatus.SUCCEEDED, started_at=started, cost_usd=cost)
    return task.id


def test_spend_is_summed_over_the_tasks_started_in_the_window(store: Store) -> None:
    assert month_bounds(JUNE_1 + 10 * DAY) == (JUNE_1, JULY_1)
    assert store.spent_between(JUNE_1, JULY_1) == 0.0
    assert store.costs_between(JUNE_1, JULY_1) == []
    add(store, "review", JUNE_1 - 1, 5.0)  # May
    first = add(store, "review", JUNE_1, 0.25)  # the first instant of June counts
    second = add(store, "triage", JUNE_1 + DAY + 60, 0.125)
    add(store, "triage", JUNE_1 + 2 * DAY, None)  # no cost known: not a spend
    add(store, "triage", None, None)  # never started
    add(store, "review", JULY_1, 7.0)  # July
    assert store.spent_between(JUNE_1, JULY_1) == 0.375
    costs = store.costs_between(JUNE_1, JULY_1)
    assert [(c.task_id, c.route, c.agent, c.started_at, c.cost_usd) for c in costs] == [
        (first, "review", "agent", JUNE_1, 0.25),
        (second, "triage", "agent", JUNE_1 + DAY + 60, 0.125),
    ]
    b = breakdown(costs)
    assert b.by_day == (("2025-06-01", 0.25, 1), ("2025-06-02", 0.125, 1))
    assert store.spent_between(JULY_1, JULY_1 + 31 * DAY) == 7.0


def test_a_running_task_counts_once_its_cost_is_recorded(store: Store) -> None:
    """A task's cost is written when its agent ends (or while it applies its actions), so
    the guard sees it from then on."""
    guard = BudgetGuard(BudgetConfig(monthly_usd=1.0), store, lambda: JUNE_1 + DAY)
    task_id = add(store, "review", JUNE_1 + 60, None)
    drive(store, task_id, TaskStatus.RUNNING)
    assert not guard.check().exhausted
    drive(store, task_id, TaskStatus.APPLYING, cost_usd=1.5)
    position = guard.check()
    assert position.exhausted and position.spent_usd == 1.5
