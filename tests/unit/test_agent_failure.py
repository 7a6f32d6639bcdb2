"""Why an agent run gave no usable result: the fixed reasons of
`taskyard_agent_failures_total`."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from taskyard.agents.base import AgentOutcome, Usage, flag_failed_tools
from taskyard.agents.stops import Stop
from taskyard.agents.supervisor import RunReport, RunStatus
from taskyard.models import TaskStatus
from taskyard.observe.metrics import AGENT_FAILURE_REASONS
from taskyard.run.ending import Ending
from taskyard.run.judging import agent_failure

NOW = datetime.now(UTC)
OK = AgentOutcome(True, {"success": True}, None)


def report(
    status: RunStatus, reason: str | None, exit_code: int | None, stopped_by: Stop | None = None
) -> RunReport:
    return RunReport(status, reason, exit_code, None, NOW, NOW, None, stopped_by=stopped_by)


@pytest.mark.parametrize(
    ("run", "ending", "reason"),
    [
        (report(RunStatus.FAILED, "agent exited 3", 3), TaskStatus.FAILED, "failed"),
        (report(RunStatus.FAILED, "killed by SIGSEGV", -11), TaskStatus.FAILED, "crashed"),
        (
            report(RunStatus.TIMED_OUT, "timed out after 5 s", -15),
            TaskStatus.TIMED_OUT,
            "timed_out",
        ),
        (
            report(RunStatus.FAILED, "tool-call budget of 3 exceeded", -15, Stop.TOOL_BUDGET),
            TaskStatus.FAILED,
            "budget_exceeded",
        ),
        (
            report(RunStatus.FAILED, "cost ceiling $1 exceeded", -15, Stop.COST_CEILING),
            TaskStatus.FAILED,
            "cost_exceeded",
        ),
        (
            report(RunStatus.FAILED, "could not prepare the agent: no binary", None),
            TaskStatus.FAILED,
            "not_started",
        ),
        (report(RunStatus.CANCELLED, "cancelled", -15), TaskStatus.CANCELLED, None),
        (report(RunStatus.SUCCEEDED, None, 0), TaskStatus.SUCCEEDED, None),
    ],
)
def test_a_run_that_ended_badly_has_one_reason(
    run: RunReport, ending: TaskStatus, reason: str | None
) -> None:
    assert agent_failure(run, Ending(ending, run.reason)) == reason
    assert reason is None or reason in AGENT_FAILURE_REASONS


def test_a_clean_exit_without_a_usable_result() -> None:
    run = report(RunStatus.SUCCEEDED, None, 0)
    missing = Ending(TaskStatus.FAILED, "the agent returned no result", OK, None)
    invalid = Ending(TaskStatus.FAILED, "invalid result: 'summary' is required", OK, {"x": 1})
    assert agent_failure(run, missing) == "no_result"
    assert agent_failure(run, invalid) == "invalid_result"


def test_an_answer_after_every_tool_call_failed() -> None:
    failed = flag_failed_tools(
        AgentOutcome(True, {"success": True}, None, Usage(tool_errors=2), tool_calls=2), "x"
    )
    run = replace(report(RunStatus.FAILED, failed.error, 0), outcome=failed)
    assert agent_failure(run, Ending(TaskStatus.FAILED, run.reason, failed)) == "tools_failed"
    assert "tools_failed" in AGENT_FAILURE_REASONS
    # the model API failing after a failed command is not that
    api = AgentOutcome(False, None, "model API error: 500", Usage(tool_errors=1), tool_calls=1)
    run = replace(report(RunStatus.FAILED, api.error, 1), outcome=api)
    assert agent_failure(run, Ending(TaskStatus.FAILED, run.reason, api)) == "failed"
