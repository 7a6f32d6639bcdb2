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

__all__ = ["Fence", "clean_json", "clean_text", "image_alts", "invisible_characters", "new_tag"]

TAG_PREFIX = "untrusted-"
# taskyard's own markers, as taskyard.actions.keys writes them: an action's key (task id, index,
# content hash) or an approval's id. Hex only, so that no words can hide in a "marker".
MARKER = re.compile(
    r"<!-- taskyard:(?:approval:[0-9a-f]{1,64}|[0-9a-f]{1,64}\.\d{1,6}\.[0-9a-f]{1,64}) -->"
)
_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.DOTALL)
# Other markup a browser parses and shows nothing of: CDATA, declarations and bogus comments
# (`<!X…>`), processing instructions (`<?…>`), and elements whose text is never shown
# (GitHub's sanitiser drops script and style whole; a template's content is inert). Slack's
# mentions `<!here>`, `<!channel>`, `<!everyone>`, `<!subteam^ID>` show, and carry no text.
_NOT_SHOWN = re.compile(
    r"<!\[CDATA\[.*?(?:\]\]>|\Z)|<!(?!--|(?:here|channel|everyone|subteam\^[A-Z0-9]+)>)"
    r"[^>]*(?:>|\Z)|<\?[^>]*(?:>|\Z)"
    r"|<(script|style|template)\b[^<>]*>.*?(?:</\1\s*>|\Z)",
    re.DOTALL | re.IGNORECASE,
)
# Attributes of any HTML tag that show as a tooltip or to a screen reader, if at all; taken
# out of each tag (`_TAG`: up to its `>`, quoted values skipped) in one pass.
_TAG = re.compile(r"<[A-Za-z][A-Za-z0-9-]*(?:[^<>\"']|\"[^\"]*\"|'[^']*')*>?")
_HIDDEN_ATTR = re.compile(
    r"\s(?:alt|title|aria-[A-Za-z-]+)\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s>\"']*)", re.IGNORECASE
)
# A markdown link's or image's title (a tooltip): `[x](url "title")`, `'title'`, `(title)`.
_LINK_TITLE = re.compile(
    r"(\]\(\s*(?:<[^<>\n]*>|[^\s()]+))\s+(?:\"[^\"]*\"|'[^']*'|\([^()]*\))\s*\)"
)
# A link reference definition: shows nothing itself (`[//]: # (a "comment")` is the known
# trick); its title never shows either.
_REF_DEFINITION = re.compile(
    r"^ {0,3}\[((?:[^\[\]\\\n]|\\.){1,999})\]:[ \t]*(<[^<>\n]*>|\S+)"
    r"(?:[ \t]+(?:\"[^\"\n]*\"|'[^'\n]*'|\([^()\n]*\)))?[ \t]*$",
    re.MULTILINE,
)
# `<`, a look-alike of it or an entity of it, opening something that reads `untrusted`.
_FENCE_LIKE = re.compile(
    r"(?:[<\uff1c\ufe64\u2039\u3008\u27e8\u2329\u1438]|&(?=(?:lt|#0*60|#x0*3c);))"
    r"(?=(?:lt;|#0*60;|#x0*3c;)?\s*/?\s*untrusted)",
    re.IGNORECASE,
)
_LABEL = re.compile(r"[^A-Za-z0-9 ._/-]")
# Invisible but not of category Cf: control characters (NUL, the escape of terminal
# sequences, …) but tab and line ends, the combining grapheme joiner, Hangul fillers, the Khmer
# inherent vowels, variation selectors 1-14 and 17-256 (VS15/VS16 pick text or emoji style).
_INVISIBLE_OTHER = (
    (0x00, 0x08),  # control characters (category Cc) but tab, line feed, carriage return
    (0x0B, 0x0C),
    (0x0E, 0x1F),
    (0x7F, 0x9F),
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


def image_alts(text: str) -> list[tuple[int, int]]:
    """Where the alt texts of markdown images are (`![` to its matching `]`, brackets nested
    inside it too, backslash escapes skipped): the outermost ones, in one pass."""
    spans: list[tuple[int, int]] = []
    opened: list[tuple[int, bool]] = []  # (where the text after `[` starts, an image's?)
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2
            continue
        if char == "[":
            opened.append((i + 1, i > 0 and text[i - 1] == "!"))
        elif char == "]" and opened:
            start, image = opened.pop()
            if image and not any(outer for _, outer in opened):
                spans.append((start, i))
        i += 1
    return spans


def _without_image_alts(text: str) -> str:
    spans = image_alts(text)
    if not spans:
        return text
    kept, last = [], 0
    for start, end in spans:
        kept.append(text[last:start])
        last = end
    return "".join(kept) + text[last:]


def _without_alt_text(text: str) -> str:
    text = _LINK_TITLE.sub(r"\1)", _without_image_alts(text))
    # each tag once, all its hidden attributes out: linear in the text's length (removing
    # one attribute per tag per pass until none was left took 22 s for 1 MB of them)
    return _TAG.sub(lambda tag: _HIDDEN_ATTR.sub("", tag.group()), text)


def _label(text: str) -> str:
    return " ".join(text.split()).casefold()


def _without_definitions(text: str) -> str:
    """Link reference definitions without their titles, and gone when nothing refers to them
    (then they are only a place to hide text)."""
    found = list(_REF_DEFINITION.finditer(text))
    if not found:
        return text
    rest = _REF_DEFINITION.sub("", text)
    used = {_label(m.group(1)) for m in re.finditer(r"\[([^\[\]]+)\]", rest)}

    def kept(match: re.Match[str]) -> str:
        if _label(match.group(1)) not in used:
            return ""
        return f"[{match.group(1)}]: {match.group(2)}"

    return _REF_DEFINITION.sub(kept, text)


def clean_text(text: str, *, mark: bool = False) -> str:
    """`text` without what a reader of the platform does not see (see the module's doc).
    `mark`: code; invisible characters are shown, comments and alt text kept."""
    if mark:
        return _invisible().sub(_show, text)
    while True:  # until stable: removing one thing must not make another
        cleaned = _invisible().sub("", text)  # first: a zero-width space can split `<!-` `-`
        cleaned = _NOT_SHOWN.sub("", _without_comments(cleaned))
        cleaned = _without_definitions(_without_alt_text(cleaned))
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
        body = _FENCE_LIKE.sub(_neutral, clean_text(text))
        name = _LABEL.sub("", label or "")[:40]
        opening = f'<{self.tag} label="{name}">' if name else f"<{self.tag}>"
        if "\n" in body:
            return f"{opening}\n{body.strip(chr(10))}\n</{self.tag}>"
        return f"{opening}{body}</{self.tag}>"


def _neutral(match: re.Match[str]) -> str:
    """`<` or its look-alike as `&lt;`; the `&` of an entity as `&amp;` (`&amp;lt;`)."""
    return "&amp;" if match.group() == "&" else "&lt;"


def _as_text(value: Any) -> str:
    try:
        return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return str(value)
