"""The one shape an idea has, wherever it comes from (a GitHub issue form, Discord's `/idea`, a
file for `taskyard ideas submit`, `POST /api/ideas`), and the plain words that say what is
wrong with one.

`IdeaShape` is strict (a budget given as "5" is refused, not read as 5) and its JSON Schema
is the API's request body, so what the document promises and what is accepted cannot drift.
`problems(data)` names each missing or wrong field ("goal is missing") for the place the idea
came from. `from_issue_form` reads the body GitHub renders from an issue form: one
`### Label` heading per field, its answer below, `_No response_` for a field left empty,
checkboxes as `- [X] option`."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

# The patterns are also the API's JSON Schema, so they mean the same in Python's `re` and in
# ECMA-262: blanks are spelled out (the two disagree on `\s`), and the end of the text is
# `(?![\s\S])` (Python's `$` also matches before a final new line).
NO_NUL = r"^[^\x00]*$"
BLANK = r"\t\n\v\f\r \x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
# A goal holds something other than blanks (and no NUL, which PostgreSQL cannot keep).
GOAL = rf"^[{BLANK}]*[^{BLANK}\x00][^\x00]*$"
REPO = r"^[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}(?![\s\S])"
Text = Annotated[str, StringConstraints(pattern=NO_NUL, max_length=2000)]
Label = Annotated[str, StringConstraints(pattern=NO_NUL, max_length=100)]
PRIORITIES = ("P0", "P1", "P2", "P3")
RISKS = ("low", "medium", "high", "critical")


class IdeaShape(BaseModel):
    """What a person gives: the goal (required), constraints, success metrics and priority;
    optionally the repository (`owner/name`), labels, a risk level and a budget in USD."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        strict=True,
        regex_engine="python-re",
        hide_input_in_errors=True,
    )

    goal: Annotated[str, StringConstraints(pattern=GOAL, max_length=20000)]
    constraints: list[Text] = Field(default_factory=list, max_length=100)
    success_metrics: list[Text] = Field(default_factory=list, max_length=100)
    priority: Literal["P0", "P1", "P2", "P3"] = "P2"
    repo: Annotated[str, StringConstraints(pattern=REPO)] | None = None
    labels: list[Label] = Field(default_factory=list, max_length=100)
    risk: Literal["low", "medium", "high", "critical"] | None = None
    budget_usd: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None

    def submitted(self) -> dict[str, Any]:
        """The shape as an idea keeps it (`Idea.shape`): every field, absent ones left out."""
        return self.model_dump(mode="json", exclude_none=True)


FIELDS = tuple(IdeaShape.model_fields)


def parse(data: Any) -> tuple[IdeaShape | None, list[str]]:
    """The shape of `data`, or None and what is wrong with it (never empty then)."""
    if not isinstance(data, Mapping):
        return None, [f"an idea is a mapping of its fields ({', '.join(FIELDS)})"]
    try:
        return IdeaShape.model_validate(dict(data)), []
    except ValidationError as exc:
        said = [_problem(e) for e in exc.errors(include_url=False, include_input=False)]
        return None, list(dict.fromkeys(said))


def problems(data: Any) -> list[str]:
    """What is missing or wrong in `data`, in plain words; empty when it is a valid idea."""
    return parse(data)[1]


def _where(loc: Sequence[int | str]) -> str:
    """`("constraints", 2)` → `constraints[2]`."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "the idea"


def _pattern_problem(where: str) -> str:
    if where == "goal":
        return "goal is empty"
    if where == "repo":
        return "repo must be owner/name"
    return f"{where} must not contain NUL characters"


_TYPES = {
    "string_type": "text",
    "list_type": "a list of texts",
    "float_type": "a number",
    "int_type": "a number",
}
_SAID: dict[str, Callable[[str, Mapping[str, Any]], str]] = {
    "missing": lambda w, _: f"{w} is missing",
    "extra_forbidden": lambda w, _: f"{w} is not a field of an idea ({', '.join(FIELDS)})",
    "string_pattern_mismatch": lambda w, _: _pattern_problem(w),
    "greater_than": lambda w, _: f"{w} must be more than 0",
    "finite_number": lambda w, _: f"{w} must be a finite number",
    "too_long": lambda w, ctx: f"{w} is too long (at most {ctx.get('max_length')})",
    "string_too_long": lambda w, ctx: f"{w} is too long (at most {ctx.get('max_length')})",
}


def _problem(error: Mapping[str, Any]) -> str:
    where, kind, ctx = _where(error["loc"]), str(error["type"]), error.get("ctx") or {}
    if kind == "literal_error":
        allowed = PRIORITIES if where == "priority" else RISKS
        return f"{where} must be one of {', '.join(allowed)}"
    if kind in _TYPES:
        return f"{where} must be {_TYPES[kind]}"
    said = _SAID.get(kind)
    return said(where, ctx) if said else f"{where}: {error['msg']}"


# --- GitHub issue forms -------------------------------------------------------------------

_HEADING = re.compile(r"^###[ \t]+(.+?)[ \t]*#*[ \t]*$", re.MULTILINE)
NO_RESPONSE = "_No response_"
_HEADINGS = {
    "goal": "goal",
    "constraints": "constraints",
    "success metrics": "success_metrics",
    "priority": "priority",
    "repository": "repo",
    "repo": "repo",
    "labels": "labels",
    "risk": "risk",
    "budget": "budget_usd",
    "budget usd": "budget_usd",
}
_LISTS = frozenset({"constraints", "success_metrics", "labels"})
_BULLET = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")
_CHECKBOX = re.compile(r"^\[([ xX])\]\s*")


def _field_of(heading: str) -> str | None:
    """`Success metrics` → success_metrics; `Budget (USD)` → budget_usd; others None."""
    words = re.sub(r"[^a-z0-9]+", " ", heading.lower().replace("(", " ").replace(")", " "))
    return _HEADINGS.get(" ".join(words.split()))


def form_sections(body: str) -> dict[str, str]:
    """The answer under each `### Heading` that names a field of an idea (by field)."""
    found: dict[str, str] = {}
    marks = list(_HEADING.finditer(body))
    ends = [m.start() for m in marks[1:]] + [len(body)] if marks else []
    for mark, end in zip(marks, ends, strict=True):
        name = _field_of(mark.group(1))
        answer = body[mark.end() : end].strip()
        if name is not None and name not in found:
            found[name] = "" if answer == NO_RESPONSE else answer
    return found


def is_idea_form(body: str | None) -> bool:
    """Whether an issue's body was written from the idea form (it has a `### Goal` section)."""
    return bool(body) and "goal" in form_sections(body or "")


def list_items(text: str, comma: bool = False) -> list[str]:
    """One item per line (bullets and numbers dropped; an unticked checkbox is no item);
    with `comma`, a line also splits at commas (a multi-select dropdown: `a, b`)."""
    items: list[str] = []
    for raw in text.splitlines():
        line = _BULLET.sub("", raw).strip()
        box = _CHECKBOX.match(line)
        if box is not None:
            if box.group(1) == " ":
                continue
            line = line[box.end() :].strip()
        parts = line.split(",") if comma else [line]
        items.extend(p.strip() for p in parts if p.strip())
    return items


def _priority(text: str) -> str:
    """`P1 (this week)` → P1; anything else as written (for `problems` to refuse)."""
    found = re.search(r"\bP[0-3]\b", text.upper())
    return found.group(0) if found else text


def _risk(text: str) -> str:
    word = text.split()[0].lower() if text.split() else text
    return word if word in RISKS else text


def _budget(text: str) -> float | str:
    """`$25`, `25.50 USD`, `1,000` → a number; anything else as written."""
    found = re.fullmatch(r"\$?\s*([0-9][0-9,]*(?:\.[0-9]+)?)\s*(?:usd|\$)?", text.strip(), re.I)
    return float(found.group(1).replace(",", "")) if found else text


def _repo(text: str) -> str:
    """`https://github.com/acme/api` → acme/api; anything else as written."""
    found = re.fullmatch(r"(?:https?://github\.com/)?([^/\s]+/[^/\s]+?)(?:\.git)?/?", text)
    return found.group(1) if found else text


_SCALARS: dict[str, Callable[[str], Any]] = {
    "goal": lambda text: text,
    "priority": _priority,
    "risk": _risk,
    "budget_usd": _budget,
    "repo": _repo,
}


def from_issue_form(body: str) -> dict[str, Any]:
    """The idea's fields as an issue form's rendered body gives them; a field left empty
    (`_No response_`) is absent, for `problems` to name."""
    data: dict[str, Any] = {}
    for name, text in form_sections(body).items():
        if name in _LISTS:
            items = list_items(text, comma=name == "labels")
            if items:
                data[name] = items
        elif text:
            data[name] = _SCALARS[name](text)
    return data


# --- Discord's /idea ----------------------------------------------------------------------

_OPTION_NAMES = {"budget": "budget_usd", "metrics": "success_metrics", "repository": "repo"}


def from_options(options: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The idea's fields from a slash command's options (`[{name, type, value}]`): list
    fields are split at `;` or new lines (labels also at commas)."""
    data: dict[str, Any] = {}
    for option in options:
        name = str(option.get("name") or "").replace("-", "_")
        name = _OPTION_NAMES.get(name, name)
        value = option.get("value")
        if name in _LISTS and isinstance(value, str):
            data[name] = list_items(value.replace(";", "\n"), comma=name == "labels")
        elif name == "budget_usd" and isinstance(value, str):
            data[name] = _budget(value)
        elif name:
            data[name] = value
    return data
