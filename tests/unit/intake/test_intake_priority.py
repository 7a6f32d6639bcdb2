"""Priority rules: the defaults on real payloads, and custom rules of every kind."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from taskyard.config import PriorityRule, default_priority_rules
from taskyard.intake.priority import PriorityRules, assign_priority
from taskyard.models import Priority

DEFAULTS = default_priority_rules()


def _real(webhooks: Path, relative: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads((webhooks / relative).read_text())
    return payload


def _default(source: str, event_type: str, payload: dict[str, Any]) -> Priority:
    return assign_priority(DEFAULTS, Priority.P2, source, event_type, payload)


def _rule(**fields: Any) -> PriorityRule:
    return PriorityRule.model_validate({"name": "r", **fields})


@pytest.mark.parametrize(
    ("relative", "event_type", "expected"),
    [
        ("github/issues.opened.json", "github:issues.opened", Priority.P1),  # label "bug"
        ("github/pull_request.closed.json", "github:pull_request.closed", Priority.P1),
        ("github/pull_request.opened.json", "github:pull_request.opened", Priority.P2),
        ("github/push.json", "github:push", Priority.P2),
    ],
)
def test_github_defaults(
    webhooks: Path, relative: str, event_type: str, expected: Priority
) -> None:
    assert _default("github", event_type, _real(webhooks, relative)) is expected


@pytest.mark.parametrize(
    ("labels", "expected"),
    [(["P0"], Priority.P0), (["p3"], Priority.P3), (["Bug"], Priority.P1),
     (["bug", "P0"], Priority.P0), (["P10"], Priority.P2), ([], Priority.P2),
     (["Bug", "P3"], Priority.P3)],  # explicit level labels are ranked before "bug"
)  # fmt: skip
def test_github_label_defaults(webhooks: Path, labels: list[str], expected: Priority) -> None:
    for relative, holder in (
        ("github/issues.opened.json", "issue"),
        ("github/pull_request.opened.json", "pull_request"),
    ):
        payload = _real(webhooks, relative)
        payload[holder]["labels"] = [{"name": name} for name in labels]
        assert _default("github", f"github:{holder}.opened", payload) is expected


def test_github_label_rules_do_not_apply_to_other_sources(webhooks: Path) -> None:
    payload = _real(webhooks, "github/issues.opened.json")
    assert _default("linear", "linear:Issue.create", payload) is Priority.P2


@pytest.mark.parametrize(
    ("relative", "event_type", "expected"),
    [
        ("example-app.issue.created.json", "sentry:issue.created", Priority.P1),
        ("docs.issue.created.json", "sentry:issue.created", Priority.P1),
        ("example-app.metric_alert.critical.json", "sentry:metric_alert.critical", Priority.P1),
        ("example-app.metric_alert.resolved.json", "sentry:metric_alert.resolved", Priority.P2),
        ("example-app.event_alert.triggered.json", "sentry:event_alert.triggered", Priority.P2),
    ],
)  # fmt: skip
def test_sentry_defaults(
    webhooks: Path, relative: str, event_type: str, expected: Priority
) -> None:
    assert _default("sentry", event_type, _real(webhooks, f"sentry/{relative}")) is expected


@pytest.mark.parametrize(
    ("level", "expected"),
    [("fatal", Priority.P0), ("error", Priority.P1), ("warning", Priority.P2),
     ("info", Priority.P3), ("FATAL", Priority.P0), ("unknown", Priority.P2)],
)  # fmt: skip
def test_sentry_level_defaults(webhooks: Path, level: str, expected: Priority) -> None:
    issue = _real(webhooks, "sentry/example-app.issue.created.json")
    issue["data"]["issue"]["level"] = level
    assert _default("sentry", "sentry:issue.created", issue) is expected
    alert = _real(webhooks, "sentry/example-app.event_alert.triggered.json")
    alert["data"]["event"]["level"] = level
    assert _default("sentry", "sentry:event_alert.triggered", alert) is expected


@pytest.mark.parametrize(
    ("priority", "expected"),
    [(0, Priority.P2), (1, Priority.P0), (2, Priority.P1), (3, Priority.P2), (4, Priority.P3)],
)
def test_linear_priority_defaults(webhooks: Path, priority: int, expected: Priority) -> None:
    payload = _real(webhooks, "linear/issue.create.json")
    assert payload["data"]["priority"] == 0  # the real delivery: "No priority"
    payload["data"]["priority"] = priority
    assert _default("linear", "linear:Issue.create", payload) is expected


PAYLOAD = {
    "action": "opened",
    "count": 3,
    "title": "URGENT: prod is down",
    "labels": [{"name": "Frontend"}, {"name": "needs-triage"}],
    "state": {"name": "Todo"},
}


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ({"path": "state.name", "map": {"todo": "P0"}}, Priority.P0),
        ({"path": "state.name", "map": {"TODO": "P0"}}, Priority.P0),
        ({"path": "state.name", "map": {"done": "P0"}}, None),
        ({"path": "count", "map": {"3": "P1"}}, Priority.P1),
        ({"path": "action", "equals": "opened", "priority": "P0"}, Priority.P0),
        ({"path": "action", "equals": "closed", "priority": "P0"}, None),
        ({"path": "count", "in": [1, 2, 3], "priority": 1}, Priority.P1),
        ({"path": "count", "in": [4], "priority": 1}, None),
        ({"path": "labels[].name", "contains": "frontend", "priority": "P3"}, Priority.P3),
        ({"path": "labels[].name", "contains": "front", "priority": "P3"}, None),
        ({"path": "title", "contains": "urgent", "priority": "P0"}, Priority.P0),
        ({"path": "title", "contains": "calm", "priority": "P0"}, None),
        ({"path": "missing", "priority": "P0"}, None),
        ({"path": "title", "priority": "P0"}, Priority.P0),
        ({"path": "action", "equals": "opened", "priority": "P0", "source": "other"}, None),
        ({"path": "action", "equals": "opened", "priority": "P0", "type": "src:issue.*"},
         Priority.P0),
        ({"path": "action", "equals": "opened", "priority": "P0", "type": "src:pr.*"}, None),
    ],
)  # fmt: skip
def test_custom_rules(rule: dict[str, Any], expected: Priority | None) -> None:
    found = assign_priority([_rule(**rule)], Priority.P3, "src", "src:issue.opened", PAYLOAD)
    assert found is (expected if expected is not None else Priority.P3)
    # An unmatched rule leaves the default; a matched one overrides even a different default.
    if expected is not None:
        assert assign_priority(
            [_rule(**rule)], Priority.P0, "src", "src:issue.opened", PAYLOAD
        ) is (expected)


def test_first_matching_rule_wins_and_non_matching_ones_are_skipped() -> None:
    rules = [
        _rule(path="state.name", map={"done": "P3"}),  # no entry: skipped
        _rule(path="action", equals="opened", priority="P1"),
        _rule(path="action", equals="opened", priority="P0"),
    ]
    assert assign_priority(rules, Priority.P2, "src", "src:x", PAYLOAD) is Priority.P1
    assert assign_priority([], Priority.P2, "src", "src:x", PAYLOAD) is Priority.P2


def test_compiled_rules_remember_which_apply_per_source_and_type() -> None:
    rules = PriorityRules(DEFAULTS, Priority.P2)
    applicable = rules.applicable("sentry", "sentry:metric_alert.critical")
    assert [r.name for r in applicable] == [
        "sentry-level",
        "sentry-alert-level",
        "sentry-metric-critical",
    ]
    assert rules.applicable("sentry", "sentry:metric_alert.critical") is applicable
    assert [r.name for r in rules.applicable("sentry", "sentry:issue.created")] == [
        "sentry-level",
        "sentry-alert-level",
    ]
    assert rules.applicable("discord", "discord:interaction.command") == ()
    labelled = {"pull_request": {"labels": [{"name": "Bug"}]}}
    assert rules.assign("github", "github:pull_request.opened", labelled) == Priority.P1
    assert rules.assign("github", "github:pull_request.opened", {}) == Priority.P2
