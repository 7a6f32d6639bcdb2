"""The waits of a change task's run (`taskyard.run.change`), where it gives up its worker and
is handed back later: for the subtasks its agent created (`taskyard.run.subtasks`), and for a
person's review when the change's risk demands one (`taskyard.run.personreview`). Before
either, its staged work is kept on a private ref of the mirror; when it is back, a fresh
worktree gets it again."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from taskyard.exceptions import TaskyardError
from taskyard.lifecycle import EndingKind, Gate, Kind
from taskyard.models import TaskStatus
from taskyard.records import ApprovalStatus
from taskyard.review.hash import git
from taskyard.run.changejob import (
    LEFT,
    ChangeJob,
    GateFailed,
    Verdict,
    findings_text,
    staged_diff,
    write_text,
)
from taskyard.run.ending import Ending
from taskyard.run.subtasks import restore_work, save_work
from taskyard.store.base import Store


class ChangeWaits:
    """`ChangeRun`'s waits; it gives them `store`, `clock` and `_mark`."""

    store: Store
    clock: Callable[[], float]

    async def _mark(
        self,
        job: ChangeJob,
        gate: Gate,
        round_: int,
        outcome: str,
        data: Mapping[str, Any] | None = None,
    ) -> None:
        raise NotImplementedError

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
            raise GateFailed(LEFT)
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
        diff = await asyncio.to_thread(staged_diff, job.repo, job.base)
        write_text(job.context_dir / "change.diff", diff)
        data = {"subtasks": [t.id for t in done]}
        await self._mark(job, Gate.IMPLEMENT, round_, "passed", data)

    # --- a person's review ----------------------------------------------------------------------

    async def _ask_person(
        self, job: ChangeJob, round_: int, reviewed: str, session: str, answer: Mapping[str, Any]
    ) -> None:
        """After the review gate approved (or was off): when the change's risk needs a person,
        ask one through approvals, keep the work, and wait (GateFailed: awaiting approval)."""
        if job.person is None:
            return
        diff = await asyncio.to_thread(staged_diff, job.repo, job.base)
        summary = str(answer.get("title") or answer.get("summary") or "")
        approval = await job.person.ask_if_needed(round_, reviewed, diff, summary)
        if approval is None:
            return
        saved = await asyncio.to_thread(save_work, job.repo, job.task_id)
        data = {
            "approval": approval.id,
            "risk": approval.risk,
            "rule": approval.rule,
            "review_hash": reviewed,
            "reviewer_session": session,
            "answer": dict(answer),
            "saved": saved,
        }
        await self._mark(job, Gate.REVIEW, round_, "awaiting_person", data)
        why = f"waiting for a person's review ({approval.risk} risk: {approval.rule})"
        raise GateFailed(Ending(TaskStatus.AWAITING_APPROVAL, why))

    async def _back_from_person(
        self, job: ChangeJob, step: Mapping[str, Any]
    ) -> tuple[str, str, dict[str, Any]] | None:
        """The work kept before the person's review, staged again, and their decision:
        approved, (the reviewed hash, the reviewer, the answer); denied, None after their
        reason became a finding for the next round. Anything else ends the task."""
        round_ = int(step["round"])
        await asyncio.to_thread(restore_work, job.repo, job.task_id, [])
        await asyncio.to_thread(git, job.repo, "add", "--all")
        write_text(job.context_dir / "change.diff", staged_diff(job.repo, job.base))
        approval = await job.person.decision(round_) if job.person is not None else None
        status = approval.status if approval is not None else None
        if approval is None or status not in (ApprovalStatus.APPROVED, ApprovalStatus.DENIED):
            said = f"is {status}" if status else "is gone"
            await self._mark(job, Gate.REVIEW, round_, "failed", {"why": f"the request {said}"})
            reason = f"review: the person's review {said}; nothing was committed"
            raise GateFailed(Ending(TaskStatus.FAILED, reason, kind=EndingKind.REVIEW_REFUSED))
        who = f"{approval.decided_by} (approval {approval.id})"
        data = {"approval": approval.id, "by": approval.decided_by, "reason": approval.reason}
        if status is ApprovalStatus.DENIED:
            await self._mark(job, Gate.REVIEW, round_, "revise", data)
            findings = Verdict(False, (approval.reason or "denied, no reason given",), who, "")
            write_text(job.context_dir / "review-findings.md", findings_text(findings))
            return None
        await self._mark(job, Gate.REVIEW, round_, "approved", data)
        job.approved_by = who
        reviewer = str(step.get("reviewer_session") or "") or f"approval:{approval.id}"
        return str(step["review_hash"]), reviewer, dict(step.get("answer") or {})
