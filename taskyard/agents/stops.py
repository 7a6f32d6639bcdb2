"""Why a supervised run is stopped before its agent ends on its own, and the watchers that see it.

Each `Stop` is one reason; its value is what `RunReport.stopped_by` holds, so callers (the run
stage's failure metrics) never parse the human-readable reason. `WATCHERS` is the table the
supervisor iterates while the agent runs: each entry gives an awaitable that completes once its
stop applies (or nothing, when the watch is off for this run). The timeout is not a watcher:
the supervisor's wait has a deadline.

The tool-call budget and the cost ceiling are crossed by what the agent prints, so the
supervisor reports each stdout line's counts to `Tripwires`, whose events the watchers wait on.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taskyard.agents.base import Usage
from taskyard.agents.box import Box
from taskyard.agents.diskfloor import below_floor, floor_for

if TYPE_CHECKING:
    from taskyard.agents.supervisor import Limits

__all__ = ["WATCHERS", "Stop", "Tripwires", "Watch", "cost_over", "describe", "start_watchers"]


class Stop(enum.StrEnum):
    """What stopped a run (`RunReport.stopped_by`)."""

    TIMEOUT = "timeout"
    TOOL_BUDGET = "tool_budget"
    COST_CEILING = "cost_ceiling"
    CANCEL = "cancelled"
    MEMORY = "memory"
    DISK = "disk"


_REASONS: dict[Stop, Callable[[Limits], str]] = {
    Stop.TIMEOUT: lambda lim: f"timed out after {lim.timeout_seconds:g} s",
    Stop.TOOL_BUDGET: lambda lim: f"tool-call budget of {lim.max_tool_calls} exceeded",
    Stop.COST_CEILING: lambda lim: f"cost ceiling ${lim.max_cost_usd:g} exceeded",
    Stop.CANCEL: lambda lim: "cancelled",
    Stop.MEMORY: lambda lim: (
        f"memory limit of {lim.sandbox.memory_bytes / 1024**3:g} GiB exceeded: the kernel "
        "killed a process of the task (OOM); the task was stopped"
    ),
    Stop.DISK: lambda lim: (
        "disk nearly full: free space on the workspace's filesystem fell below the task's "
        "floor (runs.min_free_disk_bytes, at most half the space free at its start); the task "
        "was stopped"
    ),
}


def describe(stop: Stop, limits: Limits, usage: Usage | None = None, spent: str = "so far") -> str:
    """The run report's reason for `stop`; a cost stop says what was spent (`spent`: "so far"
    while the agent ran, "in all" when only its final account showed it)."""
    reason = _REASONS[stop](limits)
    if stop is Stop.COST_CEILING and usage is not None and usage.cost_usd is not None:
        reason += f" (${usage.cost_usd:g} {spent})"
    return reason


def cost_over(ceiling: float | None, usage: Usage | None) -> bool:
    """The usage's known cost is past the ceiling (None: no ceiling, or no cost known)."""
    cost = usage.cost_usd if usage is not None else None
    return ceiling is not None and cost is not None and cost > ceiling


@dataclass
class Tripwires:
    """The limits the agent's output can cross, as events a watcher can wait on."""

    max_tool_calls: int
    max_cost_usd: float | None
    over_budget: asyncio.Event = field(default_factory=asyncio.Event)
    over_cost: asyncio.Event = field(default_factory=asyncio.Event)

    def check(self, tool_calls: int, usage: Usage | None) -> None:
        """Called after each stdout line with the counts so far."""
        if tool_calls > self.max_tool_calls:
            self.over_budget.set()
        if cost_over(self.max_cost_usd, usage):
            self.over_cost.set()


@dataclass(frozen=True)
class Watch:
    """What the watchers of one run look at."""

    wires: Tripwires
    box: Box
    workspace: Path
    min_free_disk_bytes: int
    cancel: asyncio.Event | None


def _disk(watch: Watch) -> Awaitable[None] | None:
    floor = floor_for(watch.workspace, watch.min_free_disk_bytes)
    return below_floor(watch.workspace, floor) if floor else None


def _cancel(watch: Watch) -> Awaitable[object] | None:
    return watch.cancel.wait() if watch.cancel is not None else None


Watcher = Callable[[Watch], Awaitable[object] | None]

WATCHERS: tuple[tuple[Stop, Watcher], ...] = (
    (Stop.TOOL_BUDGET, lambda w: w.wires.over_budget.wait()),
    (Stop.COST_CEILING, lambda w: w.wires.over_cost.wait()),
    (Stop.CANCEL, _cancel),
    (Stop.MEMORY, lambda w: w.box.wait_oom()),
    (Stop.DISK, _disk),
)


def start_watchers(watch: Watch) -> dict[asyncio.Future[Any], Stop]:
    """One task per watcher that is on for this run, mapped to the stop it reports."""
    started: dict[asyncio.Future[Any], Stop] = {}
    for stop, watcher in WATCHERS:
        waiting = watcher(watch)
        if waiting is not None:
            started[asyncio.ensure_future(waiting)] = stop
    return started
