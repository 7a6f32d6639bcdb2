"""Linear write planners: the mutation document and exactly the variables sent."""

from __future__ import annotations

import pytest

from taskyard.exceptions import PlatformPermanentError
from taskyard.platforms import linear_write as lw


def test_issue_update_sends_only_the_fields_given() -> None:
    plan = lw.issue_update("ENG-1", priority=2, label_ids=["l1", "l2"])
    assert (plan.platform, plan.method, plan.path) == ("linear", "POST", "graphql")
    assert plan.body["variables"] == {
        "id": "ENG-1",
        "input": {"labelIds": ["l1", "l2"], "priority": 2},
    }
    assert "issueUpdate(id: $id, input: $input)" in plan.body["query"]
    with pytest.raises(ValueError, match="at least one"):
        lw.issue_update("ENG-1")
    with pytest.raises(ValueError, match=r"0\.\.4"):
        lw.issue_update("ENG-1", priority=7)


def test_an_empty_label_list_clears_the_labels() -> None:
    assert lw.issue_update("ENG-1", label_ids=[]).body["variables"]["input"] == {"labelIds": []}


def test_comment_issue_and_reaction() -> None:
    assert lw.comment_create("i-1", "done").body["variables"] == {
        "input": {"issueId": "i-1", "body": "done"}
    }
    created = lw.issue_create("t-1", "Crash", "on save", priority=1, label_ids=["l1"])
    assert created.body["variables"] == {
        "input": {
            "teamId": "t-1",
            "title": "Crash",
            "description": "on save",
            "priority": 1,
            "labelIds": ["l1"],
        }
    }
    reaction = lw.reaction_create("eyes", comment_id="c-1")
    assert reaction.body["variables"] == {"input": {"emoji": "eyes", "commentId": "c-1"}}
    with pytest.raises(ValueError):
        lw.reaction_create("eyes")


def test_a_mutation_that_did_not_succeed_is_permanent() -> None:
    with pytest.raises(PlatformPermanentError, match="did not succeed"):
        lw.write_result({"issueUpdate": {"success": False, "issue": None}}, "update ENG-1")
    result = lw.write_result(
        {"issueCreate": {"success": True, "issue": {"id": "u", "identifier": "ENG-2", "url": "U"}}},
        "open",
    )
    assert (result.external_id, result.url) == ("ENG-2", "U")
