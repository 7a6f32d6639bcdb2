"""GitHub write planners: exactly the request a live run would send (dry-run shows this)."""

from __future__ import annotations

import pytest

from taskyard.exceptions import PlatformPermanentError
from taskyard.platforms import github_write as gw


def test_labels_are_added_in_the_documented_object_form() -> None:
    plan = gw.add_labels("acme/api", 7, ["bug", "P1"])
    assert (plan.platform, plan.method, plan.path) == (
        "github",
        "POST",
        "/repos/acme/api/issues/7/labels",
    )
    assert plan.body == {"labels": ["bug", "P1"]}
    assert plan.description == "add labels bug, P1 to acme/api#7"


def test_a_label_name_is_escaped_in_the_path() -> None:
    plan = gw.remove_label("acme/api", 7, "good first issue/docs")
    assert plan.method == "DELETE" and plan.body == {}
    assert plan.path == "/repos/acme/api/issues/7/labels/good%20first%20issue%2Fdocs"


def test_close_and_assign_and_comment() -> None:
    assert gw.close_issue("acme/api", 3).body == {"state": "closed", "state_reason": "completed"}
    assert gw.close_issue("acme/api", 3).method == "PATCH"
    assert gw.assign("acme/api", 3, ["mona"]).body == {"assignees": ["mona"]}
    assert gw.comment("acme/api", 3, "hi").path == "/repos/acme/api/issues/3/comments"


def test_review_comments_default_to_the_new_side() -> None:
    plan = gw.review(
        "acme/api", 9, "abc123", "looks fine", comments=[{"path": "a.py", "line": 4, "body": "x"}]
    )
    assert plan.body == {
        "commit_id": "abc123",
        "body": "looks fine",
        "event": "COMMENT",
        "comments": [{"path": "a.py", "line": 4, "side": "RIGHT", "body": "x"}],
    }
    with pytest.raises(ValueError, match="APPROVED"):
        gw.review("acme/api", 9, "abc", "b", event="APPROVED")
    with pytest.raises(ValueError, match="line"):
        gw.review("acme/api", 9, "abc", "b", comments=[{"path": "a.py", "body": "x"}])


def test_a_multi_line_review_comment_keeps_its_first_line() -> None:
    comment = {"path": "a.py", "line": 7, "start_line": 5, "body": "```suggestion\nx\n```"}
    plan = gw.review("acme/api", 9, "abc123", "", comments=[comment])
    assert plan.body["comments"] == [{**comment, "side": "RIGHT", "start_side": "RIGHT"}]
    with pytest.raises(ValueError, match="start_side"):
        gw.review("acme/api", 9, "abc", "b", comments=[{**comment, "start_side": "UP"}])


def test_a_commit_status_names_its_context_and_cuts_a_long_description() -> None:
    plan = gw.commit_status("acme/api", "c" * 40, "success", "taskyard/review-hash", "d" * 200)
    assert (plan.method, plan.path) == ("POST", f"/repos/acme/api/statuses/{'c' * 40}")
    assert plan.body == {
        "state": "success",
        "context": "taskyard/review-hash",
        "description": "d" * 140,
    }
    linked = gw.commit_status("acme/api", "c" * 40, "pending", "t", "", "https://x.example/1")
    assert linked.body["target_url"] == "https://x.example/1"
    with pytest.raises(ValueError, match="done"):
        gw.commit_status("acme/api", "c" * 40, "done", "t", "")


def test_a_check_with_a_conclusion_is_completed() -> None:
    plan = gw.set_check("acme/api", "a" * 40, "taskyard", conclusion="failure", summary="2 bugs")
    assert plan.body == {
        "name": "taskyard",
        "head_sha": "a" * 40,
        "status": "completed",
        "conclusion": "failure",
        "output": {"title": "taskyard", "summary": "2 bugs"},
    }
    assert gw.set_check("acme/api", "b" * 40, "t", status="in_progress").body["status"] == (
        "in_progress"
    )
    with pytest.raises(ValueError, match="conclusion"):
        gw.set_check("acme/api", "b" * 40, "t")


def test_reactions_go_to_an_issue_or_a_comment() -> None:
    assert gw.add_reaction("acme/api", 7).path == "/repos/acme/api/issues/7/reactions"
    plan = gw.add_reaction("acme/api", comment_id=55, content="rocket")
    assert plan.path == "/repos/acme/api/issues/comments/55/reactions"
    assert plan.body == {"content": "rocket"}
    with pytest.raises(ValueError):
        gw.add_reaction("acme/api", 7, comment_id=55)
    with pytest.raises(ValueError):
        gw.add_reaction("acme/api", 7, content="thumbsup")


def test_pull_requests_are_opened_and_merged() -> None:
    plan = gw.create_pr("acme/api", "Fix", "fix-1", "main", "Closes #3")
    assert plan.body == {"title": "Fix", "head": "fix-1", "base": "main", "body": "Closes #3"}
    merge = gw.merge_pr("acme/api", 8, "rebase")
    assert (merge.method, merge.path, merge.body) == (
        "PUT",
        "/repos/acme/api/pulls/8/merge",
        {"merge_method": "rebase"},
    )
    with pytest.raises(ValueError):
        gw.merge_pr("acme/api", 8, "fast-forward")


def test_a_bad_repository_name_is_refused() -> None:
    with pytest.raises(PlatformPermanentError, match="owner/repo"):
        gw.comment("acme", 1, "x")


def test_results_name_the_issue_number_else_the_id() -> None:
    issue = gw.write_result({"id": 1, "number": 42, "html_url": "https://github.com/a/b/issues/42"})
    assert (issue.external_id, issue.url) == ("42", "https://github.com/a/b/issues/42")
    assert gw.write_result({"id": 99}).external_id == "99"
    assert gw.write_result({"sha": "abc", "merged": True}).external_id == "abc"
    assert gw.write_result([{"name": "bug"}]).external_id is None
