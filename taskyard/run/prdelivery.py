"""Where a change task's commit goes when its task came from a pull request: a review of
suggested changes (`changes.mode: suggest`, the default) or a push to the pull request's head
branch (`push`), through `taskyard.run.delivery`. A push is recorded (`Store.record_push`), so
a failing check on that commit may start a fix. A task without a pull request keeps its commit
in its worktree."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from taskyard.exceptions import PlatformError
from taskyard.models import Event, Task
from taskyard.routing import payload_of
from taskyard.routing.admission import pr_key
from taskyard.routing.select import RouteMatch
from taskyard.run.change import Deliver
from taskyard.run.delivery import Delivery, PullRequest
from taskyard.run.taskspec import TaskSpec
from taskyard.store.base import Store

# (repo, number) → the pull request as GitHub's REST API gives it
ReadPull = Callable[[str, int], Awaitable[Mapping[str, Any]]]


class PullRequestDelivery:
    """`deliver_for` of the run stage (`taskyard.run.attempt.DeliverFor`)."""

    def __init__(
        self,
        delivery: Delivery,
        read_pull: ReadPull | None,
        store: Store,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.delivery = delivery
        self.read_pull = read_pull
        self.store = store
        self.clock = clock

    def __call__(self, task: Task, spec: TaskSpec, event: Event, repo: Path) -> Deliver | None:
        where = spec.repo or {}
        full_name, number = where.get("full_name"), where.get("pr_number")
        if event.source != "github" or not isinstance(number, int) or not full_name:
            return None
        mode = (spec.change or {}).get("mode") or "suggest"
        payload = payload_of(event)

        async def deliver(sha: str, review_hash: str, title: str, summary: str) -> str:
            pr = await self._pull_request(str(full_name), number, payload)
            key = pr_key(pr.repo, pr.number)
            if mode == "push":
                done = await self.delivery.push(pr, repo, sha, review_hash)
                await asyncio.to_thread(self.store.record_push, key, sha, task.id, self.clock())
            else:
                done = await self.delivery.suggest(pr, repo, sha, summary or title)
            said = {"pr": key, "commit": sha, "review_hash": review_hash, "url": done.url}
            kind = "push" if mode == "push" else "suggestion"
            await asyncio.to_thread(
                self.store.append_audit, kind, task.id, "taskyard", said, self.clock()
            )
            return done.detail + (f" ({done.url})" if done.url else "")

        return deliver

    async def is_draft(self, spec: TaskSpec, event: Event) -> bool:
        """Whether the task's pull request is a draft, asked of GitHub when the delivery does
        not say (a conversation comment's `issue` carries no draft flag)."""
        where = spec.repo or {}
        full_name, number = where.get("full_name"), where.get("pr_number")
        payload = payload_of(event)
        pull = payload.get("pull_request")
        if isinstance(pull, Mapping) and isinstance(pull.get("draft"), bool):
            return bool(pull["draft"])
        issue = payload.get("issue")
        said = issue.get("draft") if isinstance(issue, Mapping) else None
        if isinstance(said, bool):
            return said
        if self.read_pull is None or not full_name or not isinstance(number, int):
            return False
        return (await self.read_pull(str(full_name), number)).get("draft") is True

    async def refused(self, event: Event, match: RouteMatch, why: str) -> None:
        """A fix its bounds refused (the 4th attempt on a comment, the 6th fix in an hour, the
        cost ceiling): said on the pull request, in words."""
        if not match.repo or not match.number:
            return
        where = PullRequest(match.repo, match.number, head_ref="", head_sha="", base_ref="")
        done = await self.delivery.refuse(where, f"taskyard will not fix this now: {why}")
        said: dict[str, str | None] = {"pr": pr_key(match.repo, match.number), "why": why}
        said["event_id"] = event.id
        said |= {"route": match.route.name, "url": done.url}
        await asyncio.to_thread(
            self.store.append_audit, "refusal", None, "taskyard", said, self.clock()
        )

    async def _pull_request(
        self, repo: str, number: int, payload: Mapping[str, Any]
    ) -> PullRequest:
        found = PullRequest.from_payload(payload)
        if found is None and self.read_pull is not None:  # an issue comment names no head
            found = PullRequest.from_pull(repo, await self.read_pull(repo, number))
        if found is None:
            raise PlatformError(f"github: cannot read pull request {repo}#{number}")
        return found
