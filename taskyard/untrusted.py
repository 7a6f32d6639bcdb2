"""Platform text is data: what the agent sees of it is cleaned, and in prompts fenced off.

Agents read what strangers wrote (issue bodies, comments, messages, diffs). Two defences,
both pure functions here:

- `clean_text` strips what a person reading the platform does not see but a model does:
  HTML comments (except taskyard's own markers, `<!-- taskyard:KEY -->` of a real key), the
  alt text of images (markdown `![alt](url)` and HTML `<img alt=…>`), and invisible characters:
  every Unicode format character (category Cf: zero-width space/joiners, bidi embeddings,
  overrides and isolates, the BOM, soft hyphen, Unicode tag characters U+E0000-U+E007F, …)
  and the invisible ones outside Cf (variation selectors used to smuggle bytes, Hangul
  fillers, the combining grapheme joiner). Where removing something would make another
  (the halves of a comment joining), cleaning repeats until nothing changes. Code (a diff, a
  patch: `mark=True`) keeps its comments and alt text, and its invisible characters are shown
  instead (`⟦U+202E⟧`), so that a review sees a Trojan-Source bidi override, not nothing.
  `clean_json` applies it to every string (and key) of a JSON value.
- `Fence` wraps a piece of platform text in `<untrusted-TAG label="…">…</untrusted-TAG>`
  where TAG is random per task (`new_tag`). The content cannot close the fence: any `<`
  opening something that reads `untrusted` (`<untrusted`, `</untrusted`, with spaces) inside
  it becomes `&lt;`, so neither the real tag nor a guess at it can appear there.
"""

from __future__ import annotations

import functools
import re
import secrets
import sys
import unicodedata
from collections.abc import Iterator
from typing import Any

import orjson

__all__ = ["Fence", "clean_json", "clean_text", "invisible_characters", "new_tag"]

TAG_PREFIX = "untrusted-"
# taskyard's own markers, as taskyard.actions.keys writes them: an action's key (task id, index,
# content hash) or an approval's id. Hex only, so that no words can hide in a "marker".
MARKER = re.compile(
    r"<!-- taskyard:(?:approval:[0-9a-f]{1,64}|[0-9a-f]{1,64}\.\d{1,6}\.[0-9a-f]{1,64}) -->"
)
_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.DOTALL)
_MD_IMAGE_ALT = re.compile(r"!\[[^\]]*\]")
_IMG_ALT = re.compile(
    r"(<img\b[^>]*?)\s(?:alt|title)\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s>]*)", re.IGNORECASE
)
_FENCE_LIKE = re.compile(r"<(?=\s*/?\s*untrusted)", re.IGNORECASE)
_LABEL = re.compile(r"[^A-Za-z0-9 ._/-]")
# Invisible but not of category Cf: the combining grapheme joiner, Hangul fillers, the Khmer
# inherent vowels, variation selectors 1-14 and 17-256 (VS15/VS16 pick text or emoji style).
_INVISIBLE_OTHER = (
    (0x034F, 0x034F),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x3164, 0x3164),
    (0xFFA0, 0xFFA0),
    (0xFE00, 0xFE0D),
    (0xE0100, 0xE01EF),
)


def new_tag() -> str:
    """A fence tag no content written before the task can know: `untrusted-` + 16 hex."""
    return TAG_PREFIX + secrets.token_hex(8)


def _ranges(codes: Iterator[int]) -> list[tuple[int, int]]:
    ranges: list[tuple[int, int]] = []
    for code in codes:
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1] = (ranges[-1][0], code)
        else:
            ranges.append((code, code))
    return ranges


@functools.cache
def invisible_characters() -> tuple[tuple[int, int], ...]:
    """The code point ranges `clean_text` removes: Unicode category Cf plus `_INVISIBLE_OTHER`."""
    fmt = (c for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) == "Cf")
    merged = sorted([*_ranges(fmt), *_INVISIBLE_OTHER])
    return tuple(merged)


@functools.cache
def _invisible() -> re.Pattern[str]:
    parts = (
        re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}"
        for a, b in invisible_characters()
    )
    return re.compile(f"[{''.join(parts)}]")


def _show(match: re.Match[str]) -> str:
    return f"⟦U+{ord(match.group()):04X}⟧"


def _without_comments(text: str) -> str:
    """HTML comments out, taskyard's markers kept; repeated until none is left (removing one
    comment must not join the halves of another)."""
    while True:
        cleaned = _COMMENT.sub(lambda m: m.group() if MARKER.fullmatch(m.group()) else "", text)
        if cleaned == text:
            return cleaned
        text = cleaned


def _without_alt_text(text: str) -> str:
    text = _MD_IMAGE_ALT.sub("![]", text)
    while True:
        cleaned = _IMG_ALT.sub(r"\1", text)
        if cleaned == text:
            return cleaned
        text = cleaned


def clean_text(text: str, *, mark: bool = False) -> str:
    """`text` without what a reader of the platform does not see (see the module's doc).
    `mark`: code; invisible characters are shown, comments and alt text kept."""
    if mark:
        return _invisible().sub(_show, text)
    while True:  # until stable: removing one thing must not make another
        cleaned = _invisible().sub("", text)  # first: a zero-width space can split `<!-` `-`
        cleaned = _without_alt_text(_without_comments(cleaned))
        if cleaned == text:
            return cleaned
        text = cleaned


_CODE_KEYS = frozenset({"diff", "patch"})  # GitHub's unified diff and per-file patches


def clean_json(value: Any, key: str | None = None) -> Any:
    """Every string of a JSON value (keys too) through `clean_text`; the values of the keys
    `diff` and `patch` as code (`mark=True`)."""
    if isinstance(value, str):
        return clean_text(value, mark=key in _CODE_KEYS)
    if isinstance(value, dict):
        return {clean_text(str(k)): clean_json(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_json(v, key) for v in value]
    return value


class Fence:
    """Wraps platform text for a prompt in delimiters of one task's random tag."""

    def __init__(self, tag: str) -> None:
        if not re.fullmatch(re.escape(TAG_PREFIX) + r"[0-9a-f]{8,64}", tag):
            raise ValueError(f"{tag!r} is not a fence tag (see new_tag)")
        self.tag = tag

    def wrap(self, value: Any, label: str | None = None) -> str:
        """`value` (text, or any JSON value) cleaned, neutralised and fenced; a block on
        lines of its own when it spans lines."""
        text = value if isinstance(value, str) else _as_text(value)
        body = _FENCE_LIKE.sub("&lt;", clean_text(text))
        name = _LABEL.sub("", label or "")[:40]
        opening = f'<{self.tag} label="{name}">' if name else f"<{self.tag}>"
        if "\n" in body:
            return f"{opening}\n{body.strip(chr(10))}\n</{self.tag}>"
        return f"{opening}{body}</{self.tag}>"


def _as_text(value: Any) -> str:
    try:
        return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return str(value)
