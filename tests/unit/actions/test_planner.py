"""PlatformPlanner: the exact requests each action makes on each platform, and the reason
given for each combination it cannot plan."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from taskyard.actions.apply import Planner, apply_actions
from taskyard.actions.keys import marker, markers_in
from taskyard.actions.models import REGISTRY, ParsedAction, Target, parse_action, parse_actions
from taskyard.actions.planner import NOT_CONFIGURED, IdLookup, PlatformPlanner
from taskyard.actions.policy import AllowListPolicy
from taskyard.actions.target import target_from_event
from taskyard.exceptions import ActionError
from taskyard.platforms.linear_write import linear_uuid
from taskyard.platforms.writes import PlannedRequest
from taskyard.records import ActionStatus
from taskyard.store import MemoryStore
from tests.unit.routing.events import event_for, load

ISSUE = Target("github", repo="acme/api", number=7, pull_request=False)
PULL = Target("github", repo="acme/api", number=9, pull_request=True, head_sha="abc123")
REPO_ONLY = Target("github", repo="acme/api", head_sha="def456")
LINEAR = Target("linear", issue_id="iss-1", team_id="team-1")
SLACK = Target(
    "slack",
    channel="C1",
    thread_ts="1700000000.000100",
    message_ts="1700000000.000900",
    team_id="team-1",
)
SENTRY = Target("sentry", team_id="team-1")
BUG_ID = "5f1c2a7e-0d0e-4a8b-9c39-7d1f6e2b3a41"
DONE_ID = "0b7a3c55-1e2f-4d6a-8b9c-0a1b2c3d4e5f"


def act(kind: str, **params: Any) -> ParsedAction:
    parsed = parse_action("t1", 0, {"type": kind, "params": params})
    assert isinstance(parsed, ParsedAction), parsed
    return parsed


def plan(
    kind: str, target: Target, *, using: Planner | None = None, **params: Any
) -> list[PlannedRequest]:
    """Planned as the apply step does: with the hidden marker where the target hides it."""
    action = act(kind, **params).for_sending(target)
    return (using or PlatformPlanner()).plan(action, target)


def refused(kind: str, target: Target, *, using: Planner | None = None, **params: Any) -> str:
    with pytest.raises(ActionError) as caught:
        plan(kind, target, using=using, **params)
    return str(caught.value)


def only(requests: list[PlannedRequest]) -> PlannedRequest:
    assert len(requests) == 1, requests
    return requests[0]


def rest(request: PlannedRequest) -> tuple[str, str, str, Mapping[str, Any]]:
    return (request.platform, request.method, request.path, request.body)


def graphql(request: PlannedRequest) -> tuple[str, Mapping[str, Any]]:
    """(the mutation's field, its variables) of a planned Linear request."""
    assert (request.platform, request.method, request.path) == ("linear", "POST", "graphql")
    query = str(request.body["query"])
    field = next(f for f in ("issueUpdate", "issueCreate", "commentCreate") if f in query)
    return field, request.body["variables"]


def lookup(
    table: Mapping[str, str], calls: list[tuple[str, tuple[str, ...]]] | None = None
) -> IdLookup:
    """A Linear lookup that knows `table` (name -> id) and records its calls."""

    def find(team_id: str, names: Sequence[str]) -> Mapping[str, str]:
        if calls is not None:
            calls.append((team_id, tuple(names)))
        return {n: table[n] for n in names if n in table}

    return find


def key_of(kind: str, **params: Any) -> str:
    return act(kind, **params).key


# --- GitHub -------------------------------------------------------------------------------


def test_github_add_labels_by_name() -> None:
    assert rest(only(plan("add_labels", ISSUE, labels=["bug", "P1"]))) == (
        "github",
        "POST",
        "/repos/acme/api/issues/7/labels",
        {"labels": ["bug", "P1"]},
    )


def test_github_add_label_alias_with_one_label() -> None:
    assert only(plan("add_label", ISSUE, label="bug")).body == {"labels": ["bug"]}


def test_github_remove_labels_is_one_delete_per_label() -> None:
    requests = plan("remove_labels", PULL, labels=["needs triage", "wip"])
    assert [rest(r) for r in requests] == [
        ("github", "DELETE", "/repos/acme/api/issues/9/labels/needs%20triage", {}),
        ("github", "DELETE", "/repos/acme/api/issues/9/labels/wip", {}),
    ]


def test_github_assign_logins_without_at_signs() -> None:
    assert rest(only(plan("assign", ISSUE, assignees=["@octocat", "hubot"]))) == (
        "github",
        "POST",
        "/repos/acme/api/issues/7/assignees",
        {"assignees": ["octocat", "hubot"]},
    )


def test_github_comment_carries_the_hidden_marker() -> None:
    key = key_of("comment", body="Looks like a null check is missing.")
    assert rest(only(plan("comment", ISSUE, body="Looks like a null check is missing."))) == (
        "github",
        "POST",
        "/repos/acme/api/issues/7/comments",
        {"body": f"Looks like a null check is missing.\n\n{marker(key)}"},
    )


def test_github_mention_users_is_a_comment_naming_them_with_the_marker() -> None:
    key = key_of("mention_users", users=["alice", "@bob"], message="please look")
    request = only(plan("mention_users", ISSUE, users=["alice", "@bob"], message="please look"))
    assert rest(request) == (
        "github",
        "POST",
        "/repos/acme/api/issues/7/comments",
        {"body": f"@alice @bob please look\n\n{marker(key)}"},
    )


def test_github_create_issue_in_the_repository() -> None:
    params: dict[str, Any] = {"title": "Flaky test", "body": "It fails 1 in 10.", "labels": ["ci"]}
    key = key_of("create_issue", **params)
    assert rest(only(plan("create_issue", ISSUE, **params))) == (
        "github",
        "POST",
        "/repos/acme/api/issues",
        {"title": "Flaky test", "body": f"It fails 1 in 10.\n\n{marker(key)}", "labels": ["ci"]},
    )


def test_github_review_on_the_head_commit_with_line_comments_and_marker() -> None:
    params: dict[str, Any] = {
        "summary": "Two problems.",
        "verdict": "request_changes",
        "comments": [{"path": "app.py", "line": 12, "body": "off by one"}],
    }
    key = key_of("review", **params)
    assert rest(only(plan("review", PULL, **params))) == (
        "github",
        "POST",
        "/repos/acme/api/pulls/9/reviews",
        {
            "commit_id": "abc123",
            "body": f"Two problems.\n\n{marker(key)}",
            "event": "REQUEST_CHANGES",
            "comments": [{"path": "app.py", "line": 12, "side": "RIGHT", "body": "off by one"}],
        },
    )


def test_github_review_without_a_known_head_reviews_the_latest_commit() -> None:
    target = Target("github", repo="acme/api", number=9, pull_request=True)
    request = only(plan("review", target, summary="LGTM", verdict="approve"))
    assert request.path == "/repos/acme/api/pulls/9/reviews"
    assert "commit_id" not in request.body
    assert request.body["event"] == "APPROVE"


def test_github_set_check_on_the_head_commit() -> None:
    params: dict[str, Any] = {
        "name": "taskyard",
        "conclusion": "failure",
        "title": "2 bugs",
        "summary": "see",
    }
    assert rest(only(plan("set_check", REPO_ONLY, **params))) == (
        "github",
        "POST",
        "/repos/acme/api/check-runs",
        {
            "name": "taskyard",
            "head_sha": "def456",
            "status": "completed",
            "conclusion": "failure",
            "output": {"title": "2 bugs", "summary": "see"},
        },
    )


def test_github_close_issue_with_its_reason() -> None:
    assert rest(only(plan("close_issue", ISSUE, reason="not_planned"))) == (
        "github",
        "PATCH",
        "/repos/acme/api/issues/7",
        {"state": "closed", "state_reason": "not_planned"},
    )


def test_github_create_pr_is_a_draft_unless_told() -> None:
    params: dict[str, Any] = {
        "title": "Fix login",
        "head": "fix/login",
        "base": "main",
        "body": "Fixes #7",
    }
    key = key_of("create_pr", **params)
    assert rest(only(plan("create_pr", ISSUE, **params))) == (
        "github",
        "POST",
        "/repos/acme/api/pulls",
        {
            "title": "Fix login",
            "head": "fix/login",
            "base": "main",
            "body": f"Fixes #7\n\n{marker(key)}",
            "draft": True,
        },
    )
    ready = only(plan("create_pr", ISSUE, **params, draft=False))
    assert ready.body["draft"] is False


def test_github_merge_pr() -> None:
    assert rest(only(plan("merge_pr", PULL, method="rebase"))) == (
        "github",
        "PUT",
        "/repos/acme/api/pulls/9/merge",
        {"merge_method": "rebase"},
    )


@pytest.mark.parametrize(
    ("kind", "params", "target", "reason"),
    [
        ("set_priority", {"priority": "P1"}, ISSUE, "no priorities on GitHub issues; use"),
        ("set_state", {"state": "Done"}, ISSUE, "GitHub issues have no workflow states"),
        ("review", {"summary": "x"}, ISSUE, "review needs a pull request, and acme/api#7 is"),
        ("merge_pr", {}, ISSUE, "merge_pr needs a pull request, and acme/api#7 is an issue"),
        ("comment", {"body": "x"}, REPO_ONLY, "comment needs a GitHub issue or pull request"),
        ("add_labels", {"labels": ["x"]}, REPO_ONLY, "add_labels needs a GitHub issue or"),
        (
            "set_check",
            {"name": "n", "conclusion": "success", "title": "t"},
            ISSUE,
            "set_check needs a commit, and the task's event names no head commit",
        ),
        ("post_channel", {"text": "hi"}, ISSUE, "post_channel needs a Slack channel: name one"),
    ],
)
def test_github_refusals_say_why(
    kind: str, params: dict[str, Any], target: Target, reason: str
) -> None:
    assert reason in refused(kind, target, **params)


# --- Linear -------------------------------------------------------------------------------


def test_linear_add_labels_with_ids_needs_no_lookup() -> None:
    assert graphql(only(plan("add_labels", LINEAR, labels=[BUG_ID]))) == (
        "issueUpdate",
        {"id": "iss-1", "input": {"addedLabelIds": [BUG_ID]}},
    )


def test_linear_add_labels_by_name_through_the_lookup() -> None:
    calls: list[tuple[str, tuple[str, ...]]] = []
    planner = PlatformPlanner(label_ids=lookup({"bug": "id-bug", "P1": "id-p1"}, calls))
    request = only(plan("add_labels", LINEAR, using=planner, labels=["bug", BUG_ID, "P1"]))
    assert graphql(request) == (
        "issueUpdate",
        {"id": "iss-1", "input": {"addedLabelIds": ["id-bug", BUG_ID, "id-p1"]}},
    )
    assert calls == [("team-1", ("bug", "P1"))]


def test_linear_label_names_without_a_lookup_are_refused() -> None:
    reason = refused("add_labels", LINEAR, labels=["bug"])
    assert reason == (
        "Linear label names need TASKYARD_LINEAR_API_KEY to be resolved to ids ('bug'); "
        "set it, or give the label ids instead"
    )


def test_a_dry_run_without_a_lookup_plans_the_names_unresolved() -> None:
    planner = PlatformPlanner(unresolved=True)
    request = only(plan("add_labels", LINEAR, using=planner, labels=["Bug", BUG_ID]))
    assert graphql(request) == (
        "issueUpdate",
        {"id": "iss-1", "input": {"addedLabelIds": ["<label:Bug>", BUG_ID]}},
    )
    no_team = Target("linear", issue_id="iss-1")
    state = only(plan("set_state", no_team, using=planner, state="Done"))
    assert graphql(state)[1]["input"] == {"stateId": "<state:Done>"}


def test_a_dry_run_with_a_lookup_still_refuses_an_unknown_name() -> None:
    planner = PlatformPlanner(label_ids=lookup({"bug": "id-bug"}), unresolved=True)
    reason = refused("add_labels", LINEAR, using=planner, labels=["bug", "nope"])
    assert reason == "Linear team team-1 has no label 'nope'"


def test_linear_remove_labels_by_name_or_id() -> None:
    planner = PlatformPlanner(label_ids=lookup({"needs triage": "id-triage"}))
    request = only(plan("remove_labels", LINEAR, using=planner, labels=["needs triage", BUG_ID]))
    assert graphql(request) == (
        "issueUpdate",
        {"id": "iss-1", "input": {"removedLabelIds": ["id-triage", BUG_ID]}},
    )
    assert "TASKYARD_LINEAR_API_KEY" in refused("remove_label", LINEAR, label="wip")


def test_linear_unknown_label_name_is_refused_naming_it() -> None:
    planner = PlatformPlanner(label_ids=lookup({"bug": "id-bug"}))
    reason = refused("add_labels", LINEAR, using=planner, labels=["bug", "nope"])
    assert reason == "Linear team team-1 has no label 'nope'"


def test_linear_label_names_without_a_team_are_refused() -> None:
    planner = PlatformPlanner(label_ids=lookup({"bug": "id-bug"}))
    target = Target("linear", issue_id="iss-1")
    reason = refused("add_labels", target, using=planner, labels=["bug"])
    assert reason == "cannot look up Linear labels 'bug': the task's event names no team"


@pytest.mark.parametrize(("priority", "linear"), [("P0", 1), ("P1", 2), ("P2", 3), ("P3", 4)])
def test_linear_set_priority(priority: str, linear: int) -> None:
    assert graphql(only(plan("set_priority", LINEAR, priority=priority))) == (
        "issueUpdate",
        {"id": "iss-1", "input": {"priority": linear}},
    )


def test_linear_set_state_by_name_or_id() -> None:
    planner = PlatformPlanner(state_ids=lookup({"Done": DONE_ID}))
    by_name = only(plan("set_state", LINEAR, using=planner, state="Done"))
    by_id = only(plan("set_state", LINEAR, state=DONE_ID))
    expected = ("issueUpdate", {"id": "iss-1", "input": {"stateId": DONE_ID}})
    assert graphql(by_name) == graphql(by_id) == expected


def test_linear_assign_one_user_through_the_lookup() -> None:
    planner = PlatformPlanner(user_ids=lookup({"alice": "user-alice"}))
    assert graphql(only(plan("assign", LINEAR, using=planner, assignee="alice"))) == (
        "issueUpdate",
        {"id": "iss-1", "input": {"assigneeId": "user-alice"}},
    )
    reason = refused("assign", LINEAR, using=planner, assignees=["alice", "bob"])
    assert reason == "a Linear issue has one assignee; name one, not 2"


def test_linear_comment_has_no_marker_but_an_id_of_its_key() -> None:
    key = key_of("comment", body="Triaged.")
    assert graphql(only(plan("comment", LINEAR, body="Triaged."))) == (
        "commentCreate",
        {"input": {"id": linear_uuid(key), "issueId": "iss-1", "body": "Triaged."}},
    )


def test_linear_mention_users_is_a_comment_with_an_id_of_its_key() -> None:
    params: dict[str, Any] = {"users": ["alice"], "message": "can you check?"}
    request = only(plan("mention_users", LINEAR, **params))
    assert graphql(request) == (
        "commentCreate",
        {
            "input": {
                "id": linear_uuid(key_of("mention_users", **params)),
                "issueId": "iss-1",
                "body": "@alice can you check?",
            }
        },
    )


def test_linear_ids_differ_between_actions_and_stay_for_one() -> None:
    first = only(plan("comment", LINEAR, body="one")).body["variables"]["input"]["id"]
    again = only(plan("comment", LINEAR, body="one")).body["variables"]["input"]["id"]
    other = only(plan("comment", LINEAR, body="two")).body["variables"]["input"]["id"]
    assert first == again != other


def test_linear_create_issue_in_the_targets_team() -> None:
    planner = PlatformPlanner(label_ids=lookup({"bug": "id-bug"}))
    request = only(
        plan("create_issue", LINEAR, using=planner, title="Crash", body="trace", labels=["bug"])
    )
    key = key_of("create_issue", title="Crash", body="trace", labels=["bug"])
    assert graphql(request) == (
        "issueCreate",
        {
            "input": {
                "id": linear_uuid(key),
                "teamId": "team-1",
                "title": "Crash",
                "description": "trace",
                "labelIds": ["id-bug"],
            }
        },
    )


def test_linear_create_issue_with_a_priority() -> None:
    request = only(plan("create_issue", LINEAR, title="Crash", priority="P1"))
    key = key_of("create_issue", title="Crash", priority=1)
    assert graphql(request)[1]["input"] == {
        "id": linear_uuid(key),
        "teamId": "team-1",
        "title": "Crash",
        "priority": 2,  # Linear: 1 urgent, 2 high
    }


def test_github_create_issue_refuses_a_priority() -> None:
    reason = refused("create_issue", ISSUE, title="Crash", priority="P0")
    assert (
        reason
        == "create_issue: GitHub issues have no priority; leave it out, or add a priority label"
    )


@pytest.mark.parametrize(
    ("kind", "params", "reason"),
    [
        ("close_issue", {}, "a Linear issue is closed by moving it to a done state; use set_state"),
        ("react", {"emoji": "eyes"}, "a comment is not a reaction); Linear: use comment"),
        ("review", {"summary": "x"}, "review cannot be applied to a linear target; it works on "
         "github targets"),
        ("merge_pr", {}, "merge_pr cannot be applied to a linear target"),
        ("set_check", {"name": "n", "conclusion": "success", "title": "t"}, "set_check cannot"),
        ("create_pr", {"title": "t", "head": "h", "base": "b"}, "create_pr cannot be applied"),
    ],
)  # fmt: skip
def test_linear_refusals_say_why(kind: str, params: dict[str, Any], reason: str) -> None:
    assert reason in refused(kind, LINEAR, **params)


def test_linear_comment_without_an_issue_is_refused() -> None:
    reason = refused("comment", Target("linear", team_id="team-1"), body="x")
    assert reason == "comment needs a Linear issue, and the task's event names none"


# --- Slack --------------------------------------------------------------------------------


def test_slack_comment_is_a_reply_in_the_thread() -> None:
    assert rest(only(plan("comment", SLACK, body="On it."))) == (
        "slack",
        "POST",
        "chat.postMessage",
        {"channel": "C1", "text": "On it.", "thread_ts": "1700000000.000100"},
    )


def test_slack_mention_users_mentions_ids_the_slack_way() -> None:
    request = only(plan("mention_users", SLACK, users=["U024BE7LH", "alice"], message="look"))
    assert request.body == {
        "channel": "C1",
        "text": "<@U024BE7LH> @alice look",
        "thread_ts": "1700000000.000100",
    }


def test_slack_post_channel_is_a_top_level_message() -> None:
    assert rest(only(plan("post_channel", SLACK, text="Deploy done."))) == (
        "slack",
        "POST",
        "chat.postMessage",
        {"channel": "C1", "text": "Deploy done."},
    )
    other = only(plan("post_channel", SLACK, text="FYI", channel="C9"))
    assert other.body == {"channel": "C9", "text": "FYI"}


def test_slack_create_issue_goes_to_the_default_linear_team() -> None:
    request = only(plan("create_issue", SLACK, title="Checkout 500", body="from #bugs"))
    key = key_of("create_issue", title="Checkout 500", body="from #bugs")
    assert graphql(request) == (
        "issueCreate",
        {
            "input": {
                "id": linear_uuid(key),
                "teamId": "team-1",
                "title": "Checkout 500",
                "description": "from #bugs",
            }
        },
    )


@pytest.mark.parametrize(
    ("kind", "params"),
    [
        ("add_labels", {"labels": ["x"]}),
        ("set_priority", {"priority": "P1"}),
        ("close_issue", {}),
        ("review", {"summary": "x"}),
    ],
)
def test_slack_refusals_name_where_the_action_works(kind: str, params: dict[str, Any]) -> None:
    assert f"{kind} cannot be applied to a slack target; it works on " in refused(
        kind, SLACK, **params
    )


# --- react --------------------------------------------------------------------------------


@pytest.mark.parametrize("target", [ISSUE, PULL])
def test_github_react_is_a_reaction_on_the_issue_or_pull_request(target: Target) -> None:
    assert rest(only(plan("react", target, emoji="rocket"))) == (
        "github",
        "POST",
        f"/repos/acme/api/issues/{target.number}/reactions",
        {"content": "rocket"},
    )


@pytest.mark.parametrize(
    ("emoji", "content"),
    [("eyes", "eyes"), ("+1", "+1"), (":thumbsup:", "+1"), ("tada", "hooray"), ("-1", "-1")],
)
def test_github_react_takes_github_names_and_slacks_names_of_them(emoji: str, content: str) -> None:
    assert only(plan("react", ISSUE, emoji=emoji)).body == {"content": content}


def test_github_react_without_emoji_says_eyes() -> None:
    assert only(plan("react", ISSUE)).body == {"content": "eyes"}


def test_github_react_refuses_what_github_does_not_have() -> None:
    assert refused("react", ISSUE, emoji="fire") == (
        "react: GitHub has no 'fire' reaction; use one of "
        "+1, -1, laugh, confused, heart, hooray, rocket, eyes"
    )
    assert "react needs a GitHub issue or pull request" in refused("react", REPO_ONLY)


@pytest.mark.parametrize(
    ("emoji", "name"),
    [("eyes", "eyes"), (":white_check_mark:", "white_check_mark"), ("hooray", "tada")],
)
def test_slack_react_is_reactions_add_on_the_message(emoji: str, name: str) -> None:
    assert rest(only(plan("react", SLACK, emoji=emoji))) == (
        "slack",
        "POST",
        "reactions.add",
        {"channel": "C1", "timestamp": "1700000000.000900", "name": name},
    )


def test_slack_react_without_a_message_is_refused() -> None:
    target = Target("slack", channel="C1")
    assert refused("react", target) == (
        "react needs a Slack message, and the task's event names none"
    )


@pytest.mark.parametrize("emoji", ["two words", "", "<script>"])
def test_react_with_no_emoji_name_is_invalid(emoji: str) -> None:
    parsed = parse_action("t1", 0, {"type": "react", "params": {"emoji": emoji}})
    assert not isinstance(parsed, ParsedAction)
    assert "emoji" in parsed.error


def test_react_is_idempotent() -> None:
    assert REGISTRY["react"].idempotent


# --- Sentry (no writable target of its own) and run_command --------------------------------


def test_sentry_create_issue_goes_to_linear_and_the_rest_is_refused() -> None:
    request = only(plan("create_issue", SENTRY, title="TypeError in checkout"))
    key = key_of("create_issue", title="TypeError in checkout")
    assert graphql(request) == (
        "issueCreate",
        {"input": {"id": linear_uuid(key), "teamId": "team-1", "title": "TypeError in checkout"}},
    )
    reason = refused("comment", SENTRY, body="x")
    assert (
        reason
        == "comment cannot be applied to a sentry target; it works on github, linear, slack targets"
    )


def test_sentry_create_issue_without_a_default_team_is_refused() -> None:
    reason = refused("create_issue", Target("sentry"), title="x")
    assert reason == (
        "create_issue needs a Linear team: the task's event names none and no default "
        "Linear team is configured"
    )


def test_sentry_post_channel_needs_a_named_channel() -> None:
    assert "name one in params.channel" in refused("post_channel", SENTRY, text="x")
    assert only(plan("post_channel", SENTRY, text="x", channel="C7")).body == {
        "channel": "C7",
        "text": "x",
    }


@pytest.mark.parametrize("target", [ISSUE, LINEAR, SLACK, SENTRY])
def test_run_command_is_not_configured(target: Target) -> None:
    assert refused("run_command", target, argv=["make", "test"]) == NOT_CONFIGURED


# --- every combination --------------------------------------------------------------------

SAMPLE_PARAMS: Mapping[str, dict[str, Any]] = {
    "add_labels": {"labels": ["bug"]},
    "remove_labels": {"labels": ["bug"]},
    "set_priority": {"priority": "P1"},
    "set_state": {"state": "Done"},
    "assign": {"assignees": ["alice"]},
    "comment": {"body": "hi"},
    "create_issue": {"title": "t"},
    "review": {"summary": "s"},
    "set_check": {"name": "n", "conclusion": "success", "title": "t"},
    "close_issue": {},
    "create_pr": {"title": "t", "head": "h", "base": "main"},
    "merge_pr": {},
    "mention_users": {"users": ["alice"], "message": "m"},
    "post_channel": {"text": "t"},
    "react": {"emoji": "eyes"},
    "run_command": {"argv": ["true"]},
}


def test_sample_params_cover_the_registry() -> None:
    assert set(SAMPLE_PARAMS) == set(REGISTRY)


@pytest.mark.parametrize("kind", sorted(SAMPLE_PARAMS))
@pytest.mark.parametrize(
    "target", [ISSUE, PULL, REPO_ONLY, LINEAR, SLACK, SENTRY, Target("discord")]
)
def test_every_combination_plans_requests_or_says_why(kind: str, target: Target) -> None:
    try:
        requests = plan(kind, target, **SAMPLE_PARAMS[kind])
    except ActionError as exc:
        assert len(str(exc)) > 20
        assert kind in str(exc) or "GitHub" in str(exc) or "Linear" in str(exc)
    else:
        assert requests
        assert all(r.platform in {"github", "linear", "slack"} for r in requests)


# --- with the apply step ------------------------------------------------------------------


async def test_dry_run_of_a_real_pull_request_records_what_would_be_sent(
    shared_dir: Path,
) -> None:
    payload = load(shared_dir / "webhooks", "github/pull_request.opened.json")
    target = target_from_event(event_for("github", payload, "pull_request"), payload)
    raw = [
        {"type": "review", "params": {"summary": "One bug.", "verdict": "request_changes"}},
        {"type": "set_priority", "params": {"priority": "P1"}},
    ]
    records = await apply_actions(
        "t1",
        "pr-review",
        parse_actions("t1", raw),
        target,
        planner=PlatformPlanner(),
        writers={},
        policy=AllowListPolicy({"pr-review": ["review", "set_priority"]}),
        store=MemoryStore(),
        dry_run=True,
    )
    review, priority = records
    assert review.status is ActionStatus.DRY_RUN
    [request] = review.requests
    assert request["path"] == "/repos/Codertocat/Hello-World/pulls/2/reviews"
    assert request["body"]["commit_id"] == "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
    assert markers_in(request["body"]["body"]) == [review.key]
    assert priority.status is ActionStatus.FAILED
    assert priority.reason == (
        "cannot plan: no priorities on GitHub issues; use add_labels with a priority label instead"
    )
