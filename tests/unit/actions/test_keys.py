"""Idempotency keys and the hidden marker."""

from __future__ import annotations

from taskyard.actions.keys import action_key, find_marked, markers_in, with_marker
from taskyard.actions.models import ParsedAction, parse_actions


def parsed(raw: list[dict[str, object]], task_id: str = "t1") -> list[ParsedAction]:
    found = parse_actions(task_id, raw)
    assert all(isinstance(a, ParsedAction) for a in found)
    return [a for a in found if isinstance(a, ParsedAction)]


def test_same_content_same_key_whatever_the_key_order_or_spelling() -> None:
    [a] = parsed([{"type": "create_issue", "params": {"title": "T", "body": "B"}}])
    [b] = parsed([{"type": "create_issue", "params": {"body": "B", "title": "T"}}])
    [c] = parsed([{"type": "add_label", "params": {"label": "bug"}}])
    [d] = parsed([{"type": "add_labels", "params": {"labels": ["bug"]}}])
    assert a.key == b.key
    assert c.key == d.key
    assert a.key.startswith("t1.0.")


def test_changed_content_index_or_task_makes_a_new_key() -> None:
    base = {"type": "comment", "params": {"body": "hi"}}
    [a] = parsed([base])
    [b] = parsed([{"type": "comment", "params": {"body": "hi!"}}])
    _, c = parsed([base, base])
    [d] = parsed([base], task_id="t2")
    assert len({a.key, b.key, c.key, d.key}) == 4


def test_the_reasoning_does_not_change_the_key() -> None:
    [a] = parsed([{"type": "comment", "params": {"body": "hi"}, "reasoning": "one"}])
    [b] = parsed([{"type": "comment", "params": {"body": "hi"}, "reasoning": "two"}])
    assert a.key == b.key


def test_marker_is_appended_once_and_found_again() -> None:
    key = action_key("t1", 0, "comment", {"body": "hi"})
    body = with_marker("hi", key)
    assert with_marker(body, key) == body
    assert body.startswith("hi\n\n<!-- taskyard:")
    assert markers_in(body) == [key]
    comments = [("c1", "unrelated"), ("c2", body), ("c3", with_marker("x", "other.1.abc"))]
    assert find_marked(key, comments) == "c2"
    assert find_marked("t9.0.0000", comments) is None


def test_a_marker_quoted_differently_is_not_a_match() -> None:
    key = action_key("t1", 0, "comment", {"body": "hi"})
    assert markers_in(f"taskyard:{key}") == []
    assert find_marked(key, [("c1", f"quoting {key} in prose")]) is None
