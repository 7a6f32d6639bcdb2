"""The shipped example policies: each rule fires on the input it is about and not on a
neighbouring one; the strongest outcome decides."""

from __future__ import annotations

from importlib.resources import files
from typing import Any

import pytest

from taskyard.policy.engine import evaluate
from taskyard.policy.rules import Outcome, Point, Policy, load_policy

WEEKDAY = "2026-03-25T10:00:00+01:00"  # a Wednesday morning in Berlin


@pytest.fixture(scope="module")
def policy() -> Policy:
    path = files("taskyard.policy") / "examples" / "policies.yaml"
    return load_policy(str(path))


def fired(policy: Policy, point: Point, data: dict[str, Any]) -> list[str]:
    return [f.rule_id for f in evaluate(policy, point, data).fired]


CASES = [
    (
        "migrations-need-their-tests",
        Point.PRE_MERGE,
        {"paths": ["migrations/002_add.sql"], "tests": {"commands": ["pytest tests/unit"]}},
        {"paths": ["migrations/002_add.sql"], "tests": {"commands": ["pytest tests/migrations"]}},
    ),
    (
        "web-needs-browser-tests",
        Point.PRE_MERGE,
        {"paths": ["web/app.ts"], "tests": {"commands": []}},
        {"paths": ["api/app.py"], "tests": {"commands": []}},
    ),
    (
        "high-risk-label",
        Point.PRE_MERGE,
        {"labels": ["bug", "security"]},
        {"labels": ["bug", "docs"], "idea": {"risk": "low"}},
    ),
    (
        "idea-churn-limit",
        Point.PRE_MERGE,
        {"diff": {"lines_added": 1200, "lines_removed": 301}},
        {"diff": {"lines_added": 1200, "lines_removed": 300}},
    ),
    (
        "weekend-freeze",
        Point.PRE_DEPLOY,
        {"environment": "production", "time": "2026-03-27T18:30:00+01:00"},
        {"environment": "production", "time": "2026-03-27T17:30:00+01:00"},
    ),
    (
        "daily-deploy-budget",
        Point.PRE_DEPLOY,
        {"environment": "production", "service": "api", "deploys_today": {"api": 5}},
        {"environment": "production", "service": "api", "deploys_today": {"api": 4, "web": 9}},
    ),
]


@pytest.mark.parametrize(("rule", "point", "hit", "miss"), CASES, ids=[c[0] for c in CASES])
def test_each_example_fires_on_its_input_only(
    policy: Policy, rule: str, point: Point, hit: dict[str, Any], miss: dict[str, Any]
) -> None:
    assert fired(policy, point, {"time": WEEKDAY, **hit}) == [rule]
    assert fired(policy, point, {"time": WEEKDAY, **miss}) == []


def test_every_example_rule_is_covered(policy: Policy) -> None:
    assert {r.id for r in policy.rules} == {c[0] for c in CASES}


def test_a_rule_fires_only_at_its_point(policy: Policy) -> None:
    data = {"labels": ["security"], "time": WEEKDAY}
    assert fired(policy, Point.PRE_DEPLOY, data) == []
    assert fired(policy, Point.SCHEDULING, data) == []


def test_deny_wins_over_approve_and_approve_over_allow(policy: Policy) -> None:
    approve = {"labels": ["auth"], "diff": {"lines_added": 2000}, "time": WEEKDAY}
    decision = evaluate(policy, Point.PRE_MERGE, approve)
    assert decision.outcome == Outcome.APPROVE
    assert decision.risk == "high"  # the higher of high (label) and medium (churn)
    deny = {**approve, "paths": ["web/x.ts"]}
    decision = evaluate(policy, Point.PRE_MERGE, deny)
    assert decision.outcome == Outcome.DENY
    assert [f.rule_id for f in decision.fired] == [
        "web-needs-browser-tests",
        "high-risk-label",
        "idea-churn-limit",
    ]
    assert evaluate(policy, Point.PRE_MERGE, {"time": WEEKDAY}).outcome == Outcome.ALLOW
