"""The action registry and parsing an agent's proposed actions."""

from __future__ import annotations

from taskyard.actions.keys import markers_in
from taskyard.actions.models import (
    REGISTRY,
    InvalidAction,
    ParsedAction,
    Review,
    Target,
    parse_actions,
)
from taskyard.models import Priority

EXPECTED_TYPES = {
    "add_labels",
    "remove_labels",
    "set_priority",
    "set_state",
    "assign",
    "comment",
    "create_issue",
    "review",
    "set_check",
    "close_issue",
    "create_pr",
    "merge_pr",
    "mention_users",
    "post_channel",
    "react",
    "run_command",
}


def test_one_registry_holds_every_action_type() -> None:
    assert set(REGISTRY) == EXPECTED_TYPES
    for name, spec in REGISTRY.items():
        assert spec.type == name
        assert spec.marker_field is None or spec.marker_field in spec.params.model_fields


def test_valid_actions_are_typed() -> None:
    review = {
        "type": "review",
        "params": {
            "summary": "Two problems.",
            "verdict": "request_changes",
            "comments": [{"path": "a.py", "line": 3, "body": "off by one"}],
        },
        "reasoning": "found bugs",
    }
    priority = {"type": "set_priority", "params": {"priority": "p1"}}
    [r, p] = parse_actions("t1", [review, priority])
    assert isinstance(r, ParsedAction) and isinstance(r.params, Review)
    assert r.params.comments[0].line == 3 and r.reasoning == "found bugs"
    assert isinstance(p, ParsedAction) and p.params_json() == {"priority": int(Priority.P1)}


def test_bad_params_name_the_field() -> None:
    raw = [
        {"type": "review", "params": {"summary": "x", "comments": [{"path": "a", "line": 0}]}},
        {"type": "set_priority", "params": {"priority": "urgent"}},
        {"type": "comment", "params": {"body": "x", "extra": 1}},
        {"type": "comment", "params": ["x"]},
    ]
    found = parse_actions("t1", raw)
    assert all(isinstance(a, InvalidAction) for a in found)
    errors = [a.error for a in found if isinstance(a, InvalidAction)]
    assert "comments.0.line" in errors[0] and "comments.0.body" in errors[0]
    assert "P0, P1, P2, P3" in errors[1]
    assert "extra: Extra inputs are not permitted" in errors[2]
    assert errors[3].startswith("invalid params for comment:")


def test_the_marker_is_added_for_sending_on_github_only() -> None:
    [comment, labels] = parse_actions(
        "t1",
        [
            {"type": "comment", "params": {"body": "hi"}},
            {"type": "add_labels", "params": {"labels": ["x"]}},
        ],
    )
    assert isinstance(comment, ParsedAction) and isinstance(labels, ParsedAction)
    on_github = comment.for_sending(Target(platform="github", repo="a/b", number=1))
    assert markers_in(on_github.params_json()["body"]) == [comment.key]
    assert on_github.key == comment.key
    on_slack = comment.for_sending(Target(platform="slack", channel="C1"))
    assert on_slack.params_json()["body"] == "hi"
    assert labels.for_sending(Target(platform="github")) is labels
