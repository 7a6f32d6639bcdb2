"""How a run of a task ended (`Ending`), as every step of the run stage hands it on until it is
written to the task (`taskyard.run.finishing`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from taskyard.agents.base import AgentOutcome
from taskyard.lifecycle import EndingKind
from taskyard.models import TaskStatus
from taskyard.records import ActionRecord


@dataclass(frozen=True, slots=True)
class Ending:
    """How an attempt ended, ready to be written to the task."""

    status: TaskStatus
    reason: str | None
    outcome: AgentOutcome | None = None
    result: Mapping[str, Any] | None = None
    agent_seconds: float | None = None  # the agent's own wall time
    actions: tuple[ActionRecord, ...] = ()  # what applying the result's actions recorded
    kind: EndingKind = field(default=EndingKind.FAILED, kw_only=True)  # the `ending` column


CANCELLED_BEFORE_START = Ending(
    TaskStatus.CANCELLED, "cancelled before start", kind=EndingKind.CANCELLED_BEFORE_START
)


def internal_error(exc: Exception, result: Mapping[str, Any] | None = None) -> Ending:
    """The ending of a step that raised what is not a TaskyardError: a bug, which must still
    end the task in a clear state."""
    reason = f"internal error: {type(exc).__name__}: {exc}"
    return Ending(TaskStatus.FAILED, reason, result=result, kind=EndingKind.INTERNAL_ERROR)


def usage_columns(outcome: AgentOutcome | None) -> dict[str, Any]:
    """The agent's usage and cost, as the task's columns keep them."""
    if outcome is None:
        return {}
    usage = outcome.usage.to_json() | {"tool_calls": outcome.tool_calls}
    return {"usage": usage, "cost_usd": outcome.usage.cost_usd}
