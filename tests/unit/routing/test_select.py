"""select_routes on real deliveries: which routes start, which are skipped and why."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from taskyard.routing import RoutingSettings, default_routes, select_routes
from tests.unit.routing.events import event_for, load, route, slack_message

DEFAULTS = default_routes()
BUGS = RoutingSettings(slack_bugs_channel="C0BUGS", bot_user="taskyard-bot")
HEAD = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"


@pytest.fixture(scope="module")
def webhooks(shared_dir: Path) -> Path:
    return shared_dir / "webhooks"


def github(webhooks: Path, name: str) -> dict[str, Any]:
    return load(webhooks, f"github/{name}.json")


def test_pull_request_opened_starts_pr_review_with_its_subject(webhooks: Path) -> None:
    payload = github(webhooks, "pull_request.opened")
    event = event_for("github", payload, "pull_request")
    decision = select_routes(event, payload, DEFAULTS, BUGS)
    assert [m.name for m in decision.matched] == ["pr-review"]
    assert decision.ignored_reason is None and decision.skipped == ()
    match = decision.matched[0]
    assert (match.repo, match.number, match.is_pull_request) == ("Codertocat/Hello-World", 2, True)
    assert (match.head_sha, match.head_ref, match.subject.base_ref) == (HEAD, "changes", "master")
    assert (match.login, match.author_association) == ("Codertocat", "OWNER")
    assert match.subject.ref == "Codertocat/Hello-World#2"
    assert match.route.repo and match.route.agent == "codex"
    assert match.route.context == ("github.pr", "github.diff", "github.files")
    assert match.triggered_by == "event type" and match.event_id == event.id


def test_push_to_a_draft_pull_request_is_skipped_as_draft(webhooks: Path) -> None:
    payload = github(webhooks, "pull_request.converted_to_draft")
    payload["action"] = "synchronize"
    event = event_for("github", payload, "pull_request")
    decision = select_routes(event, payload, DEFAULTS, BUGS)
    assert decision.matched == ()
    assert [(s.route, s.reason) for s in decision.skipped] == [("pr-review", "draft pull request")]
    assert decision.ignored_reason == "pr-review: draft pull request"
    drafts = route(name="drafts-too", on="github:pull_request.synchronize", drafts=True)
    assert [m.name for m in select_routes(event, payload, [drafts], BUGS).matched] == ["drafts-too"]


def test_ready_for_review_starts_pr_review(webhooks: Path) -> None:
    payload = github(webhooks, "pull_request.ready_for_review")
    decision = select_routes(event_for("github", payload, "pull_request"), payload, DEFAULTS, BUGS)
    assert [m.name for m in decision.matched] == ["pr-review"]


def test_event_no_route_listens_to_is_ignored_with_its_type(webhooks: Path) -> None:
    payload = github(webhooks, "issues.opened")
    decision = select_routes(event_for("github", payload, "issues"), payload, DEFAULTS, BUGS)
    assert decision.matched == () and decision.skipped == ()
    assert decision.ignored_reason == "no route matches github:issues.opened"


def test_review_command_in_an_issue_comment(webhooks: Path) -> None:
    review = route(name="review-command", on="github:issue_comment.created", command="/review")
    payload = github(webhooks, "issue_comment.created")
    event = event_for("github", payload, "issue_comment")
    plain = select_routes(event, payload, [review], BUGS)
    assert plain.ignored_reason == "review-command: no /review command in the text"

    payload["comment"]["body"] = "Thanks!\n/review focus on the error handling\n"
    decision = select_routes(event_for("github", payload, "issue_comment"), payload, [review], BUGS)
    [match] = decision.matched
    assert match.triggered_by == "command /review"
    assert match.command_args == "focus on the error handling"
    assert (match.repo, match.number, match.author_association) == (
        "Codertocat/Hello-World",
        1,
        "OWNER",
    )


def test_command_must_start_a_line_but_a_phrase_may_be_anywhere(webhooks: Path) -> None:
    payload = github(webhooks, "issue_comment.created")
    payload["comment"]["body"] = "could someone run /review here? @TaskYard please"
    event = event_for("github", payload, "issue_comment")
    command = route(name="cmd", on="github:issue_comment.*", command="/review")
    phrase = route(name="phrase", on="github:issue_comment.*", phrase="@taskyard please")
    decision = select_routes(event, payload, [command, phrase], BUGS)
    assert [m.name for m in decision.matched] == ["phrase"]
    assert decision.matched[0].triggered_by == "phrase '@taskyard please'"
    assert [s.route for s in decision.skipped] == ["cmd"]


def test_label_added_trigger(webhooks: Path) -> None:
    labeled = route(name="agent-label", on="github:issues.labeled", label="agent")
    payload = github(webhooks, "issues.labeled")
    bug = select_routes(event_for("github", payload, "issues"), payload, [labeled], BUGS)
    assert bug.ignored_reason == "agent-label: label bug added, not agent"

    payload["label"]["name"] = "Agent"
    decision = select_routes(event_for("github", payload, "issues"), payload, [labeled], BUGS)
    assert [m.triggered_by for m in decision.matched] == ["label Agent added"]


def test_assignment_to_the_bot_user(webhooks: Path) -> None:
    assigned = route(name="assigned", on="github:issues.assigned", assigned_to_bot=True)
    payload = github(webhooks, "issues.opened")
    payload["action"] = "assigned"
    payload["assignee"] = {"login": "taskyard-bot", "id": 99, "type": "User"}
    event = event_for("github", payload, "issues")
    assert [m.name for m in select_routes(event, payload, [assigned], BUGS).matched] == ["assigned"]
    unset = select_routes(event, payload, [assigned], RoutingSettings())
    assert unset.ignored_reason == "assigned: routing.bot_user is not configured"
    payload["assignee"]["login"] = "octocat"
    other = select_routes(event_for("github", payload, "issues"), payload, [assigned], BUGS)
    assert other.ignored_reason == "assigned: not assigned to taskyard-bot"


def test_one_event_starts_two_routes(webhooks: Path) -> None:
    payload = github(webhooks, "pull_request.opened")
    titled = route(
        name="pr-title",
        on="github:pull_request.*",
        when=[{"path": "pull_request.title", "regex": "(?i)^update"}],
    )
    unrelated = route(name="pushes", on="github:push")
    event = event_for("github", payload, "pull_request")
    decision = select_routes(event, payload, [*DEFAULTS, titled, unrelated], BUGS)
    assert [m.name for m in decision.matched] == ["pr-review", "pr-title"]
    assert decision.skipped == ()


def test_filters_on_paths_and_jmespath(webhooks: Path) -> None:
    guarded = route(
        name="guarded",
        on="github:pull_request.opened",
        when=[
            {"path": "pull_request.base.ref", "equals": "master"},
            {"path": "repository.full_name", "in": ["Codertocat/Hello-World", "acme/api"]},
            {"jmespath": "length(pull_request.labels[?name=='skip-agent'])", "equals": 0},
        ],
    )
    payload = github(webhooks, "pull_request.opened")
    decision = select_routes(event_for("github", payload, "pull_request"), payload, [guarded], BUGS)
    assert [m.name for m in decision.matched] == ["guarded"]

    payload["pull_request"]["labels"].append({"name": "skip-agent"})
    skipped = select_routes(event_for("github", payload, "pull_request"), payload, [guarded], BUGS)
    assert skipped.ignored_reason == (
        "guarded: filter jmespath(length(pull_request.labels[?name=='skip-agent'])) "
        "equals 0 failed (value: 1)"
    )
    payload["pull_request"]["base"]["ref"] = "main"
    on_main = select_routes(event_for("github", payload, "pull_request"), payload, [guarded], BUGS)
    assert on_main.skipped[0].reason == (
        "filter pull_request.base.ref equals 'master' failed (value: 'main')"
    )


def test_linear_issue_create_and_update_start_linear_triage(webhooks: Path) -> None:
    for name, kind in (("issue.create", "create"), ("issue.update.state_change", "update")):
        payload = load(webhooks, f"linear/{name}.json")
        event = event_for("linear", payload)
        decision = select_routes(event, payload, DEFAULTS, BUGS)
        [match] = decision.matched
        assert (match.name, event.type) == ("linear-triage", f"linear:Issue.{kind}")
        assert match.subject.ref == "KOR-11" and match.number == 11
        assert match.subject.url == "https://linear.app/korosuke613/issue/KOR-11/webhook-test"
        assert match.route.context == ("linear.issue", "linear.related", "linear.team")
        assert not match.route.repo and match.route.agent == "claude"


def test_linear_comment_is_ignored_by_default(webhooks: Path) -> None:
    payload = load(webhooks, "linear/comment.create.sdk-test.json")
    decision = select_routes(event_for("linear", payload), payload, DEFAULTS, BUGS)
    assert decision.ignored_reason == "no route matches linear:Comment.create"


def test_linear_label_added_in_an_update(webhooks: Path) -> None:
    labeled = route(name="agent-label", on="linear:Issue.update", label="agent")
    payload = load(webhooks, "linear/issue.update.state_change.json")
    payload["data"]["labels"] = [{"id": "lab-1", "name": "Agent", "color": "#fff"}]
    payload["data"]["labelIds"] = ["lab-1"]
    unchanged = select_routes(event_for("linear", payload), payload, [labeled], BUGS)
    assert unchanged.ignored_reason == "agent-label: no label added (wants agent)"
    payload["updatedFrom"]["labelIds"] = []
    added = select_routes(event_for("linear", payload), payload, [labeled], BUGS)
    assert [m.triggered_by for m in added.matched] == ["label Agent added"]


def test_slack_message_in_the_bugs_channel_starts_the_analysis() -> None:
    payload = slack_message("C0BUGS")
    decision = select_routes(event_for("slack", payload), payload, DEFAULTS, BUGS)
    [match] = decision.matched
    assert match.name == "slack-bug-analysis" and match.triggered_by == "channel C0BUGS"
    assert (match.subject.channel, match.subject.thread) == ("C0BUGS", "1700000000.000100")
    assert match.login == "U024BE7LH" and match.route.context == ("slack.thread",)


def test_slack_message_elsewhere_or_without_a_bugs_channel_is_ignored() -> None:
    payload = slack_message("C0RANDOM")
    other = select_routes(event_for("slack", payload), payload, DEFAULTS, BUGS)
    assert other.ignored_reason == "slack-bug-analysis: channel C0RANDOM is not C0BUGS"
    unset = select_routes(event_for("slack", payload), payload, DEFAULTS, RoutingSettings())
    assert unset.ignored_reason == (
        "slack-bug-analysis: routing.slack_bugs_channel is not configured"
    )


def test_slack_edits_and_thread_replies_are_no_new_reports() -> None:
    reply = slack_message(thread_ts="1699999999.000001")
    replied = select_routes(event_for("slack", reply), reply, DEFAULTS, BUGS)
    assert replied.ignored_reason == "slack-bug-analysis: a reply in a thread"
    edited = slack_message(subtype="message_changed")
    changed = select_routes(event_for("slack", edited), edited, DEFAULTS, BUGS)
    assert changed.ignored_reason == "slack-bug-analysis: not a new message"
    starts_thread = slack_message(thread_ts="1700000000.000100")
    started = select_routes(event_for("slack", starts_thread), starts_thread, DEFAULTS, BUGS)
    assert [m.name for m in started.matched] == ["slack-bug-analysis"]


def test_slack_bot_message_matches_but_is_flagged_as_a_bot() -> None:
    payload = slack_message(subtype="bot_message", bot_id="B123", username="deploy-bot")
    del payload["event"]["user"]
    [match] = select_routes(event_for("slack", payload), payload, DEFAULTS, BUGS).matched
    assert match.actor.bot  # who.may_trigger refuses it (see test_who)


def test_sentry_issue_created_starts_sentry_triage(webhooks: Path) -> None:
    for name in ("docs.issue.created", "example-app.issue.created"):
        payload = load(webhooks, f"sentry/{name}.json")
        decision = select_routes(event_for("sentry", payload, "issue"), payload, DEFAULTS, BUGS)
        assert [m.name for m in decision.matched] == ["sentry-triage"], name
        assert decision.matched[0].route.context == ("sentry.issue",)


def test_sentry_level_and_project_triggers(webhooks: Path) -> None:
    payload = load(webhooks, "sentry/docs.issue.created.json")
    event = event_for("sentry", payload, "issue")
    fatal = route(name="fatal", on="sentry:issue.*", level=["fatal"])
    errors = route(name="errors", on="sentry:issue.*", level=["error", "fatal"], project="api")
    frontend = route(name="frontend", on="sentry:issue.*", project=["front-end"])
    decision = select_routes(event, payload, [fatal, errors, frontend], BUGS)
    assert [m.name for m in decision.matched] == ["frontend"]
    assert [(s.route, s.reason) for s in decision.skipped] == [
        ("fatal", "level error is not one of fatal"),
        ("errors", "project front-end is not one of api"),
    ]


def test_sentry_issue_resolved_is_ignored(webhooks: Path) -> None:
    payload = load(webhooks, "sentry/example-app.issue.resolved.json")
    decision = select_routes(event_for("sentry", payload, "issue"), payload, DEFAULTS, BUGS)
    assert decision.ignored_reason == "no route matches sentry:issue.resolved"


def test_slack_slash_command_and_discord_command() -> None:
    slash = {
        "command": "/triage",
        "text": "checkout is down",
        "channel_id": "C0BUGS",
        "channel_name": "bugs",
        "user_id": "U2CERLKJA",
        "user_name": "roadrunner",
        "trigger_id": "398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c",
    }
    triage = route(name="triage", on="slack:slash_command.*", command="/triage", channel="#bugs")
    [match] = select_routes(event_for("slack", slash), slash, [triage], BUGS).matched
    assert (match.command_args, match.triggered_by) == (
        "checkout is down",
        "command /triage, channel C0BUGS",
    )
    interaction = {"id": "1", "type": 2, "channel_id": "42", "data": {"id": "7", "name": "fix"}}
    fix = route(name="fix", on="discord:application_command", command="/fix")
    decision = select_routes(event_for("discord", interaction), interaction, [fix], BUGS)
    assert [m.triggered_by for m in decision.matched] == ["command /fix"]


def test_linear_assignment_to_the_bot_counts_only_when_it_changed(webhooks: Path) -> None:
    mine = RoutingSettings(linear_bot_user="user@example.com")
    assigned = route(name="assigned", on="linear:Issue.update", assigned_to_bot=True)
    payload = load(webhooks, "linear/issue.update.state_change.json")
    state_only = select_routes(event_for("linear", payload), payload, [assigned], mine)
    assert state_only.ignored_reason == "assigned: not assigned to user@example.com"
    payload["updatedFrom"]["assigneeId"] = None
    decision = select_routes(event_for("linear", payload), payload, [assigned], mine)
    assert [m.triggered_by for m in decision.matched] == ["assigned to user@example.com"]
    github_only = select_routes(event_for("linear", payload), payload, [assigned], BUGS)
    assert github_only.ignored_reason == "assigned: routing.linear_bot_user is not configured"


def test_numbers_in_one_liners_read_as_text(webhooks: Path) -> None:
    payload = load(webhooks, "sentry/docs.issue.created.json")
    by_id = route(name="by-id", on="sentry:issue.created", project=[1])
    decision = select_routes(event_for("sentry", payload, "issue"), payload, [by_id], BUGS)
    assert [m.triggered_by for m in decision.matched] == ["project front-end"]
