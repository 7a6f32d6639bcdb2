"""Linear writes that taskyard makes idempotent: ids it chooses (`linear_uuid`) for what it
creates, and labels taken off (`removedLabelIds`)."""

from __future__ import annotations

import uuid

import pytest

from taskyard.platforms import linear_write as lw

KEY = "task-1.0.0123456789abcdef"


def test_linear_uuid_is_a_version_4_uuid_stable_per_key() -> None:
    made = lw.linear_uuid(KEY)
    parsed = uuid.UUID(made)
    assert str(parsed) == made  # canonical lower-case 8-4-4-4-12
    assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
    assert lw.linear_uuid(KEY) == made
    assert lw.linear_uuid(KEY + "x") != made
    assert len({lw.linear_uuid(f"task-1.{i}.abc") for i in range(1000)}) == 1000


def test_creations_carry_the_id_given() -> None:
    chosen = lw.linear_uuid(KEY)
    comment = lw.comment_create("i-1", "done", id=chosen)
    assert comment.body["variables"] == {"input": {"id": chosen, "issueId": "i-1", "body": "done"}}
    issue = lw.issue_create("t-1", "Crash", id=chosen)
    assert issue.body["variables"] == {"input": {"id": chosen, "teamId": "t-1", "title": "Crash"}}


def test_an_id_that_is_not_a_uuid_is_refused() -> None:
    with pytest.raises(ValueError, match="a Linear id is a UUID"):
        lw.comment_create("i-1", "done", id="ENG-1")
    with pytest.raises(ValueError, match="a Linear id is a UUID"):
        lw.issue_create("t-1", "Crash", id="not-a-uuid")


def test_issue_update_takes_labels_off() -> None:
    plan = lw.issue_update("ENG-1", removed_label_ids=["l-1", "l-2"])
    assert plan.body["variables"] == {"id": "ENG-1", "input": {"removedLabelIds": ["l-1", "l-2"]}}
    assert "removedLabelIds" in plan.description
    both = lw.issue_update("ENG-1", added_label_ids=["l-3"], removed_label_ids=["l-1"])
    assert both.body["variables"]["input"] == {"addedLabelIds": ["l-3"], "removedLabelIds": ["l-1"]}
