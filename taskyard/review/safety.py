"""The safety checks a code change passes before it is posted or pushed: how big it is, and
whether it adds a secret.

The change is what git's index holds against HEAD (what is staged), or, given `base`, against
that revision (the commits since `base` and what is staged on top; with nothing staged, that
is `base..HEAD`). Renames are found (`-M`), so a moved file counts as one file changed with
its edited lines only.

Secrets are looked for with Yelp's detect-secrets (its default plugins and filters) in the
ADDED lines only: a secret already in the repository that the change leaves alone is not the
change's doing. A finding names the file, the line and the kind of secret, never the secret.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from taskyard.review.hash import git, rev_parse

_HUNK = re.compile(rb"^@@ -\d+(?:,\d+)? \+(\d+)(?:,\d+)? @@")
_SNIFF_BYTES = 8000  # git's own look for a NUL byte when it tells binary from text
_BLOB_MODES = {"100644", "100755"}  # links and submodules hold no text a secret could be in
_TEXT_MODES = {*_BLOB_MODES, "120000"}  # what a file can be diffed against line by line
# detect-secrets keeps its settings in one process-wide object; scans take turns.
_SCAN_LOCK = threading.Lock()


@dataclass(frozen=True)
class DiffStats:
    """The size of a change: files touched (a rename counts once), lines added and removed
    in text files, and how many of the files are binary (no lines to count) or renamed."""

    files_changed: int
    lines_added: int
    lines_removed: int
    binary_files: int
    renamed_files: int

    @property
    def changed_lines(self) -> int:
        return self.lines_added + self.lines_removed


@dataclass(frozen=True)
class SecretFinding:
    """A secret the change adds: where it is and what detected it. The secret itself is
    not kept, so a finding can be logged, shown and posted as it is."""

    file: str
    line: int
    detector: str

    def __str__(self) -> str:
        return f"a secret ({self.detector}) was found in {self.file} line {self.line}"


@dataclass(frozen=True)
class ChangeLimits:
    """How big a change taskyard posts or pushes (`changes.max_changed_lines`)."""

    max_changed_lines: int = 500


def _diff(repo: Path, base: str | None, *output: str) -> bytes:
    """The change in git's `output` format (`--numstat`, `--raw`): the index against HEAD (an
    unborn HEAD: the empty tree), or against the commit `base` names (an unknown one is a
    ReviewHashError saying so). Renames found, no external diff or text conversion, whatever
    the repository's configuration says."""
    args = ["diff", "--cached", "-M", "--no-ext-diff", "--no-textconv", "-z", *output]
    return git(repo, *args, *([rev_parse(repo, base, "commit")] if base else []))


def _fields(output: bytes) -> Iterator[bytes]:
    yield from output.split(b"\0")


def diff_stats(repo: Path, base: str | None = None) -> DiffStats:
    """Count the change's files and lines from `git diff --numstat` (see the module's
    docstring for what the change is)."""
    files = added = removed = binary = renamed = 0
    fields = _fields(_diff(repo, base, "--numstat"))
    for field in fields:
        if not field:
            continue
        plus, minus, path = field.split(b"\t", 2)
        if not path:  # a rename or copy: its old and new paths follow as fields of their own
            next(fields, b"")
            next(fields, b"")
            renamed += 1
        files += 1
        if plus == b"-":
            binary += 1
        else:
            added += int(plus)
            removed += int(minus)
    return DiffStats(files, added, removed, binary, renamed)


@dataclass(frozen=True)
class _Changed:
    """One file of the change that may hold new text: its blob ids before (None when the
    file is new) and after, and its path now."""

    old_id: str | None
    new_id: str
    path: bytes


def _changed_files(repo: Path, base: str | None) -> list[_Changed]:
    """The change's added, modified, renamed and copied regular files (`git diff --raw`)."""
    changed: list[_Changed] = []
    fields = _fields(_diff(repo, base, "--raw", "--no-abbrev"))
    for field in fields:
        if not field.startswith(b":"):
            continue
        old_mode, new_mode, old_id, new_id, status = field[1:].decode().split(" ")
        path = next(fields, b"")
        if status[0] in "RC":
            path = next(fields, b"")
        if status[0] == "D" or new_mode not in _BLOB_MODES:
            continue
        fresh = old_mode not in _TEXT_MODES  # new, or was a submodule: every line is added
        changed.append(_Changed(None if fresh else old_id, new_id, path))
    return changed


def _is_binary(data: bytes) -> bool:
    return b"\0" in data[:_SNIFF_BYTES]


def _added_lines(repo: Path, item: _Changed) -> dict[int, bytes]:
    """The lines the change adds to one file, by their number in the new file; none for a
    binary file."""
    if item.old_id is None:
        content = git(repo, "cat-file", "blob", item.new_id)
        if _is_binary(content):
            return {}
        return dict(enumerate(content.split(b"\n"), start=1))
    options = ("-U0", "--no-color", "--no-ext-diff", "--no-textconv")
    patch = git(repo, "diff", *options, item.old_id, item.new_id)
    lines: dict[int, bytes] = {}
    number = 0
    for line in patch.split(b"\n"):
        hunk = _HUNK.match(line)
        if hunk:
            number = int(hunk.group(1))
        elif number and line.startswith(b"+"):
            lines[number] = line[1:]
            number += 1
    return lines


def _write_sparse(folder: Path, item: _Changed, lines: dict[int, bytes]) -> Path:
    """The file as detect-secrets reads it: the added lines at their own line numbers, every
    other line blank, under the file's own name (some filters look at it)."""
    name = os.fsdecode(item.path.rsplit(b"/", 1)[-1]) or "file"
    target = folder / name
    target.parent.mkdir(mode=0o700)
    text = bytearray()
    for number in range(1, max(lines) + 1):
        text += lines.get(number, b"").decode(errors="replace").encode() + b"\n"
    target.write_bytes(bytes(text))
    return target


def _detect(files: list[tuple[_Changed, Path]]) -> list[SecretFinding]:
    """Run detect-secrets' default plugins and filters over the prepared files. Imported
    here, not at the top: importing it is slow and reconfigures logging (it captures
    warnings), which commands that never scan should not pay for."""
    from detect_secrets.core.scan import scan_file
    from detect_secrets.settings import default_settings

    found: dict[tuple[str, int, str], SecretFinding] = {}
    with _SCAN_LOCK, default_settings():
        for item, path in files:
            shown = item.path.decode(errors="backslashreplace")
            for secret in scan_file(str(path)):
                finding = SecretFinding(shown, secret.line_number, secret.type)
                found.setdefault((shown, finding.line, finding.detector), finding)
    return sorted(found.values(), key=lambda f: (f.file, f.line, f.detector))


def scan_secrets(repo: Path, base: str | None = None) -> list[SecretFinding]:
    """The secrets the change adds, by file and line: only added lines are read, so an
    untouched secret that was there before is not reported."""
    with tempfile.TemporaryDirectory(prefix="taskyard-scan-") as scratch:
        prepared: list[tuple[_Changed, Path]] = []
        for index, item in enumerate(_changed_files(repo, base)):
            lines = _added_lines(repo, item)
            if lines:
                prepared.append((item, _write_sparse(Path(scratch) / str(index), item, lines)))
        return _detect(prepared) if prepared else []


def check_change(repo: Path, limits: ChangeLimits, base: str | None = None) -> list[str]:
    """Why the change may not be posted or pushed, in plain words; empty when it may."""
    refusals: list[str] = []
    stats = diff_stats(repo, base)
    if stats.changed_lines > limits.max_changed_lines:
        refusals.append(
            f"the change has {stats.changed_lines} changed lines, over the limit of "
            f"{limits.max_changed_lines}"
        )
    refusals.extend(f"{f}: nothing is posted or pushed" for f in scan_secrets(repo, base))
    return refusals
