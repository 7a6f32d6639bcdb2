"""A bad policy file is refused at load, naming the file, the line and the rule id; a good one
loads with each rule compiled."""

from __future__ import annotations

from pathlib import Path

import pytest

from taskyard.policy.rules import Outcome, Point, PolicyError, load_policy

GOOD = """\
rules:
  - id: first
    point: scheduling
    when: size(labels) > 0
    outcome: allow
    reason: labelled
  - id: second
    point: pre_merge
    when: diff.files > 10
    outcome: approve
    risk: medium
    reason: many files
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policies.yaml"
    path.write_text(text)
    return path


def refused(tmp_path: Path, text: str) -> PolicyError:
    path = write(tmp_path, text)
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert str(path) in str(caught.value)
    return caught.value


def test_a_good_file_loads_compiled(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, GOOD))
    assert [(r.id, r.point, r.outcome, r.risk, r.line) for r in policy.rules] == [
        ("first", Point.SCHEDULING, Outcome.ALLOW, None, 2),
        ("second", Point.PRE_MERGE, Outcome.APPROVE, "medium", 7),
    ]


@pytest.mark.parametrize(
    ("old", "new", "line", "rule"),
    [
        ("    outcome: allow", "   outcome: allow", 5, "first"),  # indented one space less
        ("    when: diff.files > 10", "    when: [diff.files > 10", 10, "second"),
    ],
)
def test_yaml_syntax_error_names_line_and_rule(
    tmp_path: Path, old: str, new: str, line: int, rule: str
) -> None:
    error = refused(tmp_path, GOOD.replace(old, new))
    assert (error.line, error.rule_id) == (line, rule)
    assert "YAML syntax" in str(error)


def test_expression_that_does_not_compile(tmp_path: Path) -> None:
    error = refused(tmp_path, GOOD.replace("diff.files > 10", "diff.files >"))
    assert (error.line, error.rule_id) == (9, "second")
    assert "does not compile" in str(error)
    assert f"{error.path}:9: rule 'second'" in str(error)


def test_expression_calling_an_unknown_function(tmp_path: Path) -> None:
    error = refused(tmp_path, GOOD.replace("size(labels)", "sizeof(labels)"))
    assert (error.line, error.rule_id) == (4, "first")
    assert "sizeof" in str(error)


@pytest.mark.parametrize(
    ("old", "new", "line", "words"),
    [
        ("point: pre_merge", "point: pre_release", 8, "unknown point 'pre_release'"),
        ("outcome: allow", "outcome: maybe", 5, "unknown outcome 'maybe'"),
        ("risk: medium", "risk: huge", 11, "unknown risk 'huge'"),
        ("    risk: medium\n", "", 7, "needs a risk"),
        ("    reason: labelled\n", "", 2, "missing 'reason'"),
        ("    reason: labelled\n", "    reason: labelled\n    colour: red\n", 7, "unknown field"),
        ("id: second", "id: first", 7, "duplicate rule id"),
    ],
)
def test_bad_fields_refused_with_line(
    tmp_path: Path, old: str, new: str, line: int, words: str
) -> None:
    error = refused(tmp_path, GOOD.replace(old, new))
    assert error.line == line
    assert words in str(error)
    assert error.rule_id in {"first", "second"}
