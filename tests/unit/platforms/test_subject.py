"""What fetchers learn from an event, read from the platforms' own payloads
(shared/webhooks) and, for Slack event shapes the corpus lacks, Slack's documented ones."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from taskyard.platforms import ContextSubject, subject_from_payload


def load(shared_dir: Path, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((shared_dir / "webhooks" / name).read_text())
    return data


@pytest.mark.parametrize(
    "name",
    [
        "pull_request.opened.json",
        "pull_request.synchronize.json",
        "pull_request_review.submitted.json",
        "pull_request_review_comment.created.json",
    ],
)
def test_github_pull_request_events(shared_dir: Path, name: str) -> None:
    payload = load(shared_dir, f"github/{name}")
    subject = subject_from_payload("github", payload)
    assert subject.repo == "Codertocat/Hello-World" and subject.number == 2
    assert subject.is_pull_request and subject.title == payload["pull_request"]["title"]
    assert subject.installation_id == (payload.get("installation") or {}).get("id")


def test_github_installation_id_comes_from_the_event(shared_dir: Path) -> None:
    subject = subject_from_payload("github", load(shared_dir, "github/pull_request.closed.json"))
    assert subject.installation_id == 1


@pytest.mark.parametrize("name", ["issues.opened.json", "issue_comment.created.json"])
def test_github_issue_events(shared_dir: Path, name: str) -> None:
    subject = subject_from_payload("github", load(shared_dir, f"github/{name}"))
    assert (subject.repo, subject.number, subject.is_pull_request) == (
        "Codertocat/Hello-World",
        1,
        False,
    )


def test_github_comment_on_a_pull_request_is_about_the_pull_request(shared_dir: Path) -> None:
    payload = load(shared_dir, "github/issue_comment.created.json")
    payload["issue"]["pull_request"] = {"url": "https://api.github.com/repos/x/y/pulls/1"}
    assert subject_from_payload("github", payload).is_pull_request


def test_github_check_run_names_its_pull_request(shared_dir: Path) -> None:
    subject = subject_from_payload("github", load(shared_dir, "github/check_run.completed.json"))
    assert subject.number == 2 and subject.is_pull_request


def test_github_push_has_a_repository_but_no_number(shared_dir: Path) -> None:
    subject = subject_from_payload("github", load(shared_dir, "github/push.json"))
    assert subject.repo == "Codertocat/Hello-World" and subject.number is None


def test_linear_issue(shared_dir: Path) -> None:
    subject = subject_from_payload("linear", load(shared_dir, "linear/issue.create.json"))
    assert subject.linear_issue_id == "236e0fe8-xxxx-xxxx-xxxx-b2df06e33810"
    assert subject.linear_team_id == "eeaa0cbd-xxxx-xxxx-xxxx-1c701c3485f1"
    assert subject.title == "webhook test"


def test_linear_comment_names_its_issue(shared_dir: Path) -> None:
    payload = load(shared_dir, "linear/comment.create.sdk-test.json")
    subject = subject_from_payload("linear", payload)
    assert subject.linear_issue_id == "539068e2-ae88-4d09-bd75-22eb4a59612f"
    assert subject.linear_team_id is None


@pytest.mark.parametrize(
    ("name", "issue_id", "org", "project"),
    [
        ("docs.issue.created.json", "1170820242", None, "front-end"),
        ("example-app.issue.created.json", "123", "example", "ipe"),
        ("example-app.event_alert.triggered.json", "123", "example", None),
        ("example-app.comment.created.json", "123", "example", "ipe"),
        ("example-app.metric_alert.critical.json", None, "example", None),
    ],
)
def test_sentry(
    shared_dir: Path, name: str, issue_id: str | None, org: str | None, project: str | None
) -> None:
    subject = subject_from_payload("sentry", load(shared_dir, f"sentry/{name}"))
    assert (subject.sentry_issue_id, subject.sentry_organization, subject.sentry_project) == (
        issue_id,
        org,
        project,
    )


# Slack's documented Events API and interaction shapes (api.slack.com / docs.slack.dev), minimal.
SLACK_CASES = [
    ({"type": "event_callback", "event": {"type": "app_mention", "channel": "C1",
      "ts": "1700000000.000200", "thread_ts": "1700000000.000100"}}, "C1", "1700000000.000100"),
    ({"type": "event_callback", "event": {"type": "message", "channel": "C1",
      "ts": "1700000000.000300"}}, "C1", "1700000000.000300"),
    ({"type": "event_callback", "event": {"type": "reaction_added",
      "item": {"type": "message", "channel": "C2", "ts": "1.2"}}}, "C2", "1.2"),
    ({"type": "block_actions", "channel": {"id": "C3"},
      "message": {"ts": "5.6", "thread_ts": "5.0"}}, "C3", "5.0"),
    ({"command": "/triage", "channel_id": "C4", "text": "x"}, "C4", None),
]  # fmt: skip


@pytest.mark.parametrize(("payload", "channel", "ts"), SLACK_CASES)
def test_slack(payload: dict[str, Any], channel: str, ts: str | None) -> None:
    subject = subject_from_payload("slack", payload)
    assert (subject.slack_channel, subject.slack_thread_ts) == (channel, ts)


def test_sources_without_reads_give_an_empty_subject(shared_dir: Path) -> None:
    payload = load(shared_dir, "discord/application_command.type2.json")
    assert subject_from_payload("discord", payload) == ContextSubject(source="discord")
    assert subject_from_payload("generic:ci", {"x": 1}) == ContextSubject(source="generic:ci")
