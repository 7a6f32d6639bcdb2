"""What stops a supervised run: each stop's reason for people and its `stopped_by` for the
run stage, and the tool-call and cost tripwires the watchers wait on."""

from __future__ import annotations

from taskyard.agents.base import Usage
from taskyard.agents.fake import fake_report
from taskyard.agents.sandbox import SandboxSettings
from taskyard.agents.stops import WATCHERS, Stop, Tripwires, cost_over, describe
from taskyard.agents.supervisor import Limits, RunStatus

LIMITS = Limits(
    timeout_seconds=5,
    max_tool_calls=3,
    max_cost_usd=0.5,
    sandbox=SandboxSettings(memory_bytes=2 * 1024**3),
)


def test_each_stop_has_its_reason() -> None:
    assert describe(Stop.TIMEOUT, LIMITS) == "timed out after 5 s"
    assert describe(Stop.TOOL_BUDGET, LIMITS) == "tool-call budget of 3 exceeded"
    assert describe(Stop.COST_CEILING, LIMITS) == "cost ceiling $0.5 exceeded"
    assert describe(Stop.CANCEL, LIMITS) == "cancelled"
    assert describe(Stop.MEMORY, LIMITS).startswith("memory limit of 2 GiB exceeded")
    assert describe(Stop.DISK, LIMITS).startswith("disk nearly full")


def test_a_cost_stop_says_what_was_spent() -> None:
    spent = Usage(cost_usd=0.75)
    assert describe(Stop.COST_CEILING, LIMITS, spent) == "cost ceiling $0.5 exceeded ($0.75 so far)"
    assert describe(Stop.COST_CEILING, LIMITS, spent, "in all").endswith("($0.75 in all)")
    assert describe(Stop.TOOL_BUDGET, LIMITS, spent) == "tool-call budget of 3 exceeded"


def test_stopped_by_values_are_plain_words() -> None:
    assert [str(s) for s in Stop] == [
        "timeout",
        "tool_budget",
        "cost_ceiling",
        "cancelled",
        "memory",
        "disk",
    ]
    assert {stop for stop, _ in WATCHERS} == set(Stop) - {Stop.TIMEOUT}  # the deadline's


def test_the_tripwires_trip_past_their_limits() -> None:
    wires = Tripwires(max_tool_calls=3, max_cost_usd=0.5)
    wires.check(3, Usage(cost_usd=0.5))
    assert not wires.over_budget.is_set() and not wires.over_cost.is_set()
    wires.check(4, None)
    assert wires.over_budget.is_set() and not wires.over_cost.is_set()
    wires.check(0, Usage(cost_usd=0.51))
    assert wires.over_cost.is_set()
    assert not cost_over(None, Usage(cost_usd=99)) and not cost_over(1.0, Usage())


def test_a_fake_report_is_stopped_like_a_real_one() -> None:
    assert fake_report(RunStatus.TIMED_OUT).stopped_by == "timeout"
    assert fake_report(RunStatus.CANCELLED).stopped_by == "cancelled"
    assert fake_report(RunStatus.FAILED).stopped_by is None
    assert fake_report(RunStatus.FAILED, stopped_by=Stop.TOOL_BUDGET).stopped_by == "tool_budget"
