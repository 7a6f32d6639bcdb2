"""A person's review of a change, through approvals, when its risk demands it.

After the reviewing agent approves a change (or in its place, when the route turned agent
review off), the change is rated by the risk rules like an action (type `change`: its
repository, branch, paths, lines changed and delivery mode; `approvals.risk_rules`). When the
level's approval policy asks for a person, an approval request (`StoreGate.ask`) is raised on
the configured channels with the change's summary and diff, the task keeps its staged work
(`run.subtasks.save_work`) and waits `awaiting_approval`, holding no worker. The decision
hands it back (`resume`, then `back_to_gates`): approved, it commits the state that was
reviewed, with `Approved-by:` naming the person; denied, the person's reason goes back to the
implementing agent as a finding, like an agent's needs-revision.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taskyard.approvals.gate import Asked, RiskPolicy, StoreGate
from taskyard.approvals.risk import RiskLevel, RiskSubject
from taskyard.records import Approval
from taskyard.review.safety import diff_stats
from taskyard.store.base import Store

CHANGE = "change"  # the action type the risk rules see a change as
MAX_DIFF_SHOWN = 20_000  # characters of the diff put in the request


@dataclass(frozen=True, slots=True)
class Review:
    """What a person is asked to review."""

    task_id: str
    route: str
    round: int
    repo: str | None  # owner/name
    branch: str | None
    mode: str  # suggest | push
    paths: tuple[str, ...]
    review_hash: str
    diff: str
    summary: str

    @property
    def key(self) -> str:
        return f"{self.task_id}.review.{self.round}"


class PersonReview:
    """Rates a change and asks a person when its level's policy says so."""

    def __init__(self, policy: RiskPolicy, gate: StoreGate, store: Store) -> None:
        self.policy = policy
        self.gate = gate
        self.store = store

    def needed(self, review: Review, worktree: Path) -> tuple[RiskLevel, str] | None:
        """(level, rule) when a person must review the change, else None. Blocking."""
        stats = diff_stats(worktree)
        subject = RiskSubject(
            type=CHANGE,
            platform="github",
            environment=self.policy.environment,
            repo=review.repo,
            branch=review.branch,
            paths=review.paths,
            channel=None,
            lines_changed=stats.changed_lines,
            params={"mode": review.mode, "files": stats.files_changed},
            mentions=(),
        )
        verdict = self.policy.rules.assess(subject)
        level = RiskLevel(verdict.level)
        if not self.policy.policies.policy_for(level).approval:
            return None
        return level, verdict.rule

    async def ask(self, review: Review, level: RiskLevel, rule: str) -> Approval:
        summary = f"review the change of task {review.task_id}: {review.summary}"[:300]
        asked = Asked(review.task_id, review.route, review.key, CHANGE, level, rule, summary)
        details = {
            "review_hash": review.review_hash,
            "mode": review.mode,
            "paths": list(review.paths),
            "diff": review.diff[:MAX_DIFF_SHOWN],
            "target": {"platform": "github", "repo": review.repo, "branch": review.branch},
        }
        return await self.gate.ask(asked, details)

    async def decision(self, task_id: str, round_: int) -> Approval | None:
        key = Review(task_id, "", round_, None, None, "", (), "", "", "").key
        return await asyncio.to_thread(self.store.latest_approval_for, key)


class TaskPersonReview:
    """`PersonReview` for one change task (`taskyard.run.changejob.PersonAsk`)."""

    def __init__(
        self,
        reviewer: PersonReview,
        task_id: str,
        route: str,
        where: Mapping[str, Any],
        mode: str,
        worktree: Path,
    ) -> None:
        self.reviewer = reviewer
        self.task_id, self.route, self.mode, self.worktree = task_id, route, mode, worktree
        self.repo = str(where["full_name"]) if where.get("full_name") else None
        self.branch = str(where["ref"]) if where.get("ref") else None

    async def ask_if_needed(
        self, round_: int, review_hash: str, diff: str, summary: str
    ) -> Approval | None:
        paths = changed_paths(diff)
        review = Review(
            self.task_id, self.route, round_, self.repo, self.branch, self.mode, paths,
            review_hash, diff, summary,
        )  # fmt: skip
        needed = await asyncio.to_thread(self.reviewer.needed, review, self.worktree)
        if needed is None:
            return None
        return await self.reviewer.ask(review, *needed)

    async def decision(self, round_: int) -> Approval | None:
        return await self.reviewer.decision(self.task_id, round_)


def changed_paths(diff: str) -> tuple[str, ...]:
    """The paths a unified diff (`git diff`) changes, in order."""
    found: list[str] = []
    for line in diff.splitlines():
        if line.startswith(("+++ b/", "--- a/")):
            path = line[6:]
            if path not in found:
                found.append(path)
    return tuple(found)


__all__: Sequence[str] = ["CHANGE", "PersonReview", "Review", "TaskPersonReview", "changed_paths"]
