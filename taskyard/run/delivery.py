"""Delivering a fix to its pull request: the last step of a gated change, after taskyard made
the reviewed commit (`taskyard.review.commit_with_review_hash`) in the fix's worktree.

Two ways (`changes.mode`):
- suggest: ONE pull request review on the head the fix started from, whose comments are
  GitHub suggested changes made from `git diff <head> <commit>`; what no suggestion can
  express (a new file, a line outside the pull request's diff) goes into the review's body as
  a `diff` block (`taskyard.review.suggest`).
- push: the commit goes to the pull request's own branch, and only there: never the
  repository's default branch, a protected pattern (`changes.protected_branches`) or a fork's
  branch, refused before any git call. The push is not forced and names the head the fix
  started from as the branch's expected value, so a branch that moved meanwhile refuses it
  instead of losing commits. Every commit pushed must carry its Review-Hash; once pushed, the
  commit gets the `taskyard/review-hash` status.

Refusals (this module's and the gates') are posted as plain-words comments (`refuse`). Every
body taskyard posts carries its hidden marker, so nothing it writes can trigger a fix.

Credentials stay with taskyard: git gets the auth header through GIT_CONFIG_* variables of the
one command that talks to the remote (`taskyard.run.mirrors`), and that command runs in a
fresh scratch repository that borrows the worktree's objects, so no configuration the agent
could have written in the worktree (`url.*.insteadOf`, proxies, hooks) is read when the token
is sent. Store, lifecycle and audit records are the caller's.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import logging
import re
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from taskyard.actions.keys import with_marker
from taskyard.config.changes import ChangesConfig
from taskyard.exceptions import DeliveryRefused, ReviewHashError, WorkspaceError
from taskyard.platforms import github_write as gw
from taskyard.platforms.writes import PlannedRequest, WriteResult
from taskyard.review.hash import git, tree_hash
from taskyard.review.safety import _SCAN_LOCK
from taskyard.review.suggest import commentable_lines, review_request, suggestions_from_diff
from taskyard.review.verify import verify_range
from taskyard.run.mirrors import (
    GitAuth,
    auth_env,
    fetch_error,
    public_url,
    run_git,
    stderr_tail,
)

log = logging.getLogger(__name__)

STATUS_CONTEXT = "taskyard/review-hash"
Send = Callable[[PlannedRequest], Awaitable[WriteResult]]
_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")  # a SHA-1 or SHA-256 repository's commit id
# What git's check-ref-format refuses in a branch name, and what would read as an option.
_BAD_REF = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|//|^[-/.]|/\.|[/.]$|\.lock(/|$)|^@$")
_DIFF_OPTIONS = ("--no-color", "--no-ext-diff", "--no-textconv", "-M")
_PREFIXES = ("--src-prefix=a/", "--dst-prefix=b/")  # whatever diff.noprefix says


@dataclass(frozen=True, slots=True)
class PullRequest:
    """The pull request a fix is for. `head_sha` is the head the fix started from (the push
    expects the branch still there); `head_repo` is where the branch lives when it is not
    `repo` (a fork; "" when the fork was deleted); `default_branch` None: asked of the
    remote before a push."""

    repo: str  # owner/name
    number: int
    head_ref: str
    head_sha: str
    base_ref: str
    default_branch: str | None = None
    head_repo: str | None = None

    @classmethod
    def from_pull(
        cls, repo: str, pull: Mapping[str, Any], default_branch: str | None = None
    ) -> PullRequest | None:
        """From a pull request object (a webhook's `pull_request`, or the REST answer of
        `GET /repos/{repo}/pulls/{n}`); None when it names no head or base."""
        head, base = _mapping(pull.get("head")), _mapping(pull.get("base"))
        number = pull.get("number")
        values = (head.get("ref"), head.get("sha"), base.get("ref"))
        if not isinstance(number, int) or not all(isinstance(v, str) and v for v in values):
            return None
        default = default_branch or _mapping(base.get("repo")).get("default_branch")
        return cls(
            repo=repo,
            number=number,
            head_ref=str(head["ref"]),
            head_sha=str(head["sha"]),
            base_ref=str(base["ref"]),
            default_branch=default if isinstance(default, str) and default else None,
            head_repo=_fork(repo, head),
        )

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> PullRequest | None:
        """From a `pull_request_review` or `pull_request_review_comment` delivery. None for
        an `issue_comment`, whose payload names no head: read the pull request
        (`GitHubClient.pull_request`'s raw answer) and use `from_pull`."""
        repository = _mapping(payload.get("repository"))
        repo, default = repository.get("full_name"), repository.get("default_branch")
        pull = payload.get("pull_request")
        if not isinstance(repo, str) or not isinstance(pull, Mapping):
            return None
        return cls.from_pull(repo, pull, default if isinstance(default, str) else None)

    @property
    def where(self) -> str:
        return f"{self.repo}#{self.number}"


@dataclass(frozen=True, slots=True)
class Delivered:
    """What reached the pull request: `mode` suggest, push or refusal; `url` of the review or
    comment (None for a push); `sha` the commit delivered; `detail` in words."""

    mode: str
    url: str | None
    sha: str | None
    detail: str


@dataclass(frozen=True, slots=True)
class GitRemote:
    """How taskyard pushes with git: where each repository is (`url_for`, as the mirrors
    resolve it: `taskyard.run.mirrors.url_resolver`), the auth headers for it (the mirrors'
    `git_auth`), git's environment (`git_environment(os.environ)`) and a time limit."""

    url_for: Callable[[str], str]
    auth: GitAuth | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    timeout: float = 600.0

    async def headers(self, repo: str) -> dict[str, str]:
        if self.auth is None:
            return {}
        found = self.auth(repo)
        return dict(await found if inspect.isawaitable(found) else found)


class Delivery:
    """Posts or pushes fixes to pull requests; see the module's docstring. `send` is a
    `GitHubWriter` or its `send`."""

    def __init__(self, send: Send | gw.GitHubWriter, changes: ChangesConfig, remote: GitRemote):
        self._send: Send = send.send if isinstance(send, gw.GitHubWriter) else send
        self._changes = changes
        self._remote = remote

    # --- suggest ------------------------------------------------------------------------

    async def suggest(
        self,
        pr: PullRequest,
        repo_dir: Path,
        commit: str,
        summary: str,
        *,
        pr_diff: str | None = None,
    ) -> Delivered:
        """Post the change from `pr.head_sha` to `commit` as one review of suggested changes.
        `pr_diff` (the pull request's own diff) says which lines a comment may sit on; without
        it the diff is made from the base branch in `repo_dir`, and when that branch is not
        there every change goes into the body as a diff (nothing GitHub would refuse)."""
        _check_ids(pr, commit, "post suggestions")
        key = f"fix.{pr.number}.{commit[:12]}"
        body = await asyncio.to_thread(
            _suggestion_review, pr, repo_dir, commit, with_marker(summary, key), pr_diff
        )
        comments = [{**c, "body": with_marker(c["body"], key)} for c in body.get("comments", [])]
        plan = gw.review(pr.repo, pr.number, pr.head_sha, body["body"], "COMMENT", comments)
        result = await self._send(plan)
        detail = _suggested(len(comments), "```diff" in body["body"])
        log.info(
            "fix suggested",
            extra={"repository": pr.repo, "pull_request": pr.number, "commit": commit},
        )
        return Delivered("suggest", result.url, commit, detail)

    # --- push ---------------------------------------------------------------------------

    async def push(
        self, pr: PullRequest, repo_dir: Path, commit: str, review_hash: str
    ) -> Delivered:
        """Push `commit` to the pull request's branch, expecting it still at `pr.head_sha`,
        then set its `taskyard/review-hash` status. DeliveryRefused, with nothing pushed, for
        a branch taskyard may not push to, a branch that moved, or a commit (or one between
        the head and it) without the Review-Hash of its own tree, `review_hash` for `commit`.
        Pushing again what is already there succeeds (and sets the status again), so a push
        whose status failed to post is retried as a whole."""
        _check_ids(pr, commit, "push")
        why_not = self._branch_refusal(pr, pr.default_branch)
        if why_not:
            raise DeliveryRefused(f"taskyard did not push: {why_not}")
        await asyncio.to_thread(_check_commits, repo_dir, pr.head_sha, commit, review_hash)
        url = self._remote.url_for(pr.repo)
        headers = await self._remote.headers(pr.repo)
        async with _scratch(repo_dir, self._remote.env) as scratch:
            git_push = _GitPush(scratch, url, headers, self._remote)
            if pr.default_branch is None:
                await self._check_default_branch(pr, git_push)
            pushed = await git_push.push(pr, commit)
        status = gw.commit_status(
            pr.repo, commit, "success", STATUS_CONTEXT, f"Review-Hash {review_hash[:12]} verified"
        )
        await self._send(status)
        log.info(
            "fix pushed",
            extra={"repository": pr.repo, "pull_request": pr.number, "commit": commit},
        )
        return Delivered("push", None, commit, pushed)

    async def _check_default_branch(self, pr: PullRequest, git_push: _GitPush) -> None:
        """Refuse the branch the remote's HEAD names, asked when the delivery did not say."""
        default = await git_push.default_branch(pr.repo)
        if default is None:
            why_not: str | None = f"the default branch of {pr.repo} is unknown"
        else:
            why_not = self._branch_refusal(pr, default)
        if why_not:
            raise DeliveryRefused(f"taskyard did not push: {why_not}")

    def _branch_refusal(self, pr: PullRequest, default_branch: str | None) -> str | None:
        """Why taskyard may not push to the pull request's branch, or None (`default_branch`
        None: not known yet, not checked)."""
        branch = pr.head_ref
        if _BAD_REF.search(branch):
            return f"{branch!r} is not a branch name"
        if pr.head_repo == "":
            return f"the fork holding the branch {branch!r} was deleted"
        if pr.head_repo is not None:
            return f"the branch {branch!r} is in the fork {pr.head_repo}, not in {pr.repo}"
        if branch == default_branch:
            return f"{branch!r} is the default branch of {pr.repo}"
        if self._changes.is_protected(branch):
            patterns = ", ".join(self._changes.protected_branches)
            return f"{branch!r} is a protected branch (changes.protected_branches: {patterns})"
        return None

    # --- refuse -------------------------------------------------------------------------

    async def refuse(self, pr: PullRequest, reason: str) -> Delivered:
        """Post `reason` on the pull request as a comment, with taskyard's marker; lines in
        which detect-secrets sees a secret (a test's output tail may print one) are hidden."""
        text = await asyncio.to_thread(_hide_secrets, reason.strip())
        digest = hashlib.sha256(text.encode()).hexdigest()[:12]
        body = with_marker(text, f"refusal.{pr.number}.{digest}")
        result = await self._send(gw.comment(pr.repo, pr.number, body))
        log.info("fix refusal posted", extra={"repository": pr.repo, "pull_request": pr.number})
        return Delivered("refusal", result.url, None, text)


def _check_ids(pr: PullRequest, commit: str, doing: str) -> None:
    """Both commits are full ids: anything else could reach git as an option or a ref."""
    for name, value in (("the pull request's head", pr.head_sha), ("the fix's commit", commit)):
        if not _SHA.fullmatch(value):
            raise DeliveryRefused(f"taskyard did not {doing}: {name} {value!r} is not a commit id")


def _hide_secrets(text: str) -> str:
    """`text` with every line in which detect-secrets (its default plugins and filters, as
    `taskyard.review.safety` scans a change) sees a secret replaced by a note saying so."""
    from detect_secrets.core.scan import scan_file
    from detect_secrets.settings import default_settings

    with tempfile.TemporaryDirectory(prefix="taskyard-scan-") as folder:
        path = Path(folder) / "refusal.txt"
        path.write_text(text, encoding="utf-8")
        with _SCAN_LOCK, default_settings():
            found = [(secret.line_number, secret.type) for secret in scan_file(str(path))]
    lines = text.split("\n")
    for number in {number for number, _ in found if 1 <= number <= len(lines)}:
        kinds = ", ".join(sorted({kind for n, kind in found if n == number}))
        lines[number - 1] = f"[a line is hidden here: it looks like a secret ({kinds})]"
    return "\n".join(lines)


# --- suggestion mode, in a thread (git runs synchronously) ------------------------------


def _suggestion_review(
    pr: PullRequest, repo_dir: Path, commit: str, summary: str, pr_diff: str | None
) -> dict[str, Any]:
    """The body of the review: the suggestions of `head..commit`, on the lines the pull
    request's diff shows."""
    diff = _text(git(repo_dir, "diff", *_DIFF_OPTIONS, *_PREFIXES, pr.head_sha, commit, "--"))
    if not diff.strip():
        raise DeliveryRefused(
            f"taskyard did not post suggestions: commit {commit[:12]} changes nothing "
            f"against the pull request's head {pr.head_sha[:12]}"
        )
    if pr_diff is None:
        pr_diff = _pull_request_diff(repo_dir, pr)
    commentable = {} if pr_diff is None else commentable_lines(pr_diff)
    plan = suggestions_from_diff(diff, _head_lines(repo_dir, pr.head_sha), commentable=commentable)
    return review_request(plan, pr.head_sha, summary)


def _pull_request_diff(repo_dir: Path, pr: PullRequest) -> str | None:
    """The pull request's diff as GitHub shows it (from the merge base with the base branch),
    made in `repo_dir`; None when the base branch is not there."""
    for ref in (f"refs/remotes/origin/{pr.base_ref}", f"refs/heads/{pr.base_ref}"):
        try:
            base = _text(git(repo_dir, "merge-base", ref, pr.head_sha)).strip()
        except ReviewHashError:
            continue
        return _text(git(repo_dir, "diff", *_DIFF_OPTIONS, *_PREFIXES, base, pr.head_sha, "--"))
    log.warning(
        "base branch not found: every change goes into the review body",
        extra={"repository": pr.repo, "pull_request": pr.number, "base": pr.base_ref},
    )
    return None


def _head_lines(repo_dir: Path, head: str) -> Callable[[str], list[str]]:
    def lines(path: str) -> list[str]:
        return _text(git(repo_dir, "show", f"{head}:{path}")).splitlines()

    return lines


def _suggested(count: int, with_diff: bool) -> str:
    said = f"{count} suggested change{'' if count == 1 else 's'}"
    return f"{said}, the rest as a diff in the review's body" if with_diff else said


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


# --- push mode --------------------------------------------------------------------------


def _check_commits(repo_dir: Path, head: str, commit: str, review_hash: str) -> None:
    """Refuse unless `commit` descends from the head, every commit since it carries the
    Review-Hash of its own tree, and `commit`'s is the one review approved."""
    try:
        git(repo_dir, "merge-base", "--is-ancestor", head, commit)
    except ReviewHashError:
        raise DeliveryRefused(
            f"taskyard did not push: commit {commit[:12]} does not build on the pull "
            f"request's head {head[:12]}"
        ) from None
    findings = verify_range(repo_dir, f"{head}..{commit}")
    if findings:
        raise DeliveryRefused(f"taskyard did not push: {findings[0]}")
    if tree_hash(repo_dir, commit) != review_hash:
        raise DeliveryRefused(
            f"taskyard did not push: commit {commit[:12]} is not the state review approved "
            f"(Review-Hash {review_hash[:12]}…)"
        )


@asynccontextmanager
async def _scratch(repo_dir: Path, env: Mapping[str, str]) -> AsyncIterator[Path]:
    """A new bare repository that borrows `repo_dir`'s objects: git run in it reads only
    taskyard's own configuration, none the agent could have written."""
    common = await _local_git(
        env, "-C", str(repo_dir), "rev-parse", "--path-format=absolute", "--git-common-dir"
    )
    with tempfile.TemporaryDirectory(prefix="taskyard-push-") as folder:
        scratch = Path(folder) / "push.git"
        await _local_git(env, "init", "--quiet", "--bare", str(scratch))
        alternates = scratch / "objects" / "info" / "alternates"
        alternates.write_text(str(Path(common.strip()) / "objects") + "\n", encoding="utf-8")
        yield scratch


async def _local_git(env: Mapping[str, str], *args: str) -> str:
    what = "cannot prepare the push"
    done = await run_git(args, env=env, timeout=60.0, what=what)
    if done.code != 0:
        raise WorkspaceError(f"{what}: {stderr_tail(done.err) or 'git failed'}")
    return done.out


class _GitPush:
    """The network git commands of one push, run in the scratch repository."""

    def __init__(self, scratch: Path, url: str, headers: Mapping[str, str], remote: GitRemote):
        self._scratch = scratch
        self._url = url
        self._hidden = list(headers.values())
        self._env = {**remote.env, **auth_env(headers)}
        self._timeout = remote.timeout

    async def _run(self, *args: str, what: str) -> tuple[int, str, str]:
        done = await run_git(
            ["-C", str(self._scratch), *args], env=self._env, timeout=self._timeout, what=what
        )
        return done.code, done.out, done.err

    async def default_branch(self, repo: str) -> str | None:
        """The branch the remote's HEAD names."""
        what = f"cannot read the default branch of {repo} from {public_url(self._url)}"
        code, out, err = await self._run(
            "ls-remote", "--symref", "--", self._url, "HEAD", what=what
        )
        if code != 0:
            raise fetch_error(what, err, self._hidden)
        found = re.search(r"^ref: refs/heads/(\S+)\tHEAD$", out, re.MULTILINE)
        return found.group(1) if found else None

    async def head_of(self, branch: str) -> str | None:
        what = f"cannot read {branch} from {public_url(self._url)}"
        ref = f"refs/heads/{branch}"
        code, out, err = await self._run("ls-remote", "--", self._url, ref, what=what)
        if code != 0:
            raise fetch_error(what, err, self._hidden)
        found = re.search(rf"^([0-9a-f]+)\t{re.escape(ref)}$", out, re.MULTILINE)
        return found.group(1) if found else None

    async def push(self, pr: PullRequest, commit: str) -> str:
        """Push with the head as the branch's expected value; the outcome in words."""
        ref = f"refs/heads/{pr.head_ref}"
        what = f"cannot push to {pr.head_ref} of {pr.repo} at {public_url(self._url)}"
        args = ["push", "--porcelain", "--no-verify", "--recurse-submodules=no"]
        args += [f"--force-with-lease={ref}:{pr.head_sha}", "--", self._url, f"{commit}:{ref}"]
        code, out, err = await self._run(*args, what=what)
        found = re.search(r"^([ +=!*-])\t[^\t]*\t(.*)$", out, re.MULTILINE)
        flag, said = found.groups() if found else ("", "")
        if code == 0 and flag == "=":  # our own earlier push, retried
            return f"{commit[:12]} was already on {pr.head_ref}"
        if code == 0 and flag in " +":  # updated (a fast-forward: the ancestry was checked)
            return f"pushed {commit[:12]} to {pr.head_ref} (was {pr.head_sha[:12]})"
        if flag != "!":
            raise fetch_error(what, err or out, self._hidden)
        if await self.head_of(pr.head_ref) == commit:  # our own earlier push, retried
            return f"{commit[:12]} was already on {pr.head_ref}"
        raise DeliveryRefused(_push_refusal(pr, said))


def _push_refusal(pr: PullRequest, said: str) -> str:
    if "stale info" in said or "fetch first" in said or "non-fast-forward" in said:
        return (
            f"taskyard did not push: the branch {pr.head_ref} moved since the fix started "
            f"from {pr.head_sha[:12]}; nothing was overwritten"
        )
    return f"taskyard did not push: the repository refused it ({said.strip()})"


def _fork(repo: str, head: Mapping[str, Any]) -> str | None:
    """The fork the head branch is in: None when it is `repo` itself, "" when deleted (a
    pull request from a deleted fork has `head.repo: null`)."""
    if "repo" in head and head["repo"] is None:
        return ""
    name = _mapping(head.get("repo")).get("full_name")
    if not isinstance(name, str) or name.casefold() == repo.casefold():
        return None
    return name


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
