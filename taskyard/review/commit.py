"""The one way taskyard commits reviewed code: only the state review approved, with its hash
and the reviewer in the commit's trailers.

The commit is made from the tree git writes from the index, after checking that tree's hash
(so a change staged between the check and the commit cannot slip in), with `git commit-tree`
(no hooks run that could stage more), checked once more as `verify` would, and only then
made the branch's head (`git update-ref` against the head it was built on).
"""

from __future__ import annotations

import re
from pathlib import Path

from taskyard.audit import check_session_id
from taskyard.exceptions import ReviewHashError, ReviewHashMismatch
from taskyard.review.hash import git, git_env, staged_hash, tree_hash
from taskyard.review.verify import TRAILER, check_commit

REVIEWER_TRAILER = "Reviewed-by"
_HEX = re.compile(r"[0-9a-f]{64}")
_AUTHOR = re.compile(r"\s*([^<>\n]+?)\s*<([^<>\s]+)>\s*")


def check_reviewer(session_id: str) -> str:
    """The reviewer's session id, refused when it is a placeholder (empty, `test`, `fake`,
    all zeros or all `x`, shorter than 8 characters) or holds what no session id does
    (spaces, line breaks): a commit names a real review or none (`taskyard.audit`'s rule,
    the one review verdicts follow)."""
    try:
        return check_session_id(session_id)
    except ValueError as exc:
        raise ReviewHashError(str(exc)) from exc


def _author_env(author: str | None) -> dict[str, str]:
    if author is None:
        return {}
    found = _AUTHOR.fullmatch(author)
    if not found:
        raise ReviewHashError(f"author {author!r} is not 'Name <email>'")
    return {"GIT_AUTHOR_NAME": found.group(1), "GIT_AUTHOR_EMAIL": found.group(2)}


def _committer_env(committer: str | None) -> dict[str, str]:
    found = _author_env(committer)
    return {k.replace("AUTHOR", "COMMITTER"): v for k, v in found.items()}


def message_with_trailers(repo: Path, message: str, reviewed_hash: str, reviewed_by: str) -> str:
    """The message with `Review-Hash:` and `Reviewed-by:` added to its trailers (git's own
    `interpret-trailers`, so the trailers it already has stay trailers); a message that
    already names either is refused."""
    if not message.strip():
        raise ReviewHashError("a commit needs a message")
    parsed = git(repo, "interpret-trailers", "--parse", "--no-divider", stdin=message.encode())
    keys = {line.partition(":")[0].strip().lower() for line in parsed.decode().splitlines()}
    if {TRAILER.lower(), REVIEWER_TRAILER.lower()} & keys:
        raise ReviewHashError(f"the message already has {TRAILER} or {REVIEWER_TRAILER} trailers")
    added = git(
        repo,
        "interpret-trailers",
        "--no-divider",
        "--where",
        "end",
        "--if-exists",
        "add",
        "--if-missing",
        "add",
        "--trailer",
        f"{TRAILER}: {reviewed_hash}",
        "--trailer",
        f"{REVIEWER_TRAILER}: {reviewed_by}",
        stdin=message.strip().encode() + b"\n",
    )
    return added.decode()


def _head(repo: Path) -> str | None:
    """The commit HEAD points at, or None on an unborn branch."""
    try:
        return git(repo, "rev-parse", "--verify", "--quiet", "HEAD^{commit}").decode().strip()
    except ReviewHashError:
        return None


def _merge_heads(repo: Path) -> list[str]:
    """The commits a merge in progress brings in (`MERGE_HEAD`), the commit's other parents."""
    where = Path(git(repo, "rev-parse", "--git-path", "MERGE_HEAD").decode().strip())
    path = where if where.is_absolute() else repo / where
    try:
        return path.read_text().split()
    except FileNotFoundError:
        return []


def _written_tree(repo: Path, reviewed_hash: str) -> str:
    """The index as a tree, refused unless it is the reviewed state."""
    now = staged_hash(repo)
    if now != reviewed_hash:
        raise ReviewHashMismatch(
            f"the staged state of {repo} ({now[:12]}…) is not the reviewed one "
            f"({reviewed_hash[:12]}…): it changed after review; nothing was committed"
        )
    tree = git(repo, "write-tree").decode().strip()
    if tree_hash(repo, tree) != reviewed_hash:
        raise ReviewHashMismatch(
            f"the index of {repo} changed while committing (or holds intent-to-add entries): "
            "nothing was committed"
        )
    return tree


def commit_with_review_hash(
    repo: Path,
    message: str,
    reviewed_hash: str,
    reviewed_by: str,
    author: str | None = None,
    committer: str | None = None,
) -> str:
    """Commit the staged state of `repo` if it is the one review approved (`reviewed_hash`,
    from `staged_hash`), with its `Review-Hash:` and `Reviewed-by:` trailers; return the
    commit's id. `author` and `committer` are 'Name <email>' (default: git's configuration); a
    merge in progress makes a merge commit. Anything else staged: ReviewHashMismatch, and
    nothing is committed."""
    if not _HEX.fullmatch(reviewed_hash):
        raise ReviewHashError(f"{reviewed_hash!r} is not a Review-Hash (64 hex digits)")
    reviewer = check_reviewer(reviewed_by)
    env = git_env(_author_env(author) | _committer_env(committer))
    full_message = message_with_trailers(repo, message, reviewed_hash, reviewer)
    parent = _head(repo)
    merged = _merge_heads(repo)
    tree = _written_tree(repo, reviewed_hash)
    parents = [arg for each in ([parent] if parent else []) + merged for arg in ("-p", each)]
    commit = git(
        repo, "commit-tree", tree, *parents, "-F", "-", stdin=full_message.encode(), env=env
    )
    sha = commit.decode().strip()
    wrong = check_commit(repo, sha)
    if wrong is not None:
        raise ReviewHashError(f"the commit taskyard made does not verify: {wrong.detail}")
    subject = full_message.splitlines()[0] if full_message else ""
    git(repo, "update-ref", "-m", f"commit (review-hash): {subject}", "HEAD", sha, parent or "")
    if merged:
        git(repo, "merge", "--quit")  # the merge is made: forget MERGE_HEAD and its message
    return sha
