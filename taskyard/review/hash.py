"""The Review-Hash: one SHA-256 over a code state (every path with its mode and object id), the
same whether the state is git's index (what is staged) or a commit's tree.

Review approves a staged state by its hash; taskyard commits only that state and writes the
hash into the commit (`Review-Hash:`), and anyone can recompute it from the commit's tree
(`taskyard review-hash verify`). The hashed text is a version line, then one record per file,
paths sorted bytewise:

    taskyard-review-hash v1\\n
    <mode> <object id> <path>\\0      (mode 100644, 100755, 120000 or 160000)

Symlinks (120000) count with their blob, submodules (160000) with their commit id; trees are
implied by the paths. A record ends with NUL, not a line break: a path may hold a line break
but never a NUL, so no two states hash the same text.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path

from taskyard.exceptions import ReviewHashError

VERSION_LINE = b"taskyard-review-hash v1\n"
_KINDS = {"blob", "commit"}  # what a tree lists besides trees: files, links, submodules
# Variables that point git at another repository or index than `repo` names.
_LOCATING = {
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_PREFIX",
}

Entry = tuple[str, str, bytes]  # mode, object id, path


def git_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The process's environment without the variables that would make git read another
    repository than the one named, in the C locale and never prompting, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in _LOCATING}
    env.update(LC_ALL="C", GIT_TERMINAL_PROMPT="0")
    env.update(extra or {})
    return env


def git(
    repo: Path, *args: str, stdin: bytes | None = None, env: Mapping[str, str] | None = None
) -> bytes:
    """Run git in `repo` and return its output; a failure is a ReviewHashError naming the
    command and git's last words."""
    try:
        done = subprocess.run(
            ["git", "-C", str(repo), *args],
            input=stdin,
            capture_output=True,
            env=dict(env) if env is not None else git_env(),
            check=False,
        )
    except OSError as exc:
        raise ReviewHashError(f"cannot run git: {exc}") from exc
    if done.returncode != 0:
        words = " | ".join(done.stderr.decode(errors="replace").strip().splitlines()[-3:])
        raise ReviewHashError(f"git {args[0]} failed in {repo}: {words or done.returncode}")
    return done.stdout


def canonical_mode(mode: str) -> str:
    """A mode as git's index keeps it: a regular file is 100644 or 100755 (old trees may say
    100664 and the like), links and submodules as they are."""
    value = int(mode, 8)
    if value & 0o170000 == 0o100000:
        return "100755" if value & 0o100 else "100644"
    return f"{value:06o}"


def digest(entries: Iterable[Entry]) -> str:
    """The Review-Hash of a list of files, in whatever order they come."""
    sha = hashlib.sha256(VERSION_LINE)
    for mode, object_id, path in sorted(entries, key=lambda entry: entry[2]):
        sha.update(f"{canonical_mode(mode)} {object_id} ".encode() + path + b"\0")
    return sha.hexdigest()


def _records(output: bytes) -> list[bytes]:
    return [record for record in output.split(b"\0") if record]


def index_entries(repo: Path) -> list[Entry]:
    """The staged files (`git ls-files -s`); unmerged entries are refused: a conflicted index
    is no state to review."""
    entries: list[Entry] = []
    unmerged: set[bytes] = set()
    for record in _records(git(repo, "ls-files", "--stage", "-z")):
        meta, _, path = record.partition(b"\t")
        mode, object_id, stage = meta.decode().split(" ")
        if stage != "0":
            unmerged.add(path)
        else:
            entries.append((mode, object_id, path))
    if unmerged:
        names = ", ".join(sorted(p.decode(errors="replace") for p in unmerged)[:5])
        raise ReviewHashError(
            f"the index of {repo} has unmerged entries ({names}): resolve the conflicts first"
        )
    return entries


def resolve_tree(repo: Path, rev: str) -> str:
    """The tree id of a commit (or tree) named by `rev`."""
    return rev_parse(repo, rev, "tree")


def rev_parse(repo: Path, rev: str, kind: str) -> str:
    """The full id of the `kind` ("commit", "tree") `rev` names; an unknown one is a
    ReviewHashError saying so."""
    try:
        found = git(
            repo, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{{kind}}}"
        )
    except ReviewHashError as exc:
        git(repo, "rev-parse", "--git-dir")  # "not a git repository" says more, when it is so
        raise ReviewHashError(f"{rev!r} names no {kind} in {repo}") from exc
    return found.decode().strip()


def tree_entries(repo: Path, rev: str) -> list[Entry]:
    """Every file, link and submodule of a commit's tree (`git ls-tree -r --full-tree`)."""
    entries: list[Entry] = []
    tree = resolve_tree(repo, rev)
    for record in _records(git(repo, "ls-tree", "-r", "-z", "--full-tree", tree)):
        meta, _, path = record.partition(b"\t")
        mode, kind, object_id = meta.decode().split(" ")
        if kind in _KINDS:
            entries.append((mode, object_id, path))
    return entries


def staged_hash(repo: Path) -> str:
    """The Review-Hash of what is staged in `repo` (its index)."""
    return digest(index_entries(repo))


def tree_hash(repo: Path, rev: str) -> str:
    """The Review-Hash of a commit's (or a tree's) content; equal to `staged_hash` when the
    index holds exactly that content."""
    return digest(tree_entries(repo, rev))
