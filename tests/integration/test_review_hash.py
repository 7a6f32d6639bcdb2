"""The Review-Hash with real git: what it hashes, the commit taskyard makes of a reviewed
state, and `taskyard review-hash verify` over commits made through review, amended or made by
hand."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from taskyard.exceptions import ReviewHashError, ReviewHashMismatch
from taskyard.review import (
    commit_with_review_hash,
    commits_in,
    staged_hash,
    tree_hash,
    verify_range,
)
from taskyard.review.hash import VERSION_LINE, digest, git_env

IDENTITY = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
}
REVIEWER = "019a3f2e-7c4b-7d10-9e21-5b8c0d4a6f13"


def git(repo: Path, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args],
        env={**git_env(), **IDENTITY},
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, f"git {args}: {done.stderr}"
    return done.stdout.strip()


@pytest.fixture(autouse=True)
def identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """The committer taskyard's commits get (git's configuration, here the environment)."""
    for name, value in IDENTITY.items():
        monkeypatch.setenv(name, value)


def make_repo(root: Path, files: dict[str, str] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q", "-b", "main")
    for name, content in (files or {"README.md": "hello\n", "src/app.py": "print(1)\n"}).items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    git(root, "add", "-A")
    return root


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


def commit_reviewed(repo: Path, message: str = "Change the app") -> str:
    return commit_with_review_hash(repo, message, staged_hash(repo), REVIEWER)


# --- what is hashed -----------------------------------------------------------------------


def test_the_hash_is_stable_and_the_same_in_another_repository(tmp_path: Path) -> None:
    first = make_repo(tmp_path / "one")
    second = make_repo(tmp_path / "two")
    assert staged_hash(first) == staged_hash(first) == staged_hash(second)
    assert len(staged_hash(first)) == 64
    git(first, "commit", "-q", "-m", "one")
    git(second, "commit", "-q", "-m", "a different message, author, time")
    assert tree_hash(first, "HEAD") == tree_hash(second, "HEAD") == staged_hash(first)


def test_the_hash_is_sha256_of_the_documented_text(repo: Path) -> None:
    import hashlib

    blob = git(repo, "hash-object", "README.md")
    app = git(repo, "hash-object", "src/app.py")
    text = VERSION_LINE + f"100644 {blob} README.md\x00100644 {app} src/app.py\x00".encode()
    assert staged_hash(repo) == hashlib.sha256(text).hexdigest()


def test_staged_and_tree_hashes_agree_after_a_commit(repo: Path) -> None:
    (repo / "tool").write_text("#!/bin/sh\n")
    (repo / "tool").chmod(0o755)
    (repo / "link").symlink_to("README.md")
    (repo / "a b\nc").write_text("odd name\n")
    git(repo, "add", "-A")
    before = staged_hash(repo)
    git(repo, "commit", "-q", "-m", "files of every kind")
    assert tree_hash(repo, "HEAD") == staged_hash(repo) == before
    assert tree_hash(repo, "HEAD^{tree}") == before


@pytest.mark.parametrize("change", ["chmod", "rename", "content", "symlink", "delete"])
def test_every_kind_of_change_changes_the_hash(repo: Path, change: str) -> None:
    before = staged_hash(repo)
    if change == "chmod":
        (repo / "src/app.py").chmod(0o755)
    elif change == "rename":
        git(repo, "mv", "src/app.py", "src/main.py")
    elif change == "content":
        (repo / "src/app.py").write_text("print(2)\n")
    elif change == "symlink":
        (repo / "src/link.py").symlink_to("app.py")
    else:
        git(repo, "rm", "-q", "-f", "README.md")
    git(repo, "add", "-A")
    assert staged_hash(repo) != before


def test_a_symlink_is_not_the_file_it_points_to(tmp_path: Path) -> None:
    as_file = make_repo(tmp_path / "file", {"target": "x", "name": "target"})
    as_link = make_repo(tmp_path / "link", {"target": "x"})
    (as_link / "name").symlink_to("target")
    git(as_link, "add", "-A")
    assert staged_hash(as_file) != staged_hash(as_link)


def test_a_submodule_counts_with_its_commit(tmp_path: Path) -> None:
    inner = make_repo(tmp_path / "inner")
    git(inner, "commit", "-q", "-m", "inner")
    outer = make_repo(tmp_path / "outer")
    pinned = git(inner, "rev-parse", "HEAD")
    git(outer, "update-index", "--add", "--cacheinfo", f"160000,{pinned},vendor/inner")
    staged = staged_hash(outer)
    git(outer, "commit", "-q", "-m", "with a submodule")
    assert tree_hash(outer, "HEAD") == staged
    assert f"160000 {pinned} vendor/inner".encode() in _hashed_text(outer)


def _hashed_text(repo: Path) -> bytes:
    from taskyard.review.hash import tree_entries

    return b"".join(f"{m} {o} ".encode() + p + b"\0" for m, o, p in tree_entries(repo, "HEAD"))


def test_an_unmerged_index_is_refused(repo: Path) -> None:
    git(repo, "commit", "-q", "-m", "base")
    git(repo, "checkout", "-q", "-b", "other")
    (repo / "README.md").write_text("theirs\n")
    git(repo, "commit", "-q", "-am", "theirs")
    git(repo, "checkout", "-q", "main")
    (repo / "README.md").write_text("ours\n")
    git(repo, "commit", "-q", "-am", "ours")
    subprocess.run(["git", "-C", str(repo), "merge", "-q", "other"], capture_output=True)
    with pytest.raises(ReviewHashError, match=r"unmerged entries \(README\.md\)"):
        staged_hash(repo)


def test_entries_hash_the_same_in_any_order() -> None:
    entries = [("100644", "a" * 40, b"b"), ("100755", "b" * 40, b"a/x"), ("100664", "c" * 40, b"a")]
    assert digest(entries) == digest(reversed(entries))
    assert digest([("100664", "c" * 40, b"a")]) == digest([("100644", "c" * 40, b"a")])


def test_an_unknown_revision_or_a_directory_without_git_is_a_clear_error(
    repo: Path, tmp_path: Path
) -> None:
    with pytest.raises(ReviewHashError, match="'nope' names no tree"):
        tree_hash(repo, "nope")
    with pytest.raises(ReviewHashError, match="--output=x"):
        tree_hash(repo, "--output=x")
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(ReviewHashError, match="not a git repository"):
        tree_hash(plain, "HEAD")


# --- the commit ---------------------------------------------------------------------------


def test_the_commit_carries_the_hash_and_the_reviewer(repo: Path) -> None:
    reviewed = staged_hash(repo)
    sha = commit_with_review_hash(
        repo, "Add the app\n\nWhy it is so.", reviewed, REVIEWER, author="Ada <ada@example.com>"
    )
    assert git(repo, "rev-parse", "HEAD") == sha
    trailers = git(repo, "log", "-1", "--format=%(trailers:only,unfold)")
    assert trailers.splitlines() == [f"Review-Hash: {reviewed}", f"Reviewed-by: {REVIEWER}"]
    assert git(repo, "log", "-1", "--format=%an <%ae>|%s") == "Ada <ada@example.com>|Add the app"
    assert tree_hash(repo, sha) == reviewed
    assert git(repo, "status", "--porcelain") == ""
    assert verify_range(repo, "HEAD") == []


def test_a_message_keeps_its_own_trailers(repo: Path) -> None:
    commit_reviewed(repo, "Fix\n\nCo-authored-by: Bo <bo@example.com>")
    keys = git(repo, "log", "-1", "--format=%(trailers:only,keyonly)").splitlines()
    assert keys == ["Co-authored-by", "Review-Hash", "Reviewed-by"]


def test_the_next_commit_has_the_previous_one_as_parent(repo: Path) -> None:
    first = commit_reviewed(repo)
    (repo / "README.md").write_text("more\n")
    git(repo, "add", "README.md")
    second = commit_reviewed(repo, "More")
    assert git(repo, "rev-parse", f"{second}^") == first
    assert verify_range(repo, f"{first}..HEAD") == []
    assert commits_in(repo, f"{first}..HEAD") == [second]
    assert commits_in(repo, "main") == [second]


def test_a_state_changed_after_review_is_not_committed(repo: Path) -> None:
    git(repo, "commit", "-q", "-m", "base")
    (repo / "src/app.py").write_text("print('reviewed')\n")
    git(repo, "add", "-A")
    reviewed = staged_hash(repo)
    (repo / "src/app.py").write_text("print('slipped in')\n")
    git(repo, "add", "-A")
    head = git(repo, "rev-parse", "HEAD")
    with pytest.raises(ReviewHashMismatch, match="changed after review; nothing was committed"):
        commit_with_review_hash(repo, "Sneaky", reviewed, REVIEWER)
    assert git(repo, "rev-parse", "HEAD") == head
    assert git(repo, "log", "--format=%s") == "base"


@pytest.mark.parametrize(
    "reviewer", ["", "test", "fake", "00000000-0000-0000", "xxxxxxxxxx", "abc123", "a b c d e f"]
)
def test_a_placeholder_reviewer_is_refused(repo: Path, reviewer: str) -> None:
    with pytest.raises(ReviewHashError):
        commit_with_review_hash(repo, "Change", staged_hash(repo), reviewer)
    unborn = subprocess.run(["git", "-C", str(repo), "rev-parse", "-q", "--verify", "HEAD"])
    assert unborn.returncode != 0


def test_a_message_with_its_own_review_hash_is_refused(repo: Path) -> None:
    forged = "Change\n\nReview-Hash: " + "0" * 64
    with pytest.raises(ReviewHashError, match="already has"):
        commit_with_review_hash(repo, forged, staged_hash(repo), REVIEWER)


def test_a_malformed_reviewed_hash_is_refused(repo: Path) -> None:
    with pytest.raises(ReviewHashError, match="not a Review-Hash"):
        commit_with_review_hash(repo, "Change", "abc", REVIEWER)


# --- verify -------------------------------------------------------------------------------


def test_verify_rejects_an_amend_that_changed_the_tree(repo: Path) -> None:
    commit_reviewed(repo)
    (repo / "src/app.py").write_text("print('after review')\n")
    git(repo, "commit", "-q", "-a", "--amend", "--no-edit")
    assert "Review-Hash:" in git(repo, "log", "-1", "--format=%B")
    (found,) = verify_range(repo, "HEAD")
    assert found.problem == "mismatch"
    assert "the tree was changed after review" in str(found)
    assert str(found).startswith(git(repo, "rev-parse", "HEAD")[:12] + " Change the app: ")


def test_verify_accepts_an_amend_of_the_message_only(repo: Path) -> None:
    commit_reviewed(repo)
    message = git(repo, "log", "-1", "--format=%B").replace("Change the app", "Better words")
    git(repo, "commit", "-q", "--amend", "-F", "-", stdin=message)
    assert verify_range(repo, "HEAD") == []


def test_verify_rejects_a_commit_without_a_trailer_and_one_with_two(repo: Path) -> None:
    git(repo, "commit", "-q", "-m", "By hand")
    base = git(repo, "rev-parse", "HEAD")
    (repo / "README.md").write_text("two\n")
    git(repo, "add", "-A")
    value = staged_hash(repo)
    git(
        repo,
        "commit",
        "-q",
        "-F",
        "-",
        stdin=f"Two\n\nReview-Hash: {value}\nReview-Hash: {value}\n",
    )
    (repo / "README.md").write_text("three\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-F", "-", stdin="Bad\n\nReview-Hash: not-hex\n")
    found = verify_range(repo, f"{base}^!") + verify_range(repo, f"{base}..HEAD")
    assert [(f.subject, f.problem) for f in found] == [
        ("By hand", "missing"),
        ("Two", "several"),
        ("Bad", "malformed"),
    ]


def test_verify_checks_a_merge_commits_tree(repo: Path) -> None:
    commit_reviewed(repo, "Base")
    git(repo, "checkout", "-q", "-b", "side")
    (repo / "side.txt").write_text("side\n")
    git(repo, "add", "-A")
    commit_reviewed(repo, "Side")
    git(repo, "checkout", "-q", "main")
    (repo / "main.txt").write_text("main\n")
    git(repo, "add", "-A")
    commit_reviewed(repo, "Main")
    git(repo, "merge", "-q", "--no-ff", "--no-commit", "side")
    commit_reviewed(repo, "Merge side")
    assert len(git(repo, "log", "-1", "--format=%P").split()) == 2
    assert not (repo / ".git" / "MERGE_HEAD").exists()
    assert verify_range(repo, "HEAD~1..HEAD") == []
    (repo / "main.txt").write_text("changed in the merge\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--amend", "--no-edit")
    (found,) = verify_range(repo, "HEAD")
    assert (found.subject, found.problem) == ("Merge side", "mismatch")


def test_a_single_revision_is_that_commit_only(repo: Path) -> None:
    git(repo, "commit", "-q", "-m", "by hand")
    commit_reviewed(repo, "Reviewed")
    assert verify_range(repo, "HEAD") == []
    assert len(verify_range(repo, "HEAD~1..HEAD")) == 0
    assert len(commits_in(repo, "HEAD")) == 1


# --- the command line ---------------------------------------------------------------------


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`taskyard review-hash …` as a user runs it: no configuration, no database, no token."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKYARD_")}
    env["TASKYARD_HOME"] = str(cwd / "no-home")  # must never be created
    return subprocess.run(
        [sys.executable, "-m", "taskyard", "review-hash", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_compute_prints_the_staged_or_the_commit_hash(repo: Path, tmp_path: Path) -> None:
    staged = staged_hash(repo)
    done = cli("compute", "--repo", str(repo), cwd=tmp_path)
    assert (done.returncode, done.stdout) == (0, staged + "\n"), done.stderr
    git(repo, "commit", "-q", "-m", "base")
    done = cli("compute", "HEAD", cwd=repo)
    assert (done.returncode, done.stdout) == (0, staged + "\n"), done.stderr
    done = cli("compute", "--repo", str(repo), "nope", cwd=tmp_path)
    assert done.returncode == 2 and "names no tree" in done.stderr
    assert not (tmp_path / "no-home").exists() and not (repo / "no-home").exists()


def test_cli_verify_exit_codes_and_messages(repo: Path, tmp_path: Path) -> None:
    git(repo, "commit", "-q", "-m", "Root by hand")
    git(repo, "commit", "-q", "--allow-empty", "-m", "Base by hand")
    commit_reviewed(repo, "Reviewed change")
    done = cli("verify", "--repo", str(repo), cwd=tmp_path)
    assert (done.returncode, done.stdout) == (0, "1 commit verified\n"), done.stderr
    done = cli("verify", "--repo", str(repo), "HEAD~1..HEAD", cwd=tmp_path)
    assert (done.returncode, done.stdout) == (0, "1 commit verified\n")

    (repo / "src/app.py").write_text("print('after review')\n")
    git(repo, "commit", "-q", "-a", "--amend", "--no-edit")
    done = cli("verify", "--repo", str(repo), "main~1^!", cwd=tmp_path)
    assert done.returncode == 1
    assert "Base by hand: no Review-Hash trailer" in done.stdout
    done = cli("verify", "--repo", str(repo), "--json", "HEAD", cwd=tmp_path)
    assert done.returncode == 1
    data = json.loads(done.stdout)
    assert (data["commits"], data["verified"]) == (1, 0)
    assert [f["problem"] for f in data["findings"]] == ["mismatch"]
    assert data["findings"][0]["subject"] == "Reviewed change"

    done = cli("verify", "--repo", str(repo), "main~2..HEAD", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stdout.splitlines()[-1] == "2 of 2 commits failed"

    done = cli("verify", "--repo", str(tmp_path), cwd=tmp_path)
    assert done.returncode == 2 and "not a git repository" in done.stderr
