"""The idea's one shape: what it accepts, the plain words for what it refuses, and an idea read
from the body GitHub renders for an issue form and from Discord's `/idea` options."""

from __future__ import annotations

from typing import Any

import pytest

from taskyard.ideas.shape import (
    from_issue_form,
    from_options,
    is_idea_form,
    parse,
    problems,
)

# As GitHub renders an issue form (a `### label` per field; `_No response_` for one left empty;
# checkboxes as `- [X]`), with the idea form's fields and one that is not an idea's.
FORM = """### Goal

Let people export their reports as CSV from the reports page.

### Constraints

- No new runtime dependencies
- Keep the export under 2 s for 10k rows
* Same permissions as viewing the report

### Success metrics

1. A CSV download button on every report
2. The export's columns match the table's

### Priority

P1 (this quarter)

### Repository

https://github.com/acme/reports

### Labels

- [X] export
- [ ] backend
- [x] ui

### Risk

Medium

### Budget (USD)

$25.50

### Anything else?

_No response_
"""


def test_a_rendered_issue_form_is_an_idea() -> None:
    data = from_issue_form(FORM)
    assert data == {
        "goal": "Let people export their reports as CSV from the reports page.",
        "constraints": [
            "No new runtime dependencies",
            "Keep the export under 2 s for 10k rows",
            "Same permissions as viewing the report",
        ],
        "success_metrics": [
            "A CSV download button on every report",
            "The export's columns match the table's",
        ],
        "priority": "P1",
        "repo": "acme/reports",
        "labels": ["export", "ui"],
        "risk": "medium",
        "budget_usd": 25.5,
    }
    assert problems(data) == []
    assert is_idea_form(FORM)


def test_a_form_field_left_empty_is_missing_and_said_so() -> None:
    body = FORM.replace(
        "Let people export their reports as CSV from the reports page.", "_No response_"
    )
    data = from_issue_form(body)
    assert "goal" not in data
    assert problems(data) == ["goal is missing"]
    assert is_idea_form(body)  # still the idea form: it has its Goal section


def test_an_issue_without_the_form_is_not_one() -> None:
    assert not is_idea_form("The README has a typo.\n\n### Steps\n\nread it")
    assert not is_idea_form(None)
    assert from_issue_form("just text") == {}


def test_multi_select_labels_and_plain_lines() -> None:
    body = (
        "### Goal\n\nFaster builds\n\n### Labels\n\nci, speed\n\n### Constraints\n\nkeep it\nsmall"
    )
    assert from_issue_form(body) == {
        "goal": "Faster builds",
        "labels": ["ci", "speed"],
        "constraints": ["keep it", "small"],
    }


@pytest.mark.parametrize(
    ("data", "said"),
    [
        ({}, ["goal is missing"]),
        ({"goal": "   \n"}, ["goal is empty"]),
        ({"goal": "x", "priority": "urgent"}, ["priority must be one of P0, P1, P2, P3"]),
        ({"goal": "x", "risk": "huge"}, ["risk must be one of low, medium, high, critical"]),
        ({"goal": "x", "repo": "not a repo"}, ["repo must be owner/name"]),
        ({"goal": "x", "budget_usd": 0}, ["budget_usd must be more than 0"]),
        ({"goal": "x", "budget_usd": "5"}, ["budget_usd must be a number"]),
        ({"goal": "x", "constraints": "one"}, ["constraints must be a list of texts"]),
        ({"goal": "x", "labels": ["ok", 3]}, ["labels[1] must be text"]),
        ({"goal": "x\x00"}, ["goal is empty"]),
        ({"goal": "x", "colour": "red"}, ["colour is not a field of an idea"]),
        (["goal"], ["an idea is a mapping of its fields"]),
    ],
)
def test_what_is_wrong_is_said_in_plain_words(data: Any, said: list[str]) -> None:
    found = problems(data)
    assert len(found) == len(said)
    for text, start in zip(found, said, strict=True):
        assert text.startswith(start)


def test_a_valid_idea_keeps_every_field_it_was_given() -> None:
    shape, found = parse({"goal": "Ship it", "budget_usd": 3, "labels": ["a"]})
    assert found == []
    assert shape is not None
    assert shape.submitted() == {
        "goal": "Ship it",
        "constraints": [],
        "success_metrics": [],
        "priority": "P2",
        "labels": ["a"],
        "budget_usd": 3.0,
    }


def test_discord_options_are_an_idea() -> None:
    options = [
        {"name": "goal", "type": 3, "value": "Dark mode"},
        {"name": "constraints", "type": 3, "value": "no flicker; keep contrast AA"},
        {"name": "success-metrics", "type": 3, "value": "toggle in settings"},
        {"name": "priority", "type": 3, "value": "P0"},
        {"name": "labels", "type": 3, "value": "ui, theme"},
        {"name": "budget", "type": 10, "value": 12.5},
    ]
    data = from_options(options)
    assert data == {
        "goal": "Dark mode",
        "constraints": ["no flicker", "keep contrast AA"],
        "success_metrics": ["toggle in settings"],
        "priority": "P0",
        "labels": ["ui", "theme"],
        "budget_usd": 12.5,
    }
    assert problems(data) == []
    assert problems(from_options([{"name": "priority", "type": 3, "value": "P1"}])) == [
        "goal is missing"
    ]
