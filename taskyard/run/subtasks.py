"""Subtasks of a change task: created by its agent (the `create_subtask` tool), each a task of
its own (own workspace, own worktree at the parent's commit, own gates and state), run by the
same workers as any task.

While its subtasks run, the parent waits (`waiting`: no worker, no agent slot). Its staged
work is kept durably first, as a commit on a private ref of the repository's mirror
(`refs/taskyard/wip/<task>`), since its workspace does not outlive the attempt. The last
subtask's end hands the parent back to a worker in the same transaction
(`taskyard.lifecycle.rollup`); its next attempt restores the work, applies each subtask's
commit (kept on `refs/taskyard/subtasks/<task>`), and goes on from the test gate. A worker
killed meanwhile changes nothing of this: a finished subtask is never run again, and a subtask
the parent's agent asks for again (same title) is the same task.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taskyard.exceptions import TaskyardError
from taskyard.lifecycle import workflow_id
from taskyard.models import Decision, RouteDecision, Task, TaskStatus, new_id
from taskyard.review.hash import git, git_env
from taskyard.store.base import Store

WIP_REF = "refs/taskyard/wip/{}"
SUBTASK_REF = "refs/taskyard/subtasks/{}"
_IDENTITY = {
    "GIT_AUTHOR_NAME": "taskyard",
    "GIT_AUTHOR_EMAIL": "taskyard@users.noreply.github.com",
    "GIT_COMMITTER_NAME": "taskyard",
    "GIT_COMMITTER_EMAIL": "taskyard@users.noreply.github.com",
}


class SubtaskRefused(TaskyardError):
    """A subtask may not be created (a limit, an unknown agent), in plain words."""


@dataclass(frozen=True, slots=True)
class SubtaskLimits:
    max_count: int = 5  # subtasks of one task
    max_depth: int = 2  # a subtask's subtask is depth 2


def depth_of(task: Task) -> int:
    return int(task.spec.get("depth") or 0)


def create_subtask(
    store: Store,
    parent: Task,
    title: str,
    prompt: str,
    agent: str,
    limits: SubtaskLimits,
    now: float,
) -> Task:
    """The parent's subtask named `title`: created once (asking again gives the same task),
    within the limits. Its spec is the parent's, with its own title, prompt and depth."""
    title, prompt = title.strip(), prompt.strip()
    if not title or not prompt:
        raise SubtaskRefused("a subtask needs a title and a prompt")
    route = f"{parent.route}.sub-{hashlib.sha256(f'{parent.id}/{title}'.encode()).hexdigest()[:12]}"
    existing = store.subtasks_of(parent.id)
    found = next((t for t in existing if t.route == route), None)
    if found is not None:
        return found
    if len(existing) >= limits.max_count:
        raise SubtaskRefused(f"a task may create at most {limits.max_count} subtasks")
    if depth_of(parent) + 1 > limits.max_depth:
        raise SubtaskRefused(f"subtasks nest at most {limits.max_depth} deep")
    spec: dict[str, Any] = {
        **parent.spec,
        "route": route,
        "agent": agent,
        "prompt": "_subtask",
        "depth": depth_of(parent) + 1,
        "subtask": {"title": title, "prompt": prompt, "parent": parent.id},
    }
    task_id = new_id()
    child = Task(
        id=task_id,
        event_id=parent.event_id,
        route=route,
        agent=agent,
        status=TaskStatus.QUEUED,
        priority=parent.priority,
        created_at=now,
        updated_at=now,
        workflow_id=workflow_id(task_id),
        spec=spec,
        parent_id=parent.id,
    )
    why = f"subtask of {parent.id}: {title[:200]}"
    decision = RouteDecision(parent.event_id, route, Decision.STARTED, why, task_id, now)
    stored = store.record_routing([decision], [child])
    return next(t for t in stored if t.route == route)


def unfinished(subtasks: Sequence[Task]) -> list[str]:
    """Why the parent may not commit yet, one line per subtask that is not done with its own
    record (succeeded, its commit gate passed); empty when every one is."""
    problems = []
    for t in subtasks:
        committed = any(s["gate"] == "commit" and s["outcome"] == "passed" for s in t.gates)
        if not t.status.terminal:
            problems.append(f"subtask {t.id} is still {t.status}")
        elif t.status is not TaskStatus.SUCCEEDED:
            problems.append(f"subtask {t.id} ended {t.status}: {t.reason or 'no reason given'}")
        elif not committed:
            problems.append(f"subtask {t.id} has no commit of its own on record")
    return problems


def keep_subtask_commit(repo: Path, task_id: str, sha: str) -> None:
    """A subtask's commit, kept for its parent on a ref the worktrees share."""
    git(repo, "update-ref", SUBTASK_REF.format(task_id), sha)


def save_work(repo: Path, task_id: str) -> str:
    """The parent's staged work, as a commit on its private ref; the commit's id."""
    tree = git(repo, "write-tree").decode().strip()
    head = git(repo, "rev-parse", "HEAD").decode().strip()
    message = f"taskyard: work of task {task_id} while its subtasks run\n".encode()
    env = git_env(_IDENTITY)
    sha = git(repo, "commit-tree", tree, "-p", head, "-F", "-", stdin=message, env=env)
    commit = sha.decode().strip()
    git(repo, "update-ref", WIP_REF.format(task_id), commit)
    return commit


def restore_work(repo: Path, task_id: str, subtasks: Sequence[Task]) -> None:
    """In a fresh worktree at the same commit: the parent's saved work, then each subtask's
    commit, staged (not committed). A subtask that does not apply is a SubtaskRefused."""
    saved = git(repo, "rev-parse", "--verify", WIP_REF.format(task_id)).decode().strip()
    git(repo, "read-tree", "-u", "-m", "HEAD", saved)
    for t in subtasks:
        ref = SUBTASK_REF.format(t.id)
        try:
            git(repo, "cherry-pick", "--no-commit", ref, env=git_env(_IDENTITY))
        except TaskyardError as exc:
            raise SubtaskRefused(f"the commit of subtask {t.id} does not apply: {exc}") from None
