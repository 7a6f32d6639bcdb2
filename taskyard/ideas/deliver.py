"""Where an idea task's commit goes (`deliver_for` of the run stage, for tasks whose spec says
`idea`): to the task's own branch of the repository's remote, from which the idea's scheduler
integrates it (`taskyard.ideas.integrate`)."""

from __future__ import annotations

from pathlib import Path

from taskyard.ideas.integrate import IdeaGit, task_branch
from taskyard.models import Event, Task
from taskyard.run.change import Deliver
from taskyard.run.taskspec import TaskSpec


class IdeaDelivery:
    def __init__(self, git: IdeaGit) -> None:
        self.git = git

    def __call__(self, task: Task, spec: TaskSpec, event: Event, repo: Path) -> Deliver | None:
        idea = spec.idea or {}
        where = spec.repo or {}
        if idea.get("role") != "task" or not where.get("full_name"):
            return None
        full_name, branch = str(where["full_name"]), task_branch(idea["id"], idea["key"])

        async def deliver(sha: str, review_hash: str, title: str, summary: str) -> str:
            await self.git.push_task(full_name, repo, sha, branch)
            return f"pushed to {branch}"

        return deliver
