"""The ideas' part of the composition: their git against the repositories' remotes, the
scheduler with its pull requests and its answers at the source, the loop that runs it in the
worker, and where an idea task's commit goes."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from taskyard.actions.keys import with_marker
from taskyard.config import Settings
from taskyard.idea import Idea
from taskyard.ideas.deliver import IdeaDelivery
from taskyard.ideas.integrate import IdeaGit
from taskyard.ideas.loop import IdeaLoop
from taskyard.ideas.scheduler import IdeaScheduler
from taskyard.models import Event, Task
from taskyard.platforms import github_write as gw
from taskyard.platforms.github_write import GitHubWriter
from taskyard.platforms.writes import PlatformWriter
from taskyard.run.attempt import DeliverFor
from taskyard.run.change import Deliver
from taskyard.run.delivery import GitRemote
from taskyard.run.mirrors import git_environment, url_resolver
from taskyard.run.taskspec import TaskSpec
from taskyard.store.base import Store


def build_ideas(
    settings: Settings,
    store: Store,
    writers: Mapping[str, PlatformWriter],
    environ: Mapping[str, str],
    on_tasks: Callable[[], None],
) -> tuple[IdeaLoop, IdeaDelivery]:
    remote = GitRemote(url_resolver(settings.runs), None, git_environment(environ))
    git = IdeaGit(remote)
    github = writers.get("github")
    writer = github if isinstance(github, GitHubWriter) else None

    async def open_pr(repo: str, head: str, base: str, title: str, body: str) -> str | None:
        if writer is None:
            return None
        done = await writer.send(gw.create_pr(repo, title, head, base, body))
        return done.url

    async def tell(idea: Idea, text: str) -> None:
        origin = idea.origin
        if writer is None or origin.get("platform") != "github" or not origin.get("number"):
            return
        body = with_marker(text, f"idea.{idea.id}.{idea.last_seq}")
        await writer.send(gw.comment(str(origin["repo"]), int(origin["number"]), body))

    scheduler = IdeaScheduler(settings, store, git, open_pr=open_pr, tell=tell, on_tasks=on_tasks)
    return IdeaLoop(scheduler), IdeaDelivery(git)


def first_of(*choices: DeliverFor | None) -> DeliverFor | None:
    """The first `deliver_for` that takes the task."""
    taken = [c for c in choices if c is not None]
    if not taken:
        return None

    def deliver_for(task: Task, spec: TaskSpec, event: Event, repo: Path) -> Deliver | None:
        for choice in taken:
            found = choice(task, spec, event, repo)
            if found is not None:
                return found
        return None

    return deliver_for
