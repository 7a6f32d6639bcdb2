"""An idea's git (`taskyard.ideas.integrate`) against a local bare repository: the idea's
branch started from the default branch, tasks pushed to their own branches, integrated by
fast-forward, or rebased onto a newer head with a Review-Hash that still verifies, a conflict
refused, and an integration that already happened changing nothing."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from taskyard.ideas.integrate import IdeaGit, IntegrationConflict, idea_branch, task_branch
from taskyard.review.commit import commit_with_review_hash
from taskyard.review.hash import staged_hash
from taskyard.review.verify import verify_range
from taskyard.run.delivery import GitRemote

SESSION = "6f1c2a9e-4b7d-4c1e-9a55-0d2e8b7f3c11"
WHO = "Dev <dev@example.com>"


def sh(*args: str, cwd: Path) -> str:
    return subprocess.run(args, cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def bare(tmp_path: Path) -> Path:
    work = tmp_path / "seed"
    work.mkdir()
    sh("git", "init", "-q", "-b", "main", cwd=work)
    (work / "app.py").write_text("a = 1\n")
    sh("git", "add", ".", cwd=work)
    sh("git", "-c", "user.name=D", "-c", "user.email=d@x", "commit", "-qm", "first", cwd=work)
    remote = tmp_path / "remote.git"
    sh("git", "clone", "-q", "--bare", str(work), str(remote), cwd=tmp_path)
    return remote


def git_for(bare: Path) -> IdeaGit:
    return IdeaGit(GitRemote(lambda repo: str(bare)))


def task_commit(
    bare: Path, tmp_path: Path, start: str, name: str, text: str, where: str = ""
) -> tuple[Path, str]:
    """A task's reviewed commit on `start` (adding `<name>.py`), in a worktree of its own."""
    tree = tmp_path / f"wt-{where or name}"
    sh("git", "clone", "-q", str(bare), str(tree), cwd=tmp_path)
    sh("git", "checkout", "-q", "--detach", start, cwd=tree)
    (tree / f"{name}.py").write_text(text)
    sh("git", "add", ".", cwd=tree)
    sha = commit_with_review_hash(tree, f"task {name}\n", staged_hash(tree), SESSION, WHO, WHO)
    return tree, sha


async def test_tasks_integrate_in_order_and_every_commit_verifies(
    bare: Path, tmp_path: Path
) -> None:
    ideas = git_for(bare)
    start = await ideas.start("acme/api", "i1")
    assert start == sh("git", "rev-parse", "main", cwd=bare)
    assert await ideas.start("acme/api", "i1") == start  # there already
    b_tree, b = task_commit(bare, tmp_path, start, "b", "b = 2\n")
    c_tree, c = task_commit(bare, tmp_path, start, "c", "c = 3\n")
    await ideas.push_task("acme/api", b_tree, b, task_branch("i1", "B"))
    await ideas.push_task("acme/api", c_tree, c, task_branch("i1", "C"))
    assert sh("git", "rev-parse", f"refs/heads/{task_branch('i1', 'B')}", cwd=bare) == b

    first = await ideas.integrate("acme/api", "i1", "B", b)
    assert first == b  # its parent was the head: fast-forward, the reviewed commit itself
    second = await ideas.integrate("acme/api", "i1", "C", c)
    assert second != c
    assert sh("git", "rev-parse", f"{second}^", cwd=bare) == b
    assert f"Rebased-from: {c}" in sh("git", "log", "-1", "--format=%B", second, cwd=bare)
    assert await ideas.integrate("acme/api", "i1", "C", c) == second  # done already
    clone = tmp_path / "check"
    sh("git", "clone", "-q", "--branch", idea_branch("i1"), str(bare), str(clone), cwd=tmp_path)
    assert verify_range(clone, f"{start}..HEAD") == []
    assert sorted(sh("git", "ls-files", cwd=clone).split()) == ["app.py", "b.py", "c.py"]
    assert sh("git", "rev-parse", "main", cwd=bare) == start  # the default branch untouched


async def test_a_change_that_does_not_apply_is_refused(bare: Path, tmp_path: Path) -> None:
    ideas = git_for(bare)
    start = await ideas.start("acme/api", "i1")
    b_tree, b = task_commit(bare, tmp_path, start, "same", "b = 2\n", "b")
    c_tree, c = task_commit(bare, tmp_path, start, "same", "c = 3\n", "c")
    await ideas.push_task("acme/api", b_tree, b, task_branch("i1", "B"))
    await ideas.push_task("acme/api", c_tree, c, task_branch("i1", "C"))
    await ideas.integrate("acme/api", "i1", "B", b)
    with pytest.raises(IntegrationConflict, match="does not apply"):
        await ideas.integrate("acme/api", "i1", "C", c)
    assert sh("git", "rev-parse", f"refs/heads/{idea_branch('i1')}", cwd=bare) == b
