"""Delivering a reviewed fix to its pull request, with real git and the GitHub test server:
a local bare repository is the remote (`origin.git`), the fix is made in a worktree of
taskyard's mirror of it and committed with its Review-Hash, and every request to GitHub is
checked against its OpenAPI description (@octokit/openapi).

Suggestion mode posts one review of suggested changes; push mode lands the commit on the pull
request's branch only (never the default branch nor a protected one, never over a branch that
moved) and sets the `taskyard/review-hash` status; refusals are marked comments without the
secrets a test's output may print."""

from __future__ import annotations

import copy
import json
import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from taskyard.actions.keys import markers_in
from taskyard.config.changes import ChangesConfig
from taskyard.exceptions import DeliveryRefused
from taskyard.platforms.base import RetryPolicy
from taskyard.platforms.github_write import GitHubWriter
from taskyard.review import commit_with_review_hash, staged_hash, verify_range
from taskyard.review.hash import git_env
from taskyard.run.delivery import STATUS_CONTEXT, Delivery, GitRemote, PullRequest
from taskyard.run.mirrors import RepoMirrors, RepoSpec, git_environment
from tests.platform_servers import PlatformServer, github_server

TOKEN = "ghp_DELIVERYtokenTHATmustNEVERleak012345"
REVIEWER = "019a7c3e-5b1d-7f00-9c2e-4d8a6b1f2e3c"
IDENTITY = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
}
BASE = "".join(f"line {n}\n" for n in range(1, 11))
HEAD = "".join(f"head {n}\n" for n in range(1, 11))  # the pull request rewrites every line
REPO = Path(__file__).resolve().parents[2]
OCTOKIT = REPO / ".cache/npm/node_modules/@octokit/webhooks-examples/api.github.com/index.json"


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args],
        env={**git_env(), **IDENTITY},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, f"git {args}: {done.stderr}"
    return done.stdout.strip()


def refs(bare: Path) -> str:
    return git(bare, "for-each-ref", "--format=%(refname) %(objectname)")


@dataclass
class Origin:
    """The remote: `main` (the default branch), `feature` (the pull request's head) and
    `release/x`, each one commit."""

    bare: Path
    seed: Path

    def sha(self, branch: str) -> str:
        return git(self.bare, "rev-parse", f"refs/heads/{branch}")

    def commit_elsewhere(self, branch: str, files: dict[str, str]) -> str:
        """Someone else pushes a commit to `branch`."""
        git(self.seed, "checkout", "-q", branch)
        git(self.seed, "pull", "-q", "origin", branch)
        write(self.seed, files)
        git(self.seed, "commit", "-qam", "someone else")
        git(self.seed, "push", "-q", "origin", branch)
        return self.sha(branch)


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).write_text(text)


@pytest.fixture
def origin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Origin:
    for name, value in IDENTITY.items():
        monkeypatch.setenv(name, value)  # commit_with_review_hash commits as git is configured
    bare, seed = tmp_path / "origin.git", tmp_path / "seed"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    seed.mkdir()
    git(seed, "init", "-q", "-b", "main")
    git(seed, "remote", "add", "origin", str(bare))
    write(seed, {"app.py": BASE})
    git(seed, "add", "-A")
    git(seed, "commit", "-qm", "base")
    git(seed, "push", "-q", "origin", "main", "main:release/x")
    git(seed, "checkout", "-qb", "feature")
    write(seed, {"app.py": HEAD})
    git(seed, "commit", "-qam", "the pull request")
    git(seed, "push", "-q", "origin", "feature")
    return Origin(bare, seed)


def pull_request(origin: Origin, branch: str = "feature", **changes: Any) -> PullRequest:
    pr = PullRequest("acme/app", 7, branch, origin.sha(branch), "main", default_branch="main")
    return replace(pr, **changes)


async def worktree_at(tmp_path: Path, origin: Origin, sha: str) -> Path:
    """A worktree of taskyard's mirror of the origin, at `sha`, as a task's workspace is."""
    mirrors = RepoMirrors(
        tmp_path / "mirrors", lambda _: str(origin.bare), env=git_environment(os.environ)
    )
    work = tmp_path / "work"
    await mirrors.checkout(RepoSpec("acme/app", sha=sha), work)
    return work


def reviewed_commit(work: Path, files: dict[str, str]) -> tuple[str, str]:
    """The fix staged and committed through review: (commit, Review-Hash)."""
    write(work, files)
    git(work, "add", "-A")
    reviewed = staged_hash(work)
    return commit_with_review_hash(work, "Fix it", reviewed, REVIEWER), reviewed


class Remote:
    """The git side of a Delivery, counting how often it was asked where the remote is."""

    def __init__(self, origin: Origin) -> None:
        self.asked: list[str] = []
        self._origin = origin

    def url(self, repo: str) -> str:
        self.asked.append(repo)
        return str(self._origin.bare)

    def git_remote(self) -> GitRemote:
        headers = {"Authorization": f"Basic {TOKEN}"}
        return GitRemote(self.url, lambda _: headers, env=git_environment(os.environ))


@pytest.fixture
def github() -> Iterator[PlatformServer]:
    with github_server() as server:
        yield server
        assert server.problems == []


@pytest.fixture
async def writer(github: PlatformServer) -> AsyncIterator[GitHubWriter]:
    client = GitHubWriter(token=TOKEN, base_url=github.base_url, retry=RetryPolicy(attempts=1))
    yield client
    await client.aclose()


def delivery(writer: GitHubWriter, remote: Remote, **changes: Any) -> Delivery:
    return Delivery(writer, ChangesConfig(**changes), remote.git_remote())


# --- suggestion mode ---------------------------------------------------------------------


async def test_a_fix_is_one_review_of_suggested_changes_github_accepts(
    tmp_path: Path, origin: Origin, github: PlatformServer, writer: GitHubWriter
) -> None:
    pr = pull_request(origin)
    work = await worktree_at(tmp_path, origin, pr.head_sha)
    fixed = HEAD.replace("head 3\n", "fixed 3\n").replace("head 6\nhead 7\n", "six\nseven\n")
    commit, _ = reviewed_commit(work, {"app.py": fixed, "notes.md": "a new file\n"})

    done = await delivery(writer, Remote(origin)).suggest(pr, work, commit, "Fixed as asked.")

    (sent,) = github.requests
    assert (sent.method, sent.path) == ("POST", "/repos/acme/app/pulls/7/reviews")
    body = sent.json()
    assert body["commit_id"] == pr.head_sha and body["event"] == "COMMENT"
    by_line = {c["line"]: c for c in body["comments"]}
    assert by_line[3]["body"].startswith("```suggestion\nfixed 3\n```")
    assert (by_line[7]["start_line"], by_line[7]["start_side"]) == (6, "RIGHT")
    assert by_line[7]["body"].startswith("```suggestion\nsix\nseven\n```")
    assert "```diff" in body["body"] and "+a new file" in body["body"]  # no suggestion for it
    assert body["body"].startswith("Fixed as asked.")
    for text in [body["body"], *(c["body"] for c in body["comments"])]:
        assert markers_in(text) == [f"fix.7.{commit[:12]}"]
    assert done.mode == "suggest" and done.sha == commit
    assert done.url is not None and "2 suggested changes" in done.detail


async def test_lines_outside_the_pull_requests_diff_go_into_the_body(
    tmp_path: Path, origin: Origin, github: PlatformServer, writer: GitHubWriter
) -> None:
    pr = pull_request(origin)
    work = await worktree_at(tmp_path, origin, pr.head_sha)
    commit, _ = reviewed_commit(work, {"app.py": HEAD.replace("head 3", "fixed 3")})
    pr_diff = "diff --git a/app.py b/app.py\n--- a/app.py\n+++ b/app.py\n@@ -9 +9 @@\n-x\n+y\n"

    await delivery(writer, Remote(origin)).suggest(pr, work, commit, "", pr_diff=pr_diff)

    body = github.requests[0].json()
    assert "comments" not in body  # line 3 is not in that diff: GitHub would refuse it there
    assert "-head 3\n+fixed 3" in body["body"]


# --- push mode ---------------------------------------------------------------------------


async def test_a_push_lands_on_the_pull_requests_branch_with_its_review_hash(
    tmp_path: Path, origin: Origin, github: PlatformServer, writer: GitHubWriter
) -> None:
    pr = pull_request(origin)
    work = await worktree_at(tmp_path, origin, pr.head_sha)
    commit, reviewed = reviewed_commit(work, {"app.py": HEAD.replace("head 3", "fixed 3")})
    main_before = origin.sha("main")

    done = await delivery(writer, Remote(origin), mode="push").push(pr, work, commit, reviewed)

    assert origin.sha("feature") == commit
    assert verify_range(origin.bare, f"{pr.head_sha}..feature") == []
    assert git(origin.bare, "show", "-s", "--format=%(trailers:key=Review-Hash,valueonly)", commit)
    assert origin.sha("main") == main_before
    (status,) = github.requests
    assert (status.method, status.path) == ("POST", f"/repos/acme/app/statuses/{commit}")
    sent = status.json()
    assert (sent["state"], sent["context"]) == ("success", STATUS_CONTEXT)
    assert reviewed[:12] in sent["description"]
    assert (done.mode, done.sha) == ("push", commit)
    assert TOKEN not in json.dumps(sent)


@pytest.mark.parametrize(
    ("branch", "why"),
    [("main", "is the default branch"), ("release/x", "is a protected branch")],
)
async def test_no_push_to_the_default_or_a_protected_branch(
    tmp_path: Path,
    origin: Origin,
    github: PlatformServer,
    writer: GitHubWriter,
    branch: str,
    why: str,
) -> None:
    pr = pull_request(origin, branch)
    work = await worktree_at(tmp_path, origin, pr.head_sha)
    commit, reviewed = reviewed_commit(work, {"app.py": BASE.replace("line 3", "fixed 3")})
    before, remote = refs(origin.bare), Remote(origin)

    with pytest.raises(DeliveryRefused, match=why):
        await delivery(writer, remote, mode="push").push(pr, work, commit, reviewed)

    assert refs(origin.bare) == before
    assert remote.asked == []  # refused before git was told where the remote is
    assert github.requests == []


async def test_an_unknown_default_branch_is_asked_of_the_remote(
    tmp_path: Path, origin: Origin, github: PlatformServer, writer: GitHubWriter
) -> None:
    git(origin.bare, "symbolic-ref", "HEAD", "refs/heads/feature")  # feature is the default
    pr = pull_request(origin, default_branch=None)
    work = await worktree_at(tmp_path, origin, pr.head_sha)
    commit, reviewed = reviewed_commit(work, {"app.py": HEAD.replace("head 3", "fixed 3")})
    before = refs(origin.bare)
    push = delivery(writer, Remote(origin), mode="push", protected_branches=()).push

    with pytest.raises(DeliveryRefused, match="'feature' is the default branch"):
        await push(pr, work, commit, reviewed)

    assert refs(origin.bare) == before
    git(origin.bare, "symbolic-ref", "HEAD", "refs/heads/main")
    await push(pr, work, commit, reviewed)
    assert origin.sha("feature") == commit


async def test_a_branch_that_moved_meanwhile_is_not_overwritten(
    tmp_path: Path, origin: Origin, github: PlatformServer, writer: GitHubWriter
) -> None:
    pr = pull_request(origin)
    work = await worktree_at(tmp_path, origin, pr.head_sha)
    commit, reviewed = reviewed_commit(work, {"app.py": HEAD.replace("head 3", "fixed 3")})
    theirs = origin.commit_elsewhere("feature", {"app.py": HEAD + "more\n"})

    with pytest.raises(DeliveryRefused, match="moved since the fix started"):
        await delivery(writer, Remote(origin), mode="push").push(pr, work, commit, reviewed)

    assert origin.sha("feature") == theirs
    assert github.requests == []


async def test_a_retried_push_of_the_same_commit_succeeds(
    tmp_path: Path, origin: Origin, github: PlatformServer, writer: GitHubWriter
) -> None:
    pr = pull_request(origin)
    work = await worktree_at(tmp_path, origin, pr.head_sha)
    commit, reviewed = reviewed_commit(work, {"app.py": HEAD.replace("head 3", "fixed 3")})
    push = delivery(writer, Remote(origin), mode="push").push

    await push(pr, work, commit, reviewed)
    done = await push(pr, work, commit, reviewed)  # a worker died before recording it

    assert origin.sha("feature") == commit
    assert "already on feature" in done.detail


async def test_a_commit_without_its_review_hash_is_not_pushed(
    tmp_path: Path, origin: Origin, github: PlatformServer, writer: GitHubWriter
) -> None:
    pr = pull_request(origin)
    work = await worktree_at(tmp_path, origin, pr.head_sha)
    commit, reviewed = reviewed_commit(work, {"app.py": HEAD.replace("head 3", "fixed 3")})
    write(work, {"app.py": HEAD.replace("head 3", "sneaked in")})
    git(work, "commit", "-qam", "made by hand")
    by_hand = git(work, "rev-parse", "HEAD")
    before = refs(origin.bare)
    push = delivery(writer, Remote(origin), mode="push").push

    with pytest.raises(DeliveryRefused, match="no Review-Hash trailer"):
        await push(pr, work, by_hand, reviewed)
    with pytest.raises(DeliveryRefused, match="not the state review approved"):
        await push(pr, work, commit, "0" * 64)

    assert refs(origin.bare) == before
    assert github.requests == []


async def test_a_fork_branch_is_refused(
    tmp_path: Path, origin: Origin, github: PlatformServer, writer: GitHubWriter
) -> None:
    pr = pull_request(origin, head_repo="someone/app")
    work = await worktree_at(tmp_path, origin, pr.head_sha)
    commit, reviewed = reviewed_commit(work, {"app.py": HEAD.replace("head 3", "fixed 3")})

    with pytest.raises(DeliveryRefused, match="in the fork someone/app"):
        await delivery(writer, Remote(origin), mode="push").push(pr, work, commit, reviewed)

    assert origin.sha("feature") == pr.head_sha


# --- refusals ----------------------------------------------------------------------------


async def test_a_refusal_is_a_marked_comment_without_the_secret(
    origin: Origin, github: PlatformServer, writer: GitHubWriter
) -> None:
    leaked = "ghp_abcdefABCDEF0123456789abcdefABCDEF01"
    reason = (
        "taskyard did not push: the tests failed (exit 1). The end of their output:\n"
        f"E   AssertionError: token='{leaked}'\n"
        "E   assert 3 == 4"
    )

    done = await delivery(writer, Remote(origin)).refuse(pull_request(origin), reason)

    (sent,) = github.requests
    assert (sent.method, sent.path) == ("POST", "/repos/acme/app/issues/7/comments")
    body = sent.json()["body"]
    assert body.startswith("taskyard did not push: the tests failed (exit 1).")
    assert "E   assert 3 == 4" in body and "GitHub Token" in body
    assert leaked not in body and leaked not in done.detail
    assert len(markers_in(body)) == 1
    assert done.mode == "refusal" and done.url is not None


# --- the pull request of a delivery ------------------------------------------------------


def _example(name: str, action: str) -> dict[str, Any]:
    groups = {g["name"]: g["examples"] for g in json.loads(OCTOKIT.read_text())}
    return copy.deepcopy(next(p for p in groups[name] if p["action"] == action))


def test_the_pull_request_is_read_from_a_real_delivery() -> None:
    if not OCTOKIT.is_file():
        pytest.fail(f"{OCTOKIT} is missing: scripts/test installs it")
    payload = _example("pull_request_review_comment", "created")
    pull = payload["pull_request"]

    pr = PullRequest.from_payload(payload)

    assert pr is not None
    assert (pr.repo, pr.number) == (payload["repository"]["full_name"], pull["number"])
    assert (pr.head_ref, pr.head_sha) == (pull["head"]["ref"], pull["head"]["sha"])
    assert pr.default_branch == payload["repository"]["default_branch"]
    assert PullRequest.from_payload(_example("issue_comment", "created")) is None
    pull["head"]["repo"] = None  # the fork was deleted
    gone = PullRequest.from_payload(payload)
    assert gone is not None and gone.head_repo == ""
