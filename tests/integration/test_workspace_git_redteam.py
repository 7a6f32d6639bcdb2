"""What an agent can write in its worktree's admin dir (`HEAD`, `locked`, `gitdir`: read-write
in its box so that git works) must not outlive its task nor break the mirror for later ones."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from taskyard.run.mirrors import RepoSpec
from taskyard.run.workspace import Workspaces
from tests.integration.test_workspace_git import Upstream, git, head, mirror_path
from tests.integration.test_workspace_git import upstream as upstream  # the fixture
from tests.integration.test_workspace_git import ws as ws  # the fixture


async def test_an_agents_branch_lock_and_false_gitdir_do_not_break_later_fetches(
    tmp_path: Path, ws: Workspaces, upstream: Upstream
) -> None:
    dirs = await ws.prepare("t1", RepoSpec("acme/api"))
    assert dirs.repo is not None
    admin = Path(git("rev-parse", "--absolute-git-dir", cwd=dirs.repo))
    # what the agent writes, in its box: a branch of the mirror "checked out" (a plain
    # `git checkout main` does that), a lock, and a gitdir that points at a file that exists
    (admin / "HEAD").write_text("ref: refs/heads/main\n")
    (admin / "locked").mkdir()  # a directory: `locked` only has to exist
    (admin / "gitdir").write_text(str(upstream.bare / "HEAD") + "\n")
    await ws.finish("t1", keep=False)
    assert not admin.exists()  # its admin dir went with the task
    later = upstream.commit("c4", "four\n")
    again = await ws.prepare("t2", RepoSpec("acme/api"))  # fetches main into the mirror
    assert head(again.repo) == later
    assert [p.name for p in (mirror_path(tmp_path) / "worktrees").iterdir()] == ["repo"]


async def test_a_branch_checked_out_in_a_running_task_does_not_stop_another_fetch(
    ws: Workspaces, upstream: Upstream
) -> None:
    first = await ws.prepare("t1", RepoSpec("acme/api"))
    assert first.repo is not None
    git("checkout", "-q", "main", cwd=first.repo)  # the agent of a task still running
    later = upstream.commit("c4", "four\n")
    second = await ws.prepare("t2", RepoSpec("acme/api"))
    assert head(second.repo) == later


@pytest.mark.timeout(30)
async def test_a_fifo_planted_as_the_worktrees_git_file_does_not_hang_taskyard(
    tmp_path: Path, ws: Workspaces
) -> None:
    dirs = await ws.prepare("t1", RepoSpec("acme/api"))
    assert dirs.repo is not None
    (dirs.repo / ".git").unlink()
    os.mkfifo(dirs.repo / ".git")  # a read of it would wait for a writer forever
    await asyncio.wait_for(ws.finish("t1", keep=True), 10)
    await asyncio.wait_for(ws.sweep_stale(now=time.time() + 10 * 86400), 10)
    assert not dirs.root.exists()
