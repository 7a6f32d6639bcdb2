"""A change task's run (a route with `mode: change`): its gates, in order, each one entered and
left as a recorded transition (`Store.enter_gate`: the task's `gate` and `gates` columns and an
audit entry, in one transaction).

    plan → plan_review → implement → test → review → commit

- plan: the implementing agent writes its plan (`outputs/plan.md`, or `plan` in its answer)
  and changes nothing.
- plan_review, review: the reviewer (another agent; by default the other CLI) answers
  approve or needs_revision with findings. Needs-revision sends the work back to plan or
  implement, at most `max_revisions` times; each round is recorded. A verdict counts only with
  the reviewer's own session id (`taskyard.audit.check_session_id`: placeholders refused).
- implement: the implementing agent, continuing its planning session, changes the worktree;
  taskyard stages everything it changed.
- test: taskyard runs the route's test commands itself, in the agent's box
  (`taskyard.run.testgate`); the exit codes and the output's tail are recorded, never the
  agent's word.
- review approves a staged state; its Review-Hash (`taskyard.review.hash.staged_hash`) is
  recorded, and the safety checks (size, secrets) run on that state.
- commit: taskyard commits only the state review approved (`commit_with_review_hash`), then
  hands the commit to `deliver` (a suggestion review or a push; `taskyard.run.delivery`).

Gates turned off in the route's configuration are recorded as skipped. The agents never
commit, push or hold a token: the worktree's commits are taskyard's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

from taskyard.agents.base import AgentOutcome, Usage
from taskyard.agents.supervisor import RunReport
from taskyard.audit import check_session_id
from taskyard.exceptions import TaskyardError
from taskyard.lifecycle import REVISES, EndingKind, Gate, Kind
from taskyard.models import TaskStatus
from taskyard.review.commit import commit_with_review_hash
from taskyard.review.hash import git, git_env, staged_hash
from taskyard.review.safety import ChangeLimits, check_change
from taskyard.run.ending import Ending
from taskyard.run.subtasks import restore_work, save_work, unfinished
from taskyard.run.testgate import TestReport
from taskyard.store.base import Store

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
    # filled in as the run goes
    record: list[dict[str, Any]] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    session: str | None = None  # the implementing agent's, continued from gate to gate
    answer: dict[str, Any] = field(default_factory=dict)  # the last implement round's
    seconds: float = 0.0  # the agents' own time
    tool_calls: int = 0  # every gate's runs', the reviewer's too


class ChangeRun:
    """Runs a change task's gates and says how the task ended."""

    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    async def run(self, job: ChangeJob) -> Ending:
        try:
            ending = await self._gates(job)
        except GateFailed as failed:
            ending = failed.ending
        return replace(ending, outcome=_outcome(job, ending), agent_seconds=job.seconds)

    async def _gates(self, job: ChangeJob) -> Ending:
        waited = _waited_in(job.record)
        if waited is not None:  # back from its subtasks: on from the test gate
            await self._back_from_subtasks(job, waited)
            reviewed = await self._implement_until_approved(job, waited, implemented=True)
            return await self._commit(job, *reviewed)
        for gate in (Gate.PLAN, Gate.PLAN_REVIEW, Gate.REVIEW):
            if gate not in job.gates:
                await self._mark(job, gate, 0, "skipped", {"why": "turned off by configuration"})
        if Gate.PLAN in job.gates:
            await self._plan_until_approved(job)
        reviewed = await self._implement_until_approved(job)
        return await self._commit(job, *reviewed)

    # --- the gates --------------------------------------------------------------------------

    async def _plan_until_approved(self, job: ChangeJob) -> None:
        for round_ in range(1, job.max_revisions + 2):
            await self._plan(job, round_)
            if Gate.PLAN_REVIEW not in job.gates:
                return
            verdict = await self._review(job, Gate.PLAN_REVIEW, round_)
            if verdict.approved:
                return
            _write(job.context_dir / "plan-findings.md", _findings(verdict))
        raise _refused_after(job, Gate.PLAN_REVIEW)

    async def _plan(self, job: ChangeJob, round_: int) -> None:
        await self._mark(job, Gate.PLAN, round_, "entered")
        result, _ = await self._agent(job, Gate.PLAN, round_, job.agent, PLAN_SCHEMA, resume=True)
        plan_file = job.output_dir / "plan.md"
        if not plan_file.is_file() or not plan_file.read_text("utf-8", "replace").strip():
            _write(plan_file, str(result.get("plan") or ""))
        if not plan_file.read_text("utf-8", "replace").strip():
            await self._mark(job, Gate.PLAN, round_, "failed", {"why": "no plan"})
            raise GateFailed(
                Ending(TaskStatus.FAILED, "plan: the agent wrote no plan", kind=EndingKind.FAILED)
            )
        await self._mark(job, Gate.PLAN, round_, "passed", {"summary": _short(result)})

    async def _implement_until_approved(
        self, job: ChangeJob, first: int = 1, *, implemented: bool = False
    ) -> tuple[str, str, dict[str, Any]]:
        """(the approved Review-Hash, the reviewer's session, the implementer's answer).
        `implemented`: round `first` was implemented before the task waited for subtasks."""
        answer: dict[str, Any] = dict(job.answer)
        for round_ in range(first, job.max_revisions + 2):
            if not (implemented and round_ == first):
                answer = await self._implement(job, round_)
                if await self._wait_for_subtasks(job, round_, answer):
                    raise GateFailed(_WAITING)
            await self._test(job, round_)
            await self._safety(job, round_)
            reviewed = await asyncio.to_thread(staged_hash, job.repo)
            if Gate.REVIEW not in job.gates:
                return reviewed, "", answer
            verdict = await self._review(job, Gate.REVIEW, round_, reviewed)
            if verdict.approved:
                return reviewed, verdict.session, answer
            _write(job.context_dir / "review-findings.md", _findings(verdict))
        raise _refused_after(job, Gate.REVIEW)

    async def _implement(self, job: ChangeJob, round_: int) -> dict[str, Any]:
        await self._mark(job, Gate.IMPLEMENT, round_, "entered")
        answer, _ = await self._agent(
            job, Gate.IMPLEMENT, round_, job.agent, CHANGE_SCHEMA, resume=True
        )
        await asyncio.to_thread(git, job.repo, "add", "--all")
        diff = await asyncio.to_thread(_diff, job.repo, job.base)
        if not diff.strip():
            await self._mark(job, Gate.IMPLEMENT, round_, "failed", {"why": "nothing changed"})
            reason = "implement: the agent changed nothing"
            raise GateFailed(Ending(TaskStatus.FAILED, reason, kind=EndingKind.FAILED))
        _write(job.context_dir / "change.diff", diff)
        data = {"summary": _short(answer), "session": job.session}
        await self._mark(job, Gate.IMPLEMENT, round_, "passed", data)
        return answer

    async def _test(self, job: ChangeJob, round_: int) -> None:
        await self._mark(job, Gate.TEST, round_, "entered")
        report = await job.run_tests()
        data = {
            "commands": [
                {"command": r.command, "exit_code": r.exit_code, "timed_out": r.timed_out}
                for r in report.results
            ],
            "not_run": list(report.not_run),
            "output_tail": report.failed.output_tail if report.failed else "",
        }
        if not report.passed:
            await self._mark(job, Gate.TEST, round_, "failed", data)
            reason = f"test: {report.summary()}"
            raise GateFailed(Ending(TaskStatus.FAILED, reason, kind=EndingKind.TESTS_FAILED))
        await self._mark(job, Gate.TEST, round_, "passed", data)

    async def _safety(self, job: ChangeJob, round_: int) -> None:
        refusals = await asyncio.to_thread(check_change, job.repo, job.limits, job.base)
        if refusals:
            await self._mark(job, Gate.TEST, round_, "refused", {"refusals": refusals})
            reason = "refused: " + "; ".join(refusals)
            raise GateFailed(Ending(TaskStatus.FAILED, reason, kind=EndingKind.CHANGE_REFUSED))

    async def _review(
        self, job: ChangeJob, gate: Gate, round_: int, reviewed: str | None = None
    ) -> Verdict:
        assert job.reviewer is not None, "review gates need a reviewer (config checks it)"
        await self._mark(job, gate, round_, "entered", {"reviewer": job.reviewer})
        answer, given = await self._agent(
            job, gate, round_, job.reviewer, VERDICT_SCHEMA, resume=False
        )
        try:
            session = check_session_id(given or "")
        except ValueError as exc:
            await self._mark(job, gate, round_, "failed", {"why": str(exc)})
            reason = f"{gate}: the reviewer's verdict has no usable session id ({exc})"
            raise GateFailed(Ending(TaskStatus.FAILED, reason, kind=EndingKind.FAILED)) from None
        verdict = Verdict(
            answer.get("verdict") == "approve",
            tuple(str(f) for f in answer.get("findings") or ()),
            str(answer.get("summary") or ""),
            session,
        )
        data: dict[str, Any] = {
            "reviewer": job.reviewer,
            "session": session,
            "verdict": "approve" if verdict.approved else "needs_revision",
            "findings": list(verdict.findings),
        }
        if reviewed is not None:
            data["review_hash"] = reviewed
        await self._mark(job, gate, round_, "approved" if verdict.approved else "revise", data)
        return verdict

    # --- subtasks -----------------------------------------------------------------------------

    async def _wait_for_subtasks(
        self, job: ChangeJob, round_: int, answer: Mapping[str, Any]
    ) -> bool:
        """After implement: when the agent created subtasks still open, keep the work, wait
        (True), and leave the task to the last subtask's end."""
        subtasks = await asyncio.to_thread(self.store.subtasks_of, job.task_id)
        if not subtasks or all(t.status.terminal for t in subtasks):
            return False
        saved = await asyncio.to_thread(save_work, job.repo, job.task_id)
        ids = [t.id for t in subtasks]
        data = {"subtasks": ids, "saved": saved, "answer": dict(answer)}
        await self._mark(job, Gate.IMPLEMENT, round_, "waiting", data)
        now = self.clock()
        reason = f"waiting for {len(subtasks)} subtasks"
        spent = {"usage": job.usage.to_json(), "cost_usd": job.usage.cost_usd}
        waiting = await asyncio.to_thread(
            partial(
                self.store.transition, job.task_id, Kind.WAIT_FOR_SUBTASKS, reason=reason, **spent
            )
        )
        if not waiting:
            raise GateFailed(_LEFT)
        # A subtask that ended before the parent waited could not hand it back: do it now.
        subtasks = await asyncio.to_thread(self.store.subtasks_of, job.task_id)
        if all(t.status.terminal for t in subtasks):
            await asyncio.to_thread(
                partial(self.store.transition, job.task_id, Kind.SUBTASKS_DONE, updated_at=now)
            )
        return True

    async def _back_from_subtasks(self, job: ChangeJob, round_: int) -> None:
        """The work kept before waiting, and each succeeded subtask's commit, staged again."""
        step = next(s for s in reversed(job.record) if s["outcome"] == "waiting")
        job.answer = dict(step.get("answer") or {})
        subtasks = await asyncio.to_thread(self.store.subtasks_of, job.task_id)
        done = [t for t in subtasks if t.status is TaskStatus.SUCCEEDED]
        try:
            await asyncio.to_thread(restore_work, job.repo, job.task_id, done)
        except TaskyardError as exc:
            await self._mark(job, Gate.IMPLEMENT, round_, "failed", {"why": str(exc)})
            raise GateFailed(
                Ending(TaskStatus.FAILED, f"implement: {exc}", kind=EndingKind.CHANGE_REFUSED)
            ) from None
        await asyncio.to_thread(git, job.repo, "add", "--all")
        diff = await asyncio.to_thread(_diff, job.repo, job.base)
        _write(job.context_dir / "change.diff", diff)
        data = {"subtasks": [t.id for t in done]}
        await self._mark(job, Gate.IMPLEMENT, round_, "passed", data)

    async def _commit(
        self, job: ChangeJob, reviewed: str, reviewer_session: str, answer: dict[str, Any]
    ) -> Ending:
        await self._mark(job, Gate.COMMIT, 1, "entered", {"review_hash": reviewed})
        subtasks = await asyncio.to_thread(self.store.subtasks_of, job.task_id)
        open_ones = unfinished(subtasks)
        if open_ones:
            await self._mark(job, Gate.COMMIT, 1, "refused", {"why": open_ones})
            reason = "commit: " + "; ".join(open_ones)
            raise GateFailed(Ending(TaskStatus.FAILED, reason, kind=EndingKind.CHANGE_REFUSED))
        title = str(answer.get("title") or "").strip() or f"taskyard change (task {job.task_id})"
        summary = str(answer.get("summary") or "").strip()
        message = f"{title}\n\n{summary}\n" if summary else f"{title}\n"
        try:
            if reviewer_session:
                sha = await asyncio.to_thread(
                    commit_with_review_hash,
                    job.repo,
                    message,
                    reviewed,
                    reviewer_session,
                    COMMITTER,
                    COMMITTER,
                )
            else:
                sha = await asyncio.to_thread(_plain_commit, job.repo, message)
        except TaskyardError as exc:  # the state is not the reviewed one, or git said no
            await self._mark(job, Gate.COMMIT, 1, "refused", {"why": str(exc)})
            reason = f"commit: {exc}"
            raise GateFailed(
                Ending(TaskStatus.FAILED, reason, kind=EndingKind.CHANGE_REFUSED)
            ) from None
        data = {"commit": sha, "review_hash": reviewed, "reviewed_by": reviewer_session or None}
        delivered = None
        if job.deliver is not None:
            try:
                delivered = await job.deliver(sha, reviewed, title, summary)
            except TaskyardError as exc:  # a refusal (protected branch, moved head), or GitHub's
                await self._mark(job, Gate.COMMIT, 1, "refused", {**data, "why": str(exc)})
                reason = f"deliver: {exc}"
                raise GateFailed(
                    Ending(TaskStatus.FAILED, reason, kind=EndingKind.CHANGE_REFUSED)
                ) from None
        await self._mark(job, Gate.COMMIT, 1, "passed", {**data, "delivered": delivered})
        result = {
            "success": True,
            "actions": [],
            "analysis": {"commit": sha, "review_hash": reviewed, "gates": job.record},
            "summary": summary or title,
        }
        return Ending(TaskStatus.SUCCEEDED, None, result=result, kind=EndingKind.SUCCEEDED)

    # --- running an agent, recording a gate ---------------------------------------------------

    async def _agent(
        self,
        job: ChangeJob,
        gate: Gate,
        round_: int,
        agent: str,
        schema: Mapping[str, Any],
        *,
        resume: bool,
    ) -> tuple[dict[str, Any], str | None]:
        """Run one agent for a gate: its structured answer and its session id. A run without
        an answer ends the task."""
        session = job.session if resume else None
        report = await job.call(agent, f"_change-{gate.replace('_', '-')}", round_, schema, session)
        outcome = report.outcome
        job.seconds += (report.ended_at - report.started_at).total_seconds()
        if outcome is not None:
            job.usage = _added(job.usage, outcome.usage)
            job.tool_calls += outcome.tool_calls
            if resume and outcome.session_id:
                job.session = outcome.session_id
        if not report.succeeded or outcome is None or not isinstance(outcome.result, Mapping):
            why = report.reason or (outcome.error if outcome else None) or "no answer"
            await self._mark(job, gate, round_, "failed", {"agent": agent, "why": why})
            status = TaskStatus(report.status) if not report.succeeded else TaskStatus.FAILED
            kind = EndingKind.CANCELLED if status is TaskStatus.CANCELLED else EndingKind.FAILED
            raise GateFailed(Ending(status, f"{gate}: {agent}: {why}", kind=kind))
        return dict(outcome.result), outcome.session_id

    async def _mark(
        self,
        job: ChangeJob,
        gate: Gate,
        round_: int,
        outcome: str,
        data: Mapping[str, Any] | None = None,
    ) -> None:
        """Record a gate's step on the task and in the audit log (one transaction)."""
        now = self.clock()
        step = {"gate": str(gate), "round": round_, "outcome": outcome, "at": now}
        job.record.append(step)
        # The answer of the implement round that waited is kept in its record (the step
        # with `waiting`), for the commit's message after the subtasks.
        if outcome == "waiting" and data:
            step["answer"] = data.get("answer") or {}
        if gate is Gate.IMPLEMENT and data and data.get("session"):
            step["session"] = data["session"]  # the PR's next fix goes on from it
        entry = await asyncio.to_thread(
            self.store.enter_gate,
            job.task_id,
            list(job.record),
            "taskyard",
            {"round": round_, "outcome": outcome, **(data or {})},
            now,
        )
        if entry is None:  # cancelled or ended by someone else meanwhile
            raise GateFailed(
                Ending(
                    TaskStatus.CANCELLED,
                    f"{gate}: the task left its attempt",
                    kind=EndingKind.CANCELLED,
                )
            )


_WAITING = Ending(TaskStatus.WAITING, "waiting for its subtasks")
_LEFT = Ending(TaskStatus.CANCELLED, "the task left its attempt", kind=EndingKind.CANCELLED)


def _waited_in(record: list[dict[str, Any]]) -> int | None:
    """The implement round after which the task waited for its subtasks, if that is where
    its record ends (it is back from them)."""
    if record and record[-1]["gate"] == Gate.IMPLEMENT and record[-1]["outcome"] == "waiting":
        return int(record[-1]["round"])
    return None


def _refused_after(job: ChangeJob, gate: Gate) -> GateFailed:
    back = REVISES[gate]
    reason = (
        f"{gate}: still needs revision after {job.max_revisions} revision(s) of {back}; "
        "see the reviewer's findings"
    )
    return GateFailed(Ending(TaskStatus.FAILED, reason, kind=EndingKind.REVIEW_REFUSED))


def _findings(verdict: Verdict) -> str:
    lines = [f"- {f}" for f in verdict.findings] or ["- (no findings given)"]
    return f"# The reviewer asks for revisions\n\n{verdict.summary}\n\n" + "\n".join(lines) + "\n"


def _short(answer: Mapping[str, Any]) -> str:
    return str(answer.get("summary") or "")[:500]


def _write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def _diff(repo: Path, base: str | None) -> str:
    args = ["diff", "--cached", "--no-ext-diff", "--no-textconv", "--no-color"]
    return git(repo, *args, *([base] if base else [])).decode("utf-8", "replace")


def _plain_commit(repo: Path, message: str) -> str:
    """A commit without a Review-Hash: the route turned its review gate off."""
    name, email = COMMITTER.removesuffix(">").split(" <")
    env = {
        "GIT_AUTHOR_NAME": name,
        "GIT_AUTHOR_EMAIL": email,
        "GIT_COMMITTER_NAME": name,
        "GIT_COMMITTER_EMAIL": email,
    }
    git(repo, "commit", "--no-verify", "-q", "-F", "-", stdin=message.encode(), env=git_env(env))
    return git(repo, "rev-parse", "HEAD").decode().strip()


def _added(a: Usage, b: Usage) -> Usage:
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


def _outcome(job: ChangeJob, ending: Ending) -> AgentOutcome:
    ok = ending.status is TaskStatus.SUCCEEDED
    return AgentOutcome(ok, ending.result, ending.reason, job.usage, job.tool_calls, job.session)
