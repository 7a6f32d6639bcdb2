"""target_from_event on real deliveries (shared/webhooks) and Slack's documented shapes."""

from __future__ import annotations

from pathlib import Path

import pytest

from taskyard.actions.models import Target
from taskyard.actions.target import target_from_event
from tests.unit.routing.events import event_for, load, slack_message

TEAM = "team-default"
PR_HEAD = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"


def target_of(shared_dir: Path, source: str, name: str, kind: str | None = None) -> Target:
    payload = load(shared_dir / "webhooks", f"{source}/{name}")
    event = event_for(source, payload, kind)
    return target_from_event(event, payload, default_linear_team=TEAM)


def test_github_pull_request_opened_is_the_pull_request_at_its_head(shared_dir: Path) -> None:
    target = target_of(shared_dir, "github", "pull_request.opened.json", "pull_request")
    assert target == Target(
        platform="github",
        repo="Codertocat/Hello-World",
        number=2,
        pull_request=True,
        head_sha=PR_HEAD,
        team_id=TEAM,
        branch="master",
        lines_changed=2,
    )


def test_github_issue_opened_is_the_issue(shared_dir: Path) -> None:
    target = target_of(shared_dir, "github", "issues.opened.json", "issues")
    assert (target.platform, target.repo, target.number) == ("github", "Codertocat/Hello-World", 1)
    assert target.pull_request is False
    assert target.head_sha is None


def test_github_issue_comment_is_the_issue_commented_on(shared_dir: Path) -> None:
    target = target_of(shared_dir, "github", "issue_comment.created.json", "issue_comment")
    assert (target.repo, target.number, target.pull_request) == (
        "Codertocat/Hello-World",
        1,
        False,
    )


def test_github_comment_on_a_pull_request_marks_it_a_pull_request(shared_dir: Path) -> None:
    payload = load(shared_dir / "webhooks", "github/issue_comment.created.json")
    payload["issue"]["pull_request"] = {"url": "https://api.github.com/repos/x/y/pulls/1"}
    target = target_from_event(event_for("github", payload, "issue_comment"), payload)
    assert (target.number, target.pull_request, target.head_sha) == (1, True, None)


def test_github_check_run_carries_its_head_commit(shared_dir: Path) -> None:
    target = target_of(shared_dir, "github", "check_run.completed.json", "check_run")
    assert (target.repo, target.head_sha) == ("Codertocat/Hello-World", PR_HEAD)


def test_github_push_that_deleted_a_branch_has_no_head_commit(shared_dir: Path) -> None:
    payload = load(shared_dir / "webhooks", "github/push.json")
    payload["after"] = "0" * 40
    target = target_from_event(event_for("github", payload, "push"), payload)
    assert (target.number, target.head_sha) == (None, None)


def test_github_push_to_a_branch_names_the_branch_and_a_tag_push_none(shared_dir: Path) -> None:
    payload = load(shared_dir / "webhooks", "github/push.json")
    assert payload["ref"] == "refs/tags/simple-tag"
    tag = target_from_event(event_for("github", payload, "push"), payload)
    payload["ref"] = "refs/heads/release/1.2"
    pushed = target_from_event(event_for("github", payload, "push"), payload)
    assert (tag.branch, pushed.branch, pushed.lines_changed) == (None, "release/1.2", None)


def test_github_pull_request_size_is_its_additions_and_deletions(shared_dir: Path) -> None:
    payload = load(shared_dir / "webhooks", "github/pull_request.synchronize.json")
    payload["pull_request"].update(additions=420, deletions=95)
    target = target_from_event(event_for("github", payload, "pull_request"), payload)
    assert (target.branch, target.lines_changed) == ("master", 515)


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("pull_request_review.submitted.json", "pull_request_review"),
        ("pull_request_review_comment.created.json", "pull_request_review_comment"),
    ],
)
def test_github_review_events_have_the_base_branch_but_no_size(
    shared_dir: Path, name: str, kind: str
) -> None:
    target = target_of(shared_dir, "github", name, kind)
    assert (target.pull_request, target.branch, target.lines_changed) == (True, "master", None)


def test_github_check_run_goes_to_its_pull_requests_base(shared_dir: Path) -> None:
    target = target_of(shared_dir, "github", "check_run.completed.json", "check_run")
    assert (target.branch, target.lines_changed) == ("master", None)


def test_github_issue_has_no_branch_or_size(shared_dir: Path) -> None:
    target = target_of(shared_dir, "github", "issues.opened.json", "issues")
    assert (target.branch, target.lines_changed) == (None, None)


def test_linear_issue_create_is_the_issue_in_its_own_team(shared_dir: Path) -> None:
    target = target_of(shared_dir, "linear", "issue.create.json")
    assert target == Target(
        platform="linear",
        issue_id="236e0fe8-xxxx-xxxx-xxxx-b2df06e33810",
        team_id="eeaa0cbd-xxxx-xxxx-xxxx-1c701c3485f1",
    )


def test_linear_comment_is_the_issue_commented_on_with_the_default_team(
    shared_dir: Path,
) -> None:
    target = target_of(shared_dir, "linear", "comment.create.sdk-test.json")
    assert target == Target(
        platform="linear", issue_id="539068e2-ae88-4d09-bd75-22eb4a59612f", team_id=TEAM
    )


@pytest.mark.parametrize("name", ["example-app.issue.created.json", "docs.issue.created.json"])
def test_sentry_has_nothing_to_write_to_but_the_default_team(shared_dir: Path, name: str) -> None:
    target = target_of(shared_dir, "sentry", name, "issue")
    assert target == Target(platform="sentry", team_id=TEAM)


def test_sentry_without_a_default_team_has_no_team(shared_dir: Path) -> None:
    payload = load(shared_dir / "webhooks", "sentry/example-app.issue.created.json")
    target = target_from_event(event_for("sentry", payload, "issue"), payload)
    assert target == Target(platform="sentry")


def test_slack_top_level_message_is_answered_in_a_thread_under_it() -> None:
    payload = slack_message("C0BUGS", ts="1700000000.000100")
    target = target_from_event(event_for("slack", payload), payload)
    assert (target.platform, target.channel, target.thread_ts) == (
        "slack",
        "C0BUGS",
        "1700000000.000100",
    )


def test_slack_reply_is_answered_in_its_thread() -> None:
    payload = slack_message("C0BUGS", ts="1700000000.000900", thread_ts="1700000000.000100")
    target = target_from_event(event_for("slack", payload), payload, default_linear_team=TEAM)
    assert target == Target(
        platform="slack",
        channel="C0BUGS",
        thread_ts="1700000000.000100",
        message_ts="1700000000.000900",
        team_id=TEAM,
    )
