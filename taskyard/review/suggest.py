"""Suggestion mode: a fix shown on its pull request as a review of GitHub suggested changes,
which the author applies with one click, instead of a pushed commit.

The input is the fix as a unified diff against the pull request's head (`git diff HEAD` in the
fix's workspace). Each run of changed lines in a file the fix edits in place becomes one
review comment on the head version's lines it replaces, with a `suggestion` block of the new
lines. A pure insertion has no line of its own to sit on, so it replaces the line before it
(the first line, for an insertion at the top) with that line plus the new ones.

GitHub cannot suggest a new, deleted, renamed, binary, symlinked or submodule file, nor a mode
change, nor a comment on a line outside the pull request's own diff (`commentable`, from
`commentable_lines` of the pull request's diff). Those parts go, as diff text, into one fenced
`diff` block of the review's body, so nothing of the fix is lost.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any

_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_INDEX_MODE = re.compile(r"^index \S+ (\d{6})$")
# Header lines that say the file is more than its lines changed in place.
_WHOLE_FILE = (
    "new file mode",
    "deleted file mode",
    "old mode",
    "new mode",
    "rename from",
    "rename to",
    "copy from",
    "copy to",
    "Binary files",
    "GIT binary patch",
)
_NOT_TEXT_MODES = {"120000", "160000"}  # a symlink's target and a submodule's commit
_C_ESCAPES = {"a": 7, "b": 8, "t": 9, "n": 10, "v": 11, "f": 12, "r": 13, '"': 34, "\\": 92}
MAX_BODY = 65_536  # the most characters GitHub takes in a review's body
FALLBACK_INTRO = "Part of the change cannot be shown as suggestions; here it is as a diff:"

HeadLines = Callable[[str], list[str]]


@dataclass(frozen=True)
class Suggestion:
    """One suggested change: head lines `start_line`..`line` of `path` (RIGHT side) become
    `replacement`."""

    path: str
    line: int
    start_line: int | None
    replacement: tuple[str, ...]

    @property
    def body(self) -> str:
        return fenced("suggestion", self.replacement)

    def comment(self) -> dict[str, Any]:
        """The review comment GitHub takes for it (`comments[]` of a created review)."""
        out: dict[str, Any] = {"path": self.path, "line": self.line, "side": "RIGHT"}
        if self.start_line is not None:
            out |= {"start_line": self.start_line, "start_side": "RIGHT"}
        return out | {"body": self.body}


@dataclass(frozen=True)
class SuggestionPlan:
    """The suggestions of a fix, and `fallback`: the diff text of what no suggestion can
    express (empty when every change is a suggestion)."""

    suggestions: tuple[Suggestion, ...] = ()
    fallback: str = ""


@dataclass
class _Run:
    """A maximal run of removed and added lines of a hunk, with the head's lines around it
    that the hunk shows (None: outside the hunk)."""

    old_start: int  # first removed line; for a pure insertion, the line it follows
    removed: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    before: str | None = None
    after: str | None = None


@dataclass
class _FileDiff:
    header: list[str]
    hunks: list[list[str]]
    path: str = ""
    whole_file: bool = False

    def lines(self) -> list[str]:
        return [*self.header, *(line for hunk in self.hunks for line in hunk)]


def fenced(info: str, lines: Sequence[str]) -> str:
    """`lines` in a fenced code block tagged `info`, its fence longer than any run of
    backticks inside so the block cannot end early."""
    longest = max((len(r) for line in lines for r in re.findall(r"`+", line)), default=0)
    fence = "`" * max(3, longest + 1)
    inside = "".join(f"{line}\n" for line in lines)
    return f"{fence}{info}\n{inside}{fence}"


def suggestions_from_diff(
    diff_text: str,
    head_lines: HeadLines | None = None,
    *,
    commentable: Mapping[str, AbstractSet[int]] | None = None,
) -> SuggestionPlan:
    """The suggestions of a fix given as `git diff` against the pull request's head.

    `head_lines(path)` gives the head version's lines of a file; only a pure insertion needs
    it, when the diff shows no line next to it (`git diff -U0`). `commentable` maps each
    path to the head lines a review may comment on (`commentable_lines`); None: any line.
    """
    suggestions: list[Suggestion] = []
    fallback: list[str] = []
    for diff in _file_diffs(_lines(diff_text)):
        if diff.whole_file or not diff.path:
            fallback += diff.lines()
            continue
        left_out: list[list[str]] = []
        for hunk in diff.hunks:
            made = _hunk_suggestions(diff.path, hunk, head_lines, commentable)
            if made is None:
                left_out.append(hunk)
            else:
                suggestions += made
        if left_out:
            fallback += [*diff.header, *(line for hunk in left_out for line in hunk)]
    text = "".join(f"{line}\n" for line in fallback)
    return SuggestionPlan(tuple(suggestions), text)


def review_request(plan: SuggestionPlan, commit_id: str, summary: str) -> dict[str, Any]:
    """The JSON body of `POST /repos/{owner}/{repo}/pulls/{pull_number}/reviews` that posts
    `plan` as a comment review on `commit_id` (the head the diff was made against)."""
    parts = [summary] if summary else []
    if plan.fallback:
        room = MAX_BODY - sum(len(p) + 2 for p in [*parts, FALLBACK_INTRO])
        parts += [FALLBACK_INTRO, _diff_block(_lines(plan.fallback), room)]
    body = "\n\n".join(parts)
    request: dict[str, Any] = {"commit_id": commit_id, "event": "COMMENT", "body": body}
    if plan.suggestions:
        request["comments"] = [s.comment() for s in plan.suggestions]
    return request


def _diff_block(lines: list[str], room: int) -> str:
    """The diff as a fenced block of at most `room` characters: its first lines and how many
    more there are, when all of it does not fit."""
    block = fenced("diff", lines)
    kept = len(lines)
    while len(block) > room and kept > 0:
        kept = max(0, min(kept - 1, kept * room // len(block)))
        more = f"… {len(lines) - kept} more lines of the diff are not shown"
        block = f"{fenced('diff', lines[:kept])}\n{more}"
    return block


def commentable_lines(pr_diff: str) -> dict[str, frozenset[int]]:
    """The head lines of each file a review comment may sit on: those a pull request's own
    diff (base to head) shows on its RIGHT side, added or context."""
    out: dict[str, frozenset[int]] = {}
    for diff in _file_diffs(_lines(pr_diff)):
        path = diff.path or _new_path(diff.header)
        if not path:
            continue
        shown: set[int] = set()
        for hunk in diff.hunks:
            shown |= _right_lines(hunk)
        out[path] = frozenset(shown)
    return out


def _lines(text: str) -> list[str]:
    """The diff's lines, split on newlines only (a line may hold a carriage return)."""
    lines = text.split("\n")
    return lines[:-1] if lines and lines[-1] == "" else lines


def _file_diffs(lines: list[str]) -> Iterator[_FileDiff]:
    section: list[str] = []
    for line in lines:
        if line.startswith("diff --git ") and section:
            yield _parse_file(section)
            section = []
        if section or line.startswith("diff --git "):
            section.append(line)
    if section:
        yield _parse_file(section)


def _parse_file(section: list[str]) -> _FileDiff:
    starts = [i for i, line in enumerate(section) if _HUNK.match(line)]
    cut = starts[0] if starts else len(section)
    header = section[:cut]
    bounds = [*starts, len(section)]
    hunks = [section[a:b] for a, b in itertools.pairwise(bounds)]
    diff = _FileDiff(header, hunks)
    diff.whole_file = any(line.startswith(_WHOLE_FILE) for line in header) or any(
        (m := _INDEX_MODE.match(line)) is not None and m.group(1) in _NOT_TEXT_MODES
        for line in header
    )
    old = _marked_path(header, "--- ", "a/")
    new = _marked_path(header, "+++ ", "b/")
    if old is not None and old == new:
        diff.path = new
    return diff


def _marked_path(header: list[str], marker: str, prefix: str) -> str | None:
    for line in header:
        if line.startswith(marker):
            name = _unquote(line[len(marker) :].rstrip("\t"))
            return name.removeprefix(prefix) if name != "/dev/null" else None
    return None


def _new_path(header: list[str]) -> str:
    """The file's path on the new side: from `+++`, else `rename to`, else the git line."""
    new = _marked_path(header, "+++ ", "b/")
    if new:
        return new
    for line in header:
        if line.startswith("rename to "):
            return _unquote(line.removeprefix("rename to "))
    first = header[0].removeprefix("diff --git ") if header else ""
    half = (len(first) - 1) // 2
    if first[:half].removeprefix("a/") == first[half + 1 :].removeprefix("b/"):
        return first[half + 1 :].removeprefix("b/")
    return ""


def _unquote(name: str) -> str:
    """A path as git prints it, C-quoted when it holds unusual bytes (`core.quotePath`)."""
    if len(name) < 2 or not (name[0] == name[-1] == '"'):
        return name
    body, out, i = name[1:-1], bytearray(), 0
    while i < len(body):
        if body[i] != "\\" or i + 1 >= len(body):
            out += body[i].encode()
            i += 1
        elif re.fullmatch(r"[0-7]{3}", body[i + 1 : i + 4]):
            out.append(int(body[i + 1 : i + 4], 8))
            i += 4
        else:
            out.append(_C_ESCAPES.get(body[i + 1], ord(body[i + 1]) & 0xFF))
            i += 2
    return out.decode("utf-8", errors="replace")


def _right_lines(hunk: list[str]) -> set[int]:
    match = _HUNK.match(hunk[0])
    if match is None:
        return set()
    number, shown = int(match.group(3)), set()
    for line in hunk[1:]:
        if line.startswith(("+", " ")) or line == "":
            shown.add(number)
            number += 1
    return shown


def _runs(hunk: list[str]) -> list[_Run]:
    """The hunk's runs of changes, each with the context lines next to it."""
    match = _HUNK.match(hunk[0])
    if match is None:
        raise ValueError(f"not a hunk header: {hunk[0]!r}")
    number, runs = int(match.group(1)), []
    run: _Run | None = None
    previous: str | None = None
    for line in hunk[1:]:
        if line.startswith("\\"):  # "\ No newline at end of file"
            continue
        if line.startswith(("-", "+")):
            if run is None:
                start = number if line.startswith("-") else number - 1
                run = _Run(start, before=previous)
                runs.append(run)
            if line.startswith("-"):
                run.removed.append(line[1:])
                number += 1
            else:
                run.added.append(line[1:])
            continue
        previous = line[1:]
        if run is not None:
            run.after = previous
            run = None
        number += 1
    if int(match.group(2) or "1") == 0 and runs:  # `-N,0`: the insertion follows line N
        runs[0].old_start = int(match.group(1))
    return runs


def _hunk_suggestions(
    path: str,
    hunk: list[str],
    head_lines: HeadLines | None,
    commentable: Mapping[str, AbstractSet[int]] | None,
) -> list[Suggestion] | None:
    """The hunk's suggestions, or None when any of its runs cannot be one."""
    made = [_suggestion(path, run, head_lines) for run in _runs(hunk)]
    allowed = None if commentable is None else commentable.get(path, frozenset())
    out: list[Suggestion] = []
    for suggestion in made:
        if suggestion is None:
            return None
        first = suggestion.start_line or suggestion.line
        if allowed is not None and not all(n in allowed for n in range(first, suggestion.line + 1)):
            return None
        out.append(suggestion)
    return out


def _suggestion(path: str, run: _Run, head_lines: HeadLines | None) -> Suggestion | None:
    if run.removed:
        last = run.old_start + len(run.removed) - 1
        start = run.old_start if last > run.old_start else None
        return Suggestion(path, last, start, tuple(run.added))
    if run.old_start >= 1:
        kept = run.before if run.before is not None else _head_line(path, run.old_start, head_lines)
        if kept is None:
            return None
        return Suggestion(path, run.old_start, None, (kept, *run.added))
    first = run.after if run.after is not None else _head_line(path, 1, head_lines)
    if first is None:
        return None
    return Suggestion(path, 1, None, (*run.added, first))


def _head_line(path: str, number: int, head_lines: HeadLines | None) -> str | None:
    if head_lines is None:
        return None
    lines = head_lines(path)
    return lines[number - 1] if 1 <= number <= len(lines) else None
