"""An idea's git: its branch (`taskyard/idea-<id>/integration`), each task's branch
(`taskyard/idea-<id>/<task>`), and integration of a finished task into the idea's branch.

Everything runs in a scratch repository of taskyard's own (never a worktree an agent wrote
in), against the repository's remote, with the credentials the mirrors use (`GitRemote`).
A task's commit whose parent is the idea branch's head fast-forwards it, keeping the commit
taskyard made after review. One made on an older head (its sibling was integrated first) is
applied onto the new head: when that applies cleanly, it is committed again with the same
`Reviewed-by` and the `Review-Hash` of the state it now makes, and says what it was rebased
from (`Rebased-from:`); when it does not, the integration is refused (`IntegrationConflict`)
and the idea's scheduler makes a fix task of it. Pushes to the idea branch expect its head
where it was read (`--force-with-lease`), so two integrators never overwrite each other.
"""

from __future__ import annotations

import asyncio
import re
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from taskyard.exceptions import TaskyardError
from taskyard.review.commit import commit_with_review_hash
from taskyard.review.hash import git, git_env, staged_hash
from taskyard.run.delivery import GitRemote
from taskyard.run.mirrors import auth_env, public_url

_T = TypeVar("_T")

IDENTITY = "taskyard <taskyard@users.noreply.github.com>"
_TRAILER = re.compile(r"^(Review-Hash|Reviewed-by|Rebased-from):.*$", re.M)


class IntegrationConflict(TaskyardError):
    """A task's change does not apply onto the idea's branch as it is now."""


# The idea's own branch sits beside its tasks' (git cannot have both `a` and `a/b`): a plan
# may not name a task after it (`RESERVED_KEY`).
RESERVED_KEY = "integration"
DEFAULT = ":default"  # in `IdeaGit.heads`: the default branch's name (not a branch)


def idea_branch(idea_id: str) -> str:
    return f"taskyard/idea-{idea_id}/{RESERVED_KEY}"


def milestone_branch(idea_id: str, milestone: str) -> str:
    """A milestone's branch: a `.` no task id has, so it never meets a task's."""
    return f"taskyard/idea-{idea_id}/milestone.{milestone}"


def task_branch(idea_id: str, key: str) -> str:
    return f"taskyard/idea-{idea_id}/{key}"


class IdeaGit:
    """The git an idea's scheduler needs, for one repository's remote."""

    def __init__(self, remote: GitRemote) -> None:
        self.remote = remote

    async def _run(self, repo: str, fn: Callable[..., _T], *args: Any) -> _T:
        """`fn(url, *args, env)` in a thread; its errors without the remote's URL (it may
        carry credentials) or the auth headers."""
        headers = await self.remote.headers(repo)
        env = git_env({**self.remote.env, **auth_env(headers)})
        url = self.remote.url_for(repo)
        try:
            return await asyncio.to_thread(fn, url, *args, env)
        except TaskyardError as exc:
            said = str(exc).replace(url, public_url(url))
            for value in headers.values():
                said = said.replace(value, "***")
            raise type(exc)(said) from None

    async def heads(self, repo: str) -> dict[str, str]:
        """The remote's branches: name → commit, and `HEAD` → the default branch's commit."""
        return await self._run(repo, _ls_remote)

    async def start(self, repo: str, idea_id: str) -> str:
        """The idea's branch, created at the default branch's head when it is not there yet;
        its head."""
        heads = await self.heads(repo)
        branch = idea_branch(idea_id)
        if branch in heads:
            return heads[branch]
        if "HEAD" not in heads:
            raise TaskyardError(f"{repo} has no default branch to start the idea from")
        await self._run(repo, _push_new, heads["HEAD"], branch)
        return heads["HEAD"]

    async def branch_at(self, repo: str, branch: str, sha: str) -> None:
        """A new branch at `sha` (one that is there already is left as it is)."""
        if branch not in await self.heads(repo):
            await self._run(repo, _push_new, sha, branch)

    async def push_task(self, repo: str, worktree: Path, commit: str, branch: str) -> None:
        """A task's commit (made in `worktree`, its objects in the mirror) to its own branch."""
        await self._run(repo, _push_from, worktree, commit, branch)

    async def integrate(self, repo: str, idea_id: str, key: str, commit: str) -> str:
        """The task's commit onto the idea's branch (see the module docstring); the branch's
        new head. Integrating a commit the branch already holds changes nothing."""
        return await self._run(repo, _integrate, idea_id, key, commit)


def _ls_remote(url: str, env: Mapping[str, str]) -> dict[str, str]:
    with tempfile.TemporaryDirectory(prefix="taskyard-idea-") as scratch:
        git(Path(scratch), "init", "-q", "--bare", env=env)
        out = git(Path(scratch), "ls-remote", "--symref", url, env=env).decode()
    heads: dict[str, str] = {}
    for line in out.splitlines():
        if line.startswith("ref:"):  # "ref: refs/heads/main\tHEAD": the default branch
            target, _, name = line.removeprefix("ref:").strip().partition("\t")
            if name == "HEAD":
                heads[DEFAULT] = target.removeprefix("refs/heads/")
            continue
        sha, _, ref = line.partition("\t")
        if ref == "HEAD":
            heads["HEAD"] = sha
        elif ref.startswith("refs/heads/"):
            heads[ref.removeprefix("refs/heads/")] = sha
    return heads


def _push_new(url: str, sha: str, branch: str, env: Mapping[str, str]) -> None:
    with tempfile.TemporaryDirectory(prefix="taskyard-idea-") as scratch:
        where = Path(scratch)
        git(where, "init", "-q", "--bare", env=env)
        git(where, "fetch", "-q", url, sha, env=env)
        lease = f"--force-with-lease=refs/heads/{branch}:"
        git(where, "push", "-q", lease, url, f"{sha}:refs/heads/{branch}", env=env)


def _push_from(url: str, worktree: Path, commit: str, branch: str, env: Mapping[str, str]) -> None:
    common = git(worktree, "rev-parse", "--path-format=absolute", "--git-common-dir").decode()
    with tempfile.TemporaryDirectory(prefix="taskyard-idea-") as scratch:
        where = Path(scratch)
        git(where, "init", "-q", "--bare", env=env)
        (where / "objects" / "info" / "alternates").write_text(
            str(Path(common.strip()) / "objects") + "\n"
        )
        git(where, "push", "-q", "--force", url, f"{commit}:refs/heads/{branch}", env=env)


def _integrate(url: str, idea_id: str, key: str, commit: str, env: Mapping[str, str]) -> str:
    branch = idea_branch(idea_id)
    with tempfile.TemporaryDirectory(prefix="taskyard-idea-") as scratch:
        work = Path(scratch)
        git(work, "init", "-q", env=env)
        git(work, "fetch", "-q", url, f"refs/heads/{branch}:refs/remotes/idea", env=env)
        git(work, "fetch", "-q", url, commit, env=env)
        head = git(work, "rev-parse", "refs/remotes/idea", env=env).decode().strip()
        if _holds(work, head, commit, env):
            return head
        parent = git(work, "rev-parse", f"{commit}^", env=env).decode().strip()
        new = commit if parent == head else _rebased(work, head, commit, env)
        lease = f"--force-with-lease=refs/heads/{branch}:{head}"
        git(work, "push", "-q", lease, url, f"{new}:refs/heads/{branch}", env=env)
        return new


def _holds(work: Path, head: str, commit: str, env: Mapping[str, str]) -> bool:
    """Whether the idea's branch already has the task's change: the commit itself, or one
    rebased from it (`Rebased-from: <commit>`): an integration that pushed and then died."""
    if _is_ancestor(work, commit, head, env):
        return True
    log = git(work, "log", "--format=%B", "-n", "200", head, env=env).decode()
    return f"Rebased-from: {commit}" in log


def _is_ancestor(work: Path, commit: str, head: str, env: Mapping[str, str]) -> bool:
    try:
        git(work, "merge-base", "--is-ancestor", commit, head, env=env)
    except TaskyardError:
        return False
    return True


def _rebased(work: Path, head: str, commit: str, env: Mapping[str, str]) -> str:
    git(work, "checkout", "-q", "--detach", head, env=env)
    try:
        git(work, "cherry-pick", "--no-commit", commit, env=env)
    except TaskyardError as exc:
        raise IntegrationConflict(
            f"commit {commit[:12]} does not apply onto the idea's branch at {head[:12]}: {exc}"
        ) from None
    message = git(work, "log", "-1", "--format=%B", commit, env=env).decode()
    fmt = "--format=%(trailers:key=Reviewed-by,valueonly)"
    reviewer = git(work, "log", "-1", fmt, commit, env=env).decode().strip()
    body = _TRAILER.sub("", message).rstrip() + f"\n\nRebased-from: {commit}\n"
    if not reviewer:
        raise IntegrationConflict(f"commit {commit[:12]} carries no Reviewed-by: not rebased")
    return commit_with_review_hash(work, body, staged_hash(work), reviewer, IDENTITY, IDENTITY)
