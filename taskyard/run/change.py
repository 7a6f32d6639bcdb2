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
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from taskyard.agents.base import AgentOutcome
from taskyard.agents.stops import Stop
from taskyard.audit import check_session_id
from taskyard.exceptions import TaskyardError
from taskyard.lifecycle import REVISES, EndingKind, Gate
from taskyard.models import TaskStatus
from taskyard.review.commit import commit_with_review_hash
from taskyard.review.hash import git, git_env, staged_hash
from taskyard.review.safety import check_change
from taskyard.run.changejob import (
    CHANGE_SCHEMA,
    COMMITTER,
    KEPT_IN_RECORD,
    PLAN_SCHEMA,
    VERDICT_SCHEMA,
    WAITING,
    AgentCall,
    ChangeJob,
    Deliver,
    GateFailed,
    RunTests,
    Verdict,
    added_usage,
    carried_usage,
    findings_text,
    staged_diff,
    write_text,
)
from taskyard.run.changewaits import ChangeWaits
from taskyard.run.ending import Ending
from taskyard.run.subtasks import unfinished
from taskyard.store.base import Store

log = logging.getLogger(__name__)

__all__ = [
    "CHANGE_SCHEMA",
    "PLAN_SCHEMA",
    "VERDICT_SCHEMA",
    "AgentCall",
    "ChangeJob",
    "ChangeRun",
    "Deliver",
    "GateFailed",
    "RunTests",
    "carried_usage",
]


class ChangeRun(ChangeWaits):
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
        last = job.record[-1] if job.record else None
        if last is not None and last["outcome"] == "awaiting_person":  # a person decided
            decided = await self._back_from_person(job, last)
            if decided is None:  # denied: their reason goes to the next implement round
                decided = await self._implement_until_approved(job, int(last["round"]) + 1)
            return await self._commit(job, *decided)
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
            write_text(job.context_dir / "plan-findings.md", findings_text(verdict))
        raise _refused_after(job, Gate.PLAN_REVIEW)

    async def _plan(self, job: ChangeJob, round_: int) -> None:
        await self._mark(job, Gate.PLAN, round_, "entered")
        result, _ = await self._agent(job, Gate.PLAN, round_, job.agent, PLAN_SCHEMA, resume=True)
        plan_file = job.output_dir / "plan.md"
        if not plan_file.is_file() or not plan_file.read_text("utf-8", "replace").strip():
            write_text(plan_file, str(result.get("plan") or ""))
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
                    raise GateFailed(WAITING)
            await self._test(job, round_)
            await self._safety(job, round_)
            reviewed = await asyncio.to_thread(staged_hash, job.repo)
            if Gate.REVIEW not in job.gates:
                await self._ask_person(job, round_, reviewed, "", answer)
                return reviewed, "", answer
            verdict = await self._review(job, Gate.REVIEW, round_, reviewed)
            if verdict.approved:
                await self._ask_person(job, round_, reviewed, verdict.session, answer)
                return reviewed, verdict.session, answer
            write_text(job.context_dir / "review-findings.md", findings_text(verdict))
        raise _refused_after(job, Gate.REVIEW)

    async def _implement(self, job: ChangeJob, round_: int) -> dict[str, Any]:
        await self._mark(job, Gate.IMPLEMENT, round_, "entered")
        answer, _ = await self._agent(
            job, Gate.IMPLEMENT, round_, job.agent, CHANGE_SCHEMA, resume=True
        )
        await asyncio.to_thread(git, job.repo, "add", "--all")
        diff = await asyncio.to_thread(staged_diff, job.repo, job.base)
        if not diff.strip():
            await self._mark(job, Gate.IMPLEMENT, round_, "failed", {"why": "nothing changed"})
            reason = "implement: the agent changed nothing"
            raise GateFailed(Ending(TaskStatus.FAILED, reason, kind=EndingKind.FAILED))
        write_text(job.context_dir / "change.diff", diff)
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
        if job.approved_by:
            message += f"\nApproved-by: {job.approved_by}\n"
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
            job.usage = added_usage(job.usage, outcome.usage)
            job.tool_calls += outcome.tool_calls
            if resume and outcome.session_id:
                job.session = outcome.session_id
        if not report.succeeded or outcome is None or not isinstance(outcome.result, Mapping):
            why = report.reason or (outcome.error if outcome else None) or "no answer"
            await self._mark(job, gate, round_, "failed", {"agent": agent, "why": why})
            status = TaskStatus(report.status) if not report.succeeded else TaskStatus.FAILED
            stop = report.stopped_by
            kind = _STOPPED_AS.get(stop, EndingKind.FAILED) if stop else EndingKind.FAILED
            if status is TaskStatus.CANCELLED:
                kind = EndingKind.CANCELLED
            if kind is EndingKind.COST_EXCEEDED:  # the people who pay hear of it at once
                log.warning(
                    "change stopped at its cost ceiling",
                    extra={"task_id": job.task_id, "gate": str(gate), "agent": agent},
                )
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
        if outcome in ("waiting", "awaiting_person") and data:
            step.update({k: data[k] for k in KEPT_IN_RECORD if k in data})
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


_STOPPED_AS = {
    Stop.COST_CEILING: EndingKind.COST_EXCEEDED,
    Stop.TOOL_BUDGET: EndingKind.BUDGET_EXCEEDED,
    Stop.TIMEOUT: EndingKind.TIMED_OUT,
    Stop.MEMORY: EndingKind.STOPPED,
    Stop.DISK: EndingKind.STOPPED,
}


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


def _short(answer: Mapping[str, Any]) -> str:
    return str(answer.get("summary") or "")[:500]


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


def _outcome(job: ChangeJob, ending: Ending) -> AgentOutcome:
    ok = ending.status is TaskStatus.SUCCEEDED
    return AgentOutcome(ok, ending.result, ending.reason, job.usage, job.tool_calls, job.session)
