"""`taskyard review-hash …`: compute a state's Review-Hash and verify a range of commits.

These run in any git repository: no configuration, no database, no token (a CI job runs
`verify` on a pull request with nothing but git and taskyard installed).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Annotated

import typer

from taskyard.cli.main import JsonOpt, _print_json
from taskyard.exceptions import ReviewHashError
from taskyard.review import commits_in, staged_hash, tree_hash
from taskyard.review.verify import verify_commits

review_hash_app = typer.Typer(
    no_args_is_help=True,
    help="Review-Hash: the hash of a reviewed code state, carried by taskyard's commits.",
)
RepoOpt = Annotated[
    Path, typer.Option("--repo", help="The git repository (default: the current directory).")
]


def _cannot(exc: ReviewHashError) -> typer.Exit:
    """Exit 2: the hash could not be computed (not a repository, an unknown revision), which is
    not a finding. Plain text, never wrapped: CI logs are searched for it."""
    sys.stderr.write(f"error: {exc}\n")
    return typer.Exit(2)


@review_hash_app.command("compute")
def review_hash_compute(
    rev: Annotated[
        str | None,
        typer.Argument(help="A commit (or tree) to hash; default: what is staged."),
    ] = None,
    repo: RepoOpt = Path("."),
) -> None:
    """Print the Review-Hash of the staged state, or of REV's tree."""
    try:
        value = staged_hash(repo) if rev is None else tree_hash(repo, rev)
    except ReviewHashError as exc:
        raise _cannot(exc) from exc
    sys.stdout.write(value + "\n")


@review_hash_app.command("verify")
def review_hash_verify(
    range_spec: Annotated[
        str,
        typer.Argument(
            metavar="RANGE", help="Commits to check (`A..B`, or one commit); default: HEAD."
        ),
    ] = "HEAD",
    repo: RepoOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """Check that every commit of RANGE carries one Review-Hash trailer equal to its tree's
    hash; exit 1 naming each commit that does not."""
    try:
        commits = commits_in(repo, range_spec)
        findings = verify_commits(repo, commits)
    except ReviewHashError as exc:
        raise _cannot(exc) from exc
    if as_json:
        _print_json(
            {
                "range": range_spec,
                "commits": len(commits),
                "verified": len(commits) - len(findings),
                "findings": [dataclasses.asdict(found) for found in findings],
            }
        )
    else:
        for found in findings:
            sys.stdout.write(f"{found}\n")
        plural = "" if len(commits) == 1 else "s"
        if findings:
            sys.stdout.write(f"{len(findings)} of {len(commits)} commit{plural} failed\n")
        else:
            sys.stdout.write(f"{len(commits)} commit{plural} verified\n")
    raise typer.Exit(1 if findings else 0)
