"""Judging an agent's run: what its report says about the task (`judge`), and, for a run that gave
no usable result, why (`agent_failure`: a `taskyard_agent_failures_total` reason, and the
task's `ending`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from taskyard.agents.base import AgentOutcome
from taskyard.agents.stops import Stop
from taskyard.agents.supervisor import RunReport, RunStatus
from taskyard.lifecycle import EndingKind
from taskyard.models import TaskStatus
from taskyard.run.ending import Ending
from taskyard.run.results import MAX_RESULT_DEPTH, nested_deeper, validation_errors

# How an agent's run that gave no usable result ended its task (by `agent_failure`'s reason).
FAILED_AS = {
    "timed_out": EndingKind.TIMED_OUT,
    "no_result": EndingKind.NO_RESULT,
    "invalid_result": EndingKind.INVALID_RESULT,
    "budget_exceeded": EndingKind.BUDGET_EXCEEDED,
    "cost_exceeded": EndingKind.COST_EXCEEDED,
    "tools_failed": EndingKind.TOOLS_FAILED,
    "not_started": EndingKind.NOT_STARTED,
    "crashed": EndingKind.AGENT_CRASHED,
    "failed": EndingKind.AGENT_FAILED,
}

# The limits whose stop has a failure reason of its own.
_STOPPED_FOR = {Stop.TOOL_BUDGET: "budget_exceeded", Stop.COST_CEILING: "cost_exceeded"}


def judge(report: RunReport, schema: Mapping[str, Any]) -> Ending:
    """The ending the run's report gives: its own status unless it succeeded; a success only
    with a result that is stored whole and validates against the route's schema."""
    outcome = report.outcome
    status = TaskStatus(report.status)
    took = (report.ended_at - report.started_at).total_seconds()
    if status is not TaskStatus.SUCCEEDED:
        kind = EndingKind.CANCELLED if status is TaskStatus.CANCELLED else EndingKind.FAILED
        return Ending(status, report.reason, outcome, agent_seconds=took, kind=kind)
    if outcome is None or outcome.result is None:
        reason = "the agent returned no result"
        return Ending(TaskStatus.FAILED, reason, outcome, None, took, kind=EndingKind.NO_RESULT)
    invalid = EndingKind.INVALID_RESULT
    if nested_deeper(outcome.result):  # too deep to store: neither kept nor validated
        reason = f"invalid result: nested deeper than {MAX_RESULT_DEPTH} levels"
        kept = replace(outcome, result=None)
        return Ending(TaskStatus.FAILED, reason, kept, None, took, kind=invalid)
    errors = validation_errors(outcome.result, schema)
    if errors:
        reason = "invalid result: " + "; ".join(errors)
        return Ending(TaskStatus.FAILED, reason, outcome, outcome.result, took, kind=invalid)
    ok = EndingKind.SUCCEEDED
    return Ending(TaskStatus.SUCCEEDED, None, outcome, outcome.result, took, kind=ok)


def agent_failure(report: RunReport, ending: Ending) -> str | None:
    """Why the agent's run gave no usable result (a `taskyard_agent_failures_total` reason),
    or None when it did, or when it was cancelled."""
    if ending.status is TaskStatus.SUCCEEDED or report.status is RunStatus.CANCELLED:
        return None
    if report.status is RunStatus.TIMED_OUT:
        return "timed_out"
    if report.status is RunStatus.SUCCEEDED:  # the agent ended well; its result did not
        return "no_result" if ending.result is None else "invalid_result"
    if report.stopped_by is not None and report.stopped_by in _STOPPED_FOR:
        return _STOPPED_FOR[report.stopped_by]
    if _every_tool_failed(report.outcome):
        return "tools_failed"
    if report.exit_code is None:
        return "not_started"
    return "crashed" if report.exit_code < 0 else "failed"


def _every_tool_failed(outcome: AgentOutcome | None) -> bool:
    """An answer, but every tool call before it had failed (`flag_failed_tools`)."""
    if outcome is None or outcome.result is None:
        return False
    return 0 < outcome.tool_calls <= outcome.usage.tool_errors
