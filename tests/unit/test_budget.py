"""Budget math: months, positions, breakdowns, prices, the config, and the wait of a task."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from taskyard.config import AgentConfig, BudgetConfig, ModelPrice, load_settings
from taskyard.exceptions import ConfigError
from taskyard.lifecycle import Kind
from taskyard.models import Priority, Task, TaskStatus, new_id
from taskyard.run.budget import (
    BUDGET_EXHAUSTED,
    BudgetGuard,
    BudgetWait,
    Position,
    breakdown,
    day_of,
    money,
    month_bounds,
    month_of,
    parse_month,
    priced,
    report,
    unpriced_agents,
    waiting_notice,
    waiting_reason,
)
from taskyard.store import MemoryStore
from taskyard.store.base import TaskCost
from tests.lifecycle_paths import drive


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


JUNE = ts("2025-06-15T12:00:00")


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def costed_task(store: MemoryStore, cost: float | None, started: float, route: str = "r") -> Task:
    task = Task(new_id(), new_id(), route, "a", TaskStatus.QUEUED, Priority.P2, started, started,
                "wf")  # fmt: skip
    store.record_routing([], [task])
    drive(store, task.id, TaskStatus.SUCCEEDED, started_at=started, cost_usd=cost)
    return store.get_task(task.id)


# --- months and money ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "start", "end"),
    [
        ("2025-06-15T12:00:00", "2025-06-01T00:00:00", "2025-07-01T00:00:00"),
        ("2025-12-31T23:59:59", "2025-12-01T00:00:00", "2026-01-01T00:00:00"),
        ("2024-02-29T00:00:00", "2024-02-01T00:00:00", "2024-03-01T00:00:00"),
        ("2025-01-01T00:00:00", "2025-01-01T00:00:00", "2025-02-01T00:00:00"),
    ],
)
def test_month_bounds_are_the_utc_calendar_month(moment: str, start: str, end: str) -> None:
    assert month_bounds(ts(moment)) == (ts(start), ts(end))


def test_month_and_day_names_are_utc() -> None:
    late = ts("2025-06-30T23:30:00")
    assert (month_of(late), day_of(late)) == ("2025-06", "2025-06-30")
    assert month_of(late + 3600) == "2025-07"
    assert parse_month("2025-07") == ts("2025-07-01T00:00:00")
    for bad in ("2025-13", "July", "2025-07-01", ""):
        with pytest.raises(ValueError, match="YYYY-MM"):
            parse_month(bad)


@pytest.mark.parametrize(
    ("usd", "text"),
    [
        (0.01, "$0.01"),
        (5.0, "$5"),
        (12.5, "$12.5"),
        (0.000123, "$0.000123"),
        (0, "$0"),
        (100, "$100"),
    ],
)
def test_money_is_written_without_float_noise(usd: float, text: str) -> None:
    assert money(usd) == text


# --- position ----------------------------------------------------------------------------


def test_position_states_follow_the_spend() -> None:
    assert Position("2025-06", 5.0, None).state == "none"
    assert Position("2025-06", 5.0, None).ratio is None
    assert not Position("2025-06", 5.0, None).exhausted
    ok = Position("2025-06", 7.99, 10.0)
    assert (ok.state, ok.alerting, ok.exhausted) == ("ok", False, False)
    alert = Position("2025-06", 8.0, 10.0)
    assert (alert.state, alert.alerting, alert.exhausted) == ("alert", True, False)
    assert alert.ratio == pytest.approx(0.8)
    spent = Position("2025-06", 10.0, 10.0)
    assert (spent.state, spent.exhausted) == ("exhausted", True)
    assert Position("2025-06", 0.0, 0.0).exhausted  # a budget of 0 lets nothing start
    assert Position("2025-06", 0.5, 1.0, alert_at=0.5).state == "alert"
    assert Position("2025-06", 12.0, 10.0).to_json() == {
        "month": "2025-06",
        "spent_usd": 12.0,
        "limit_usd": 10.0,
        "used_ratio": 1.2,
        "alert_at": 0.8,
        "state": "exhausted",
    }


def test_breakdown_sums_by_route_and_utc_day() -> None:
    costs = [
        TaskCost("1", "review", "codex", ts("2025-06-01T10:00:00"), 0.5),
        TaskCost("2", "triage", "claude", ts("2025-06-01T23:59:00"), 0.25),
        TaskCost("3", "review", "codex", ts("2025-06-02T00:01:00"), 1.0),
    ]
    b = breakdown(costs)
    assert (b.total_usd, b.tasks) == (1.75, 3)
    assert b.by_route == (("review", 1.5, 2), ("triage", 0.25, 1))
    assert b.by_day == (("2025-06-01", 0.75, 2), ("2025-06-02", 1.0, 1))
    assert breakdown([]).to_json() == {"total_usd": 0, "tasks": 0, "by_route": [], "by_day": []}


# --- prices ------------------------------------------------------------------------------


def test_the_price_table_prices_agents_without_prices_of_their_own() -> None:
    table = {"gpt-5.5": ModelPrice(input_usd_per_mtok=1.25, output_usd_per_mtok=10)}
    bare = AgentConfig(kind="codex", model="gpt-5.5")
    filled = priced(bare, table)
    assert (filled.input_usd_per_mtok, filled.output_usd_per_mtok) == (1.25, 10)
    assert filled.cached_input_usd_per_mtok is None
    own = AgentConfig(kind="codex", model="gpt-5.5", input_usd_per_mtok=2, output_usd_per_mtok=8)
    assert priced(own, table) is own  # the agent's own keys win
    other = AgentConfig(kind="codex", model="o9")
    assert priced(other, table) is other
    agents = {"a": bare, "b": other, "c": AgentConfig(kind="claude", model="o9")}
    assert unpriced_agents(agents, table) == ["b"]  # claude reports its own cost


def test_budget_config_from_file_and_env(tmp_path: Path) -> None:
    assert load_settings(None, {}).budget == BudgetConfig()
    path = tmp_path / "taskyard.yaml"
    path.write_text(
        "budget:\n  monthly_usd: 200\n  per_task_usd: 2.5\n  alert_at: 0.9\n"
        "  prices:\n    gpt-5.5: {input_usd_per_mtok: 1.25, output_usd_per_mtok: 10,"
        " cached_input_usd_per_mtok: 0.125}\n"
        "agents:\n  codex: {kind: codex, model: gpt-5.5, input_usd_per_mtok: 1,"
        " output_usd_per_mtok: 4}\n  claude: {kind: claude}\n"
    )
    s = load_settings(path, {})
    assert (s.budget.monthly_usd, s.budget.per_task_usd, s.budget.alert_at) == (200, 2.5, 0.9)
    assert s.budget.prices["gpt-5.5"].cached_input_usd_per_mtok == 0.125
    assert s.agents["codex"].input_usd_per_mtok == 1  # the existing per-agent keys still work
    from_env = load_settings(path, {"TASKYARD_BUDGET_MONTHLY_USD": "0.01"})
    assert from_env.budget.monthly_usd == 0.01 and from_env.budget.per_task_usd == 2.5
    assert load_settings(None, {"TASKYARD_BUDGET_MONTHLY_USD": " "}).budget.monthly_usd is None


@pytest.mark.parametrize(
    "text",
    [
        "budget: {monthly_usd: -1}",
        "budget: {per_task_usd: 0}",
        "budget: {alert_at: 1.5}",
        "budget: {monthly: 5}",
        "budget: {prices: {m: {input_usd_per_mtok: 1}}}",
    ],
)
def test_bad_budget_config_is_a_config_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "taskyard.yaml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError, match="budget"):
        load_settings(path, {})


def test_a_budget_from_env_that_is_not_a_number_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="monthly_usd"):
        load_settings(None, {"TASKYARD_BUDGET_MONTHLY_USD": "lots"})


# --- the guard -----------------------------------------------------------------------------


def test_the_guard_counts_this_months_costs_only(caplog: pytest.LogCaptureFixture) -> None:
    store = MemoryStore()
    costed_task(store, 0.006, ts("2025-05-31T23:59:59"))  # last month
    costed_task(store, 0.004, ts("2025-06-01T00:00:00"), route="a")
    costed_task(store, None, ts("2025-06-02T00:00:00"))  # no cost known
    guard = BudgetGuard(BudgetConfig(monthly_usd=0.01), store, Clock(JUNE))
    caplog.set_level(logging.WARNING, "taskyard.run.budget")
    first = guard.check()
    assert (first.spent_usd, first.state) == (0.004, "ok")
    assert caplog.records == []
    costed_task(store, 0.004, ts("2025-06-03T00:00:00"), route="b")  # 80 %
    assert guard.check().state == "alert"
    assert guard.check().state == "alert"
    costed_task(store, 0.003, ts("2025-06-04T00:00:00"))
    assert guard.check().exhausted
    assert guard.check().exhausted
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["monthly budget nearly spent", "monthly budget exhausted: new tasks wait"]
    assert caplog.records[0].__dict__["used_ratio"] == 0.8
    assert guard.gauges() == (pytest.approx(0.011), 0.01)
    data = report(guard.config, store, JUNE)
    assert (data["state"], data["waiting"], data["tasks"]) == ("exhausted", 0, 3)
    assert data["by_route"] == [
        {"route": "a", "cost_usd": 0.004, "tasks": 1},
        {"route": "b", "cost_usd": 0.004, "tasks": 1},
        {"route": "r", "cost_usd": 0.003, "tasks": 1},
    ]


def test_without_a_budget_the_guard_reads_nothing() -> None:
    store = MemoryStore()
    costed_task(store, 99.0, JUNE)
    guard = BudgetGuard(BudgetConfig(), store, Clock(JUNE))
    position = guard.check()
    assert (position.state, position.exhausted, position.spent_usd) == ("none", False, 0.0)


# --- the wait ------------------------------------------------------------------------------


def queued(store: MemoryStore) -> Task:
    task = Task(new_id(), new_id(), "r", "a", TaskStatus.QUEUED, Priority.P2, JUNE, JUNE, "wf")
    store.record_routing([], [task])
    return task


async def test_a_task_waits_while_the_budget_is_spent_and_starts_when_the_month_turns() -> None:
    store = MemoryStore()
    costed_task(store, 0.02, JUNE)
    clock = Clock(JUNE)
    told: list[tuple[str, str]] = []

    async def tell(task: Task, position: Position) -> None:
        told.append((task.id, waiting_notice(position)))

    config = BudgetConfig(monthly_usd=0.01, recheck_seconds=0.05)
    wait = BudgetWait(BudgetGuard(config, store, clock), tell, poll_seconds=0.02, clock=clock)
    task = queued(store)
    assert not await wait.allows()
    waiting = asyncio.create_task(wait.until_allowed(task))
    await asyncio.sleep(0.3)  # several rechecks
    assert not waiting.done()
    held = store.get_task(task.id)
    assert (held.status, held.reason, waiting_reason(held)) == (
        TaskStatus.QUEUED, BUDGET_EXHAUSTED, BUDGET_EXHAUSTED
    )  # fmt: skip
    assert report(config, store, JUNE)["waiting"] == 1
    assert told == [(task.id, waiting_notice(Position("2025-06", 0.02, 0.01)))]
    assert "$0.01" in told[0][1] and "exhausted" in told[0][1]
    clock.now = ts("2025-07-01T00:00:01")
    started = await asyncio.wait_for(waiting, 5)
    assert started.id == task.id and not started.cancel_requested
    assert len(told) == 1  # told once


async def test_a_waiting_task_comes_back_at_once_when_cancelled() -> None:
    store = MemoryStore()
    costed_task(store, 1.0, JUNE)
    config = BudgetConfig(monthly_usd=0.5, recheck_seconds=60)
    wait = BudgetWait(BudgetGuard(config, store, Clock(JUNE)), None, poll_seconds=0.02)
    task = queued(store)
    waiting = asyncio.create_task(wait.until_allowed(task))
    await asyncio.sleep(0.1)
    assert store.transition(task.id, Kind.REQUEST_CANCEL, updated_at=JUNE)
    back = await asyncio.wait_for(waiting, 5)
    assert back.cancel_requested


async def test_a_task_with_budget_left_starts_without_being_held() -> None:
    store = MemoryStore()
    costed_task(store, 0.001, JUNE)
    wait = BudgetWait(BudgetGuard(BudgetConfig(monthly_usd=0.01), store, Clock(JUNE)))
    task = queued(store)
    assert await wait.allows()
    assert (await wait.until_allowed(task)).id == task.id
    assert store.get_task(task.id).reason is None
    assert waiting_reason(store.get_task(task.id)) is None
