"""Cost control: what agents spend, per task, route, day and month, against a budget.

- **Spend** is the cost tasks recorded (claude reports its own; codex's is computed from its
  tokens and the price table), counted in the UTC day and month its agent started.
- **Monthly budget** (`budget.monthly_usd`): at `alert_at` of it (80 %) a warning is logged
  once a month and the gauges say so; once it is spent, new tasks wait: they stay `queued`
  with the reason `budget exhausted`, their source is told once, and they start when the
  budget is raised (a restart with the new config picks them up) or the month turns (they
  look again every `recheck_seconds`). Tasks already running finish.
- **Per-task ceiling** (`budget.per_task_usd`): the supervisor stops a run whose cost so far
  passes it (see `taskyard.agents.supervisor`): the task ends `failed` with `cost ceiling $X
  exceeded`. Cost is known mid-run where the agent's stream tells it: claude's per-message
  tokens priced by the table (else its reported cost at the end), codex's tokens at the end
  of its turn, a command agent's `usage` lines as it prints them.
- **Prices** (`budget.prices`): model → USD per million tokens; an agent's own
  `*_usd_per_mtok` keys win over the table.

Several tasks starting at once while the budget is nearly spent may together pass it: the
stop applies to tasks starting after the spend is recorded.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial

from taskyard.config import AgentConfig, BudgetConfig, ModelPrice
from taskyard.lifecycle import Kind
from taskyard.models import Task, TaskStatus
from taskyard.store.base import Store, TaskCost, TaskFilter

log = logging.getLogger(__name__)

BUDGET_EXHAUSTED = "budget exhausted"
CANCEL_POLL_SECONDS = 2.0  # how often a waiting task looks for a cancel
PRICE_KEYS = ("input_usd_per_mtok", "cached_input_usd_per_mtok", "output_usd_per_mtok")


def month_of(now: float) -> str:
    """`2025-06`: the UTC month `now` falls in."""
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m")


def day_of(ts: float) -> str:
    """`2025-06-30`: the UTC day `ts` falls in."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


def month_bounds(now: float) -> tuple[float, float]:
    """[start, end) of the UTC calendar month `now` falls in, as epoch seconds."""
    moment = datetime.fromtimestamp(now, UTC)
    start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if start.month == 12:
        end = start.replace(year=start.year + 1, month=1)
    else:
        end = start.replace(month=start.month + 1)
    return start.timestamp(), end.timestamp()


def parse_month(text: str) -> float:
    """The start of the UTC month `YYYY-MM`; ValueError for anything else."""
    try:
        moment = datetime.strptime(text.strip(), "%Y-%m").replace(tzinfo=UTC)
    except ValueError:
        raise ValueError(f"not a month (YYYY-MM): {text!r}") from None
    return moment.timestamp()


def money(usd: float) -> str:
    """`$0.01`, `$12.5`, `$0.000123`: a price as people write it (no float noise)."""
    return f"${usd:.6f}".rstrip("0").rstrip(".") if usd else "$0"


@dataclass(frozen=True, slots=True)
class Position:
    """Where one month stands against the budget."""

    month: str
    spent_usd: float
    limit_usd: float | None  # None: no budget
    alert_at: float = 0.8

    @property
    def ratio(self) -> float | None:
        """Spent / limit (1.0 and above: exhausted); None without a budget. A budget of 0
        is exhausted from the start."""
        if self.limit_usd is None:
            return None
        if self.limit_usd == 0:
            return 1.0 if self.spent_usd <= 0 else float("inf")
        return self.spent_usd / self.limit_usd

    @property
    def exhausted(self) -> bool:
        return self.limit_usd is not None and self.spent_usd >= self.limit_usd

    @property
    def alerting(self) -> bool:
        ratio = self.ratio
        return ratio is not None and ratio >= self.alert_at

    @property
    def state(self) -> str:
        """`none` (no budget), `ok`, `alert` (at `alert_at` or over) or `exhausted`."""
        if self.limit_usd is None:
            return "none"
        return "exhausted" if self.exhausted else "alert" if self.alerting else "ok"

    def to_json(self) -> dict[str, object]:
        ratio = self.ratio
        return {
            "month": self.month,
            "spent_usd": round(self.spent_usd, 6),
            "limit_usd": self.limit_usd,
            "used_ratio": None if ratio is None else round(ratio, 6),
            "alert_at": self.alert_at,
            "state": self.state,
        }


@dataclass(frozen=True, slots=True)
class Breakdown:
    """The spend of a window, by route and by UTC day (both sorted), and its total."""

    total_usd: float
    tasks: int
    by_route: tuple[tuple[str, float, int], ...]  # (route, usd, tasks)
    by_day: tuple[tuple[str, float, int], ...]  # (YYYY-MM-DD, usd, tasks)

    def to_json(self) -> dict[str, object]:
        def rows(key: str, items: Iterable[tuple[str, float, int]]) -> list[dict[str, object]]:
            return [{key: k, "cost_usd": round(usd, 6), "tasks": n} for k, usd, n in items]

        return {
            "total_usd": round(self.total_usd, 6),
            "tasks": self.tasks,
            "by_route": rows("route", self.by_route),
            "by_day": rows("day", self.by_day),
        }


def breakdown(costs: Sequence[TaskCost]) -> Breakdown:
    """Sum the tasks' costs by route and by the UTC day their agent started."""
    routes: dict[str, tuple[float, int]] = {}
    days: dict[str, tuple[float, int]] = {}
    for c in costs:
        for table, key in ((routes, c.route), (days, day_of(c.started_at))):
            usd, n = table.get(key, (0.0, 0))
            table[key] = (usd + c.cost_usd, n + 1)
    return Breakdown(
        sum(c.cost_usd for c in costs),
        len(costs),
        tuple((k, usd, n) for k, (usd, n) in sorted(routes.items())),
        tuple((k, usd, n) for k, (usd, n) in sorted(days.items())),
    )


def priced(agent: AgentConfig, prices: Mapping[str, ModelPrice]) -> AgentConfig:
    """The agent with its model's prices from the table, unless it has prices of its own."""
    own = agent.input_usd_per_mtok is not None or agent.output_usd_per_mtok is not None
    table = prices.get(agent.model or "")
    if own or table is None:
        return agent
    return agent.model_copy(update={k: getattr(table, k) for k in PRICE_KEYS})


def unpriced_agents(
    agents: Mapping[str, AgentConfig], prices: Mapping[str, ModelPrice]
) -> list[str]:
    """The codex agents with no price: their runs report tokens only, so they cost $0 to the
    budget and the per-task ceiling never stops them."""
    return sorted(
        name
        for name, agent in agents.items()
        if agent.kind == "codex" and priced(agent, prices).input_usd_per_mtok is None
    )


def waiting_notice(position: Position) -> str:
    """What a task's source is told when the task waits for the budget (kept stable for a
    given limit, so that telling it again is recognised as the same message)."""
    limit = money(position.limit_usd or 0.0)
    return (
        f"taskyard's monthly budget ({limit}) is exhausted: this task waits and starts when "
        "the budget is raised or the month turns."
    )


@dataclass
class BudgetGuard:
    """Reads this month's spend from the store and says whether new tasks may start; logs
    the 80 % alert and the exhaustion once per month (per process)."""

    config: BudgetConfig
    store: Store
    clock: Callable[[], float] = time.time
    _warned: dict[str, str] = field(default_factory=dict)  # month → the last state logged

    @property
    def enabled(self) -> bool:
        return self.config.monthly_usd is not None

    def position(self, now: float | None = None) -> Position:
        """This month's spend against the budget (a store read)."""
        now = self.clock() if now is None else now
        start, end = month_bounds(now)
        spent = self.store.spent_between(start, end)
        return Position(month_of(now), spent, self.config.monthly_usd, self.config.alert_at)

    def check(self) -> Position:
        """The position now, logging a warning the first time this month it reaches the
        alert level, and again when it is exhausted."""
        if not self.enabled:
            return Position(month_of(self.clock()), 0.0, None, self.config.alert_at)
        pos = self.position()
        state = pos.state
        if state in ("alert", "exhausted") and self._warned.get(pos.month) != state:
            self._warned[pos.month] = state
            message = (
                "monthly budget exhausted: new tasks wait"
                if state == "exhausted"
                else "monthly budget nearly spent"
            )
            log.warning(message, extra=_fields(pos))
        return pos

    def gauges(self) -> tuple[float, float | None]:
        """(spent this month, limit or None), for the metrics."""
        pos = self.position()
        return pos.spent_usd, pos.limit_usd


def _fields(pos: Position) -> dict[str, object]:
    ratio = pos.ratio
    return {
        "month": pos.month,
        "spent_usd": round(pos.spent_usd, 6),
        "limit_usd": pos.limit_usd,
        "used_ratio": None if ratio is None else round(ratio, 4),
    }


def waiting_reason(task: Task) -> str | None:
    """Why a queued task has not started (`budget exhausted`); None for any other task."""
    return task.reason if task.status is TaskStatus.QUEUED and task.reason else None


def report(config: BudgetConfig, store: Store, now: float) -> dict[str, object]:
    """The month of `now` against the budget, its spend by route and by day, and how many
    tasks wait for the budget (what `taskyard budget` shows)."""
    start, end = month_bounds(now)
    position = Position(
        month_of(now), store.spent_between(start, end), config.monthly_usd, config.alert_at
    )
    queued = store.list_tasks(TaskFilter(status=TaskStatus.QUEUED, limit=100_000))
    return {
        **position.to_json(),
        "per_task_usd": config.per_task_usd,
        "waiting": sum(1 for t in queued if t.reason == BUDGET_EXHAUSTED),
        **breakdown(store.costs_between(start, end)).to_json(),
    }


Tell = Callable[[Task, Position], Awaitable[None]]


@dataclass
class BudgetWait:
    """Holds a task that is about to start while the month's budget is spent: the task is
    (back to) `queued` with the reason `budget exhausted`, its source is told once (`tell`),
    and it looks at the budget again every `recheck_seconds`, at a cancel every
    `poll_seconds`. It holds no agent slot while it waits."""

    guard: BudgetGuard
    tell: Tell | None = None
    poll_seconds: float = CANCEL_POLL_SECONDS
    clock: Callable[[], float] = time.time

    async def allows(self) -> bool:
        """The budget lets a task start now."""
        return not (await asyncio.to_thread(self.guard.check)).exhausted

    async def until_allowed(self, task: Task) -> Task:
        """The task, read again, once the budget lets it start or a cancel was asked."""
        told = False
        store = self.guard.store
        while not task.cancel_requested:
            position = await asyncio.to_thread(self.guard.check)
            if not position.exhausted:
                return task
            if not told:
                await self._hold(task, position)
                told = True
            waited = 0.0
            while waited < self.guard.config.recheck_seconds and not task.cancel_requested:
                step = min(self.poll_seconds, self.guard.config.recheck_seconds - waited)
                await asyncio.sleep(step)
                waited += step
                task = await asyncio.to_thread(store.get_task, task.id)
        return task

    async def _hold(self, task: Task, position: Position) -> None:
        held = await asyncio.to_thread(
            partial(
                self.guard.store.transition,
                task.id,
                Kind.HOLD_FOR_BUDGET,
                reason=BUDGET_EXHAUSTED,
                updated_at=self.clock(),
            )
        )
        log.warning(
            "task waits: monthly budget exhausted",
            extra={"task_id": task.id, "route": task.route, **_fields(position)},
        )
        if held and self.tell is not None:
            await self.tell(task, position)
