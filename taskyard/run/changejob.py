"""What a change task's run works with (`taskyard.run.change`): the gates' answer shapes, the
job (who does what, where, within which bounds, and what it has done so far), and the small
helpers its parts share."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from taskyard.agents.base import Usage
from taskyard.agents.supervisor import RunReport
from taskyard.lifecycle import EndingKind, Gate
from taskyard.models import TaskStatus
from taskyard.records import Approval
from taskyard.review.hash import git
from taskyard.review.safety import ChangeLimits
from taskyard.run.ending import Ending
from taskyard.run.testgate import TestReport

# What each agent answers (strict shapes: every property required, nothing else).
PLAN_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["plan", "summary"],
    "properties": {
        "plan": {"type": "string", "description": "the plan, in markdown"},
        "summary": {"type": "string", "description": "one sentence"},
    },
}
CHANGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["title", "summary"],
    "properties": {
        "title": {"type": "string", "description": "the commit's subject line"},
        "summary": {"type": "string", "description": "what changed and why"},
    },
}
VERDICT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["verdict", "findings", "summary"],
    "properties": {
        "verdict": {"type": "string", "enum": ["approve", "needs_revision"]},
        "findings": {"type": "array", "items": {"type": "string"}},
        "summary": {"type": "string"},
    },
}
COMMITTER = "taskyard <taskyard@users.noreply.github.com>"

# (agent name, prompt template, its round, schema, session to resume) → the run's report
AgentCall = Callable[[str, str, int, Mapping[str, Any], str | None], Awaitable[RunReport]]
RunTests = Callable[[], Awaitable[TestReport]]
# (the commit, its Review-Hash, the change's title and summary) → what was delivered, in words
Deliver = Callable[[str, str, str, str], Awaitable[str]]


class PersonAsk(Protocol):
    """A person's review through approvals (`taskyard.run.personreview`), for one task."""

    async def ask_if_needed(
        self, round_: int, review_hash: str, diff: str, summary: str
    ) -> Approval | None:
        """The request raised when the change's risk needs a person, else None."""
        ...

    async def decision(self, round_: int) -> Approval | None:
        """The request of round `round_` as it stands now."""
        ...


class GateFailed(Exception):
    """A gate said no: the task ends with this ending."""

    def __init__(self, ending: Ending) -> None:
        super().__init__(ending.reason)
        self.ending = ending


@dataclass(frozen=True, slots=True)
class Verdict:
    approved: bool
    findings: tuple[str, ...]
    summary: str
    session: str  # the reviewer's session id: what the approval is recorded under


@dataclass
class ChangeJob:
    """One change task's run: who does what, where, and with which bounds."""

    task_id: str
    agent: str
    reviewer: str | None
    gates: tuple[Gate, ...]
    repo: Path  # the worktree
    context_dir: Path
    output_dir: Path
    call: AgentCall
    run_tests: RunTests
    deliver: Deliver | None
    max_revisions: int = 3
    limits: ChangeLimits = field(default_factory=ChangeLimits)
    base: str | None = None  # what the change is measured against (default: the worktree's HEAD)
    person: PersonAsk | None = None  # a person's review, when the change's risk demands one
    # filled in as the run goes
    record: list[dict[str, Any]] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    session: str | None = None  # the implementing agent's, continued from gate to gate
    answer: dict[str, Any] = field(default_factory=dict)  # the last implement round's
    seconds: float = 0.0  # the agents' own time
    tool_calls: int = 0  # every gate's runs', the reviewer's too
    approved_by: str | None = None  # the person whose review approved it, in words


WAITING = Ending(TaskStatus.WAITING, "waiting for its subtasks")
# Steps that wait keep in the record what the run needs when it is back.
KEPT_IN_RECORD = ("answer", "review_hash", "reviewer_session", "approval")
LEFT = Ending(TaskStatus.CANCELLED, "the task left its attempt", kind=EndingKind.CANCELLED)


def findings_text(verdict: Verdict) -> str:
    lines = [f"- {f}" for f in verdict.findings] or ["- (no findings given)"]
    return f"# The reviewer asks for revisions\n\n{verdict.summary}\n\n" + "\n".join(lines) + "\n"


def write_text(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def staged_diff(repo: Path, base: str | None) -> str:
    args = ["diff", "--cached", "--no-ext-diff", "--no-textconv", "--no-color"]
    return git(repo, *args, *([base] if base else [])).decode("utf-8", "replace")


def added_usage(a: Usage, b: Usage) -> Usage:
    cost = (
        None if a.cost_usd is None and b.cost_usd is None else (a.cost_usd or 0) + (b.cost_usd or 0)
    )
    return Usage(
        a.input_tokens + b.input_tokens,
        a.cached_input_tokens + b.cached_input_tokens,
        a.output_tokens + b.output_tokens,
        a.reasoning_tokens + b.reasoning_tokens,
        cost,
        a.tool_errors + b.tool_errors,
    )


def carried_usage(usage: Mapping[str, Any]) -> Usage:
    """What a task's earlier attempts used, as its `usage` column keeps it (a change task back
    from its subtasks goes on counting from there)."""

    def number(key: str) -> int:
        value = usage.get(key)
        return int(value) if isinstance(value, int | float) else 0

    cost = usage.get("cost_usd")
    return Usage(
        number("input_tokens"),
        number("cached_input_tokens"),
        number("output_tokens"),
        number("reasoning_tokens"),
        float(cost) if isinstance(cost, int | float) else None,
        number("tool_errors"),
    )
