"""`taskyard review-hash verify`: every commit of a range carries exactly one `Review-Hash:`
trailer, and it is the hash of the commit's own tree, so a tree changed after review (an
amend, a rebase that touched the code, a commit made by hand) shows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from taskyard.exceptions import ReviewHashError
from taskyard.review.hash import git, rev_parse, tree_hash

TRAILER = "Review-Hash"
_HEX = re.compile(r"[0-9a-f]{64}")
# A spec that names a set of commits (`A..B`, `A...B`, `^A`, `X^!`, `X^@`, `X^-`) rather than one.
_RANGE = re.compile(r"\.\.|^\^|\^[!@-]")


@dataclass(frozen=True)
class Finding:
    """One commit that fails: `problem` is "missing", "several", "malformed" or "mismatch";
    `detail` says it in words."""

    commit: str
    subject: str
    problem: str
    detail: str

    @property
    def short(self) -> str:
        return self.commit[:12]

    def __str__(self) -> str:
        return f"{self.short} {self.subject}: {self.detail}"


def commits_in(repo: Path, range_spec: str) -> list[str]:
    """The commits a range names, oldest first (`git rev-list`); a single revision is that
    one commit, not its history."""
    spec = range_spec.strip()
    if not spec or spec.startswith("-"):
        raise ReviewHashError(f"not a revision range: {range_spec!r}")
    if not _RANGE.search(spec):
        return [rev_parse(repo, spec, "commit")]
    try:
        listed = git(repo, "rev-list", "--end-of-options", spec)
    except ReviewHashError as exc:
        raise ReviewHashError(f"{spec!r} is not a revision range of {repo}: {exc}") from exc
    return list(reversed(listed.decode().split()))


def _subject_and_trailers(repo: Path, commit: str) -> tuple[str, list[str]]:
    shown = git(
        repo,
        "show",
        "-s",
        "--no-show-signature",
        f"--format=%s%x00%(trailers:key={TRAILER},valueonly,unfold)",
        commit,
    )
    subject, _, trailers = shown.decode(errors="replace").partition("\0")
    return subject, [line.strip() for line in trailers.splitlines() if line.strip()]


def check_commit(repo: Path, commit: str) -> Finding | None:
    """What is wrong with one commit's Review-Hash, or None."""
    subject, values = _subject_and_trailers(repo, commit)

    def finding(problem: str, detail: str) -> Finding:
        return Finding(commit, subject, problem, detail)

    if not values:
        return finding("missing", f"no {TRAILER} trailer: the commit was not made through review")
    if len(values) > 1:
        return finding("several", f"{len(values)} {TRAILER} trailers: a commit carries one")
    (value,) = values
    if not _HEX.fullmatch(value):
        return finding("malformed", f"malformed {TRAILER} {value[:80]!r}: not 64 hex digits")
    actual = tree_hash(repo, commit)
    if value != actual:
        return finding(
            "mismatch",
            f"{TRAILER} {value[:12]}… is not the tree's hash {actual[:12]}…: "
            "the tree was changed after review",
        )
    return None


def verify_commits(repo: Path, commits: list[str]) -> list[Finding]:
    """The findings for these commits, in their order (merge commits are checked like any)."""
    return [found for commit in commits if (found := check_commit(repo, commit)) is not None]


def verify_range(repo: Path, range_spec: str) -> list[Finding]:
    """The findings for every commit of `range_spec` (`A..B`, or one revision: that commit)."""
    return verify_commits(repo, commits_in(repo, range_spec))
