"""What starts a pull-request fix, on real GitHub deliveries (@octokit/webhooks-examples): each
kind fires on the phrase; edits, issues, drafts, bots, quotes, code and taskyard's own marked
words never do; and a route with `fix:` starts through select_routes."""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from taskyard.actions.keys import action_key, with_marker
from taskyard.routing import RoutingSettings, select_routes
from taskyard.routing.fixes import FixRequest, FixSkip, fix_request, mentions
from tests.unit.routing.events import event_for, route

REPO = Path(__file__).resolve().parents[3]
OCTOKIT = REPO / ".cache/npm/node_modules/@octokit/webhooks-examples/api.github.com/index.json"
PHRASE = "@taskyard fix"
HEAD = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
FIX_TYPES = (
    "github:issue_comment.created",
    "github:pull_request_review_comment.created",
    "github:pull_request_review.submitted",
)


@cache
def _octokit() -> dict[str, list[dict[str, Any]]]:
    if not OCTOKIT.is_file():
        pytest.fail(f"{OCTOKIT} is missing: scripts/test installs it")
    return {group["name"]: group["examples"] for group in json.loads(OCTOKIT.read_text())}


def example(name: str, action: str, *, with_line: bool = False) -> dict[str, Any]:
    """A fresh copy of the first example of `name` with this action (and an inline line)."""
    for payload in _octokit()[name]:
        if payload["action"] == action and (not with_line or payload["comment"].get("line")):
            return copy.deepcopy(payload)
    raise AssertionError(f"no {name}.{action} example")


def pr_comment(body: str, action: str = "created") -> dict[str, Any]:
    """An issue_comment on a pull request: the example's issue, made a pull request."""
    payload = example("issue_comment", action)
    payload["issue"]["pull_request"] = {
        "url": "https://api.github.com/repos/Codertocat/Hello-World/pulls/1",
        "html_url": "https://github.com/Codertocat/Hello-World/pull/1",
    }
    payload["comment"]["body"] = body
    return payload


def inline_comment(body: str, action: str = "created") -> dict[str, Any]:
    payload = example("pull_request_review_comment", action, with_line=True)
    payload["comment"]["body"] = body
    return payload


def review(body: str | None, state: str = "changes_requested") -> dict[str, Any]:
    payload = example("pull_request_review", "submitted")
    payload["review"]["body"] = body
    payload["review"]["state"] = state
    return payload


def skipped(found: FixRequest | FixSkip) -> str:
    assert isinstance(found, FixSkip), found
    return found.reason


def fired(found: FixRequest | FixSkip) -> FixRequest:
    assert isinstance(found, FixRequest), found
    return found


# Each kind fires -----------------------------------------------------------------------------


def test_a_pull_request_comment_with_the_phrase_asks_for_a_fix() -> None:
    payload = pr_comment("Thanks! @TaskYard Fix the failing test please.")
    found = fired(fix_request("github:issue_comment.created", payload))
    assert (found.kind, found.repo, found.number) == ("issue_comment", "Codertocat/Hello-World", 1)
    assert found.comment_id == payload["comment"]["id"] and found.author == "Codertocat"
    assert found.url == payload["comment"]["html_url"]
    assert found.body == "Thanks! @TaskYard Fix the failing test please."
    assert (found.head_ref, found.head_sha, found.base_ref, found.inline) == (None,) * 4
    assert found.trigger == "phrase '@taskyard fix'"
    # This example's issue has no draft flag: the run must check the pull request first.
    assert "draft" not in payload["issue"] and found.draft_unknown
    payload["issue"]["draft"] = False
    assert not fired(fix_request("issue_comment", payload)).draft_unknown


def test_an_inline_review_comment_carries_its_file_line_and_hunk() -> None:
    payload = inline_comment("@taskyard fix: use a constant here")
    found = fired(fix_request("pull_request_review_comment.created", payload))
    assert (found.kind, found.number, found.head_sha, found.head_ref, found.base_ref) == (
        "pull_request_review_comment",
        2,
        HEAD,
        "changes",
        "master",
    )
    assert found.inline is not None
    assert (found.inline.path, found.inline.line, found.inline.side) == ("README.md", 265, "RIGHT")
    assert found.inline.diff_hunk == "@@ -1 +1 @@\n-# Hello-World"
    assert found.inline.commit_id == HEAD and found.inline.start_line is None
    assert found.url == "https://github.com/Codertocat/Hello-World/pull/2#discussion_r284312630"
    assert not found.draft_unknown


def test_an_outdated_inline_comment_gives_its_original_line() -> None:
    payload = inline_comment(PHRASE)
    payload["comment"]["line"] = None
    payload["comment"]["original_line"] = 12
    inline = fired(fix_request("github:pull_request_review_comment.created", payload)).inline
    assert inline is not None and inline.line == 12


def test_a_changes_requested_review_needs_the_phrase_unless_the_route_says_so() -> None:
    asked = fired(fix_request("pull_request_review.submitted", review("Please @taskyard fix")))
    assert asked.kind == "pull_request_review" and asked.comment_id == 237895671
    assert asked.head_sha == HEAD and asked.trigger == "phrase '@taskyard fix'"
    silent = review(None)
    assert skipped(fix_request("pull_request_review.submitted", silent)) == (
        "the review does not ask for '@taskyard fix'"
    )
    taken = fix_request("pull_request_review.submitted", silent, on_changes_requested=True)
    assert fired(taken).trigger == "changes requested" and fired(taken).body == ""


@pytest.mark.parametrize("state", ["commented", "approved", "dismissed"])
def test_other_reviews_never_fire(state: str) -> None:
    payload = review(PHRASE, state)
    reason = skipped(
        fix_request("pull_request_review.submitted", payload, on_changes_requested=True)
    )
    assert reason == f"the review is {state}, not changes requested"


def test_another_phrase() -> None:
    payload = pr_comment("/bot fix it")
    assert skipped(fix_request("issue_comment.created", payload)).startswith("the comment does")
    assert fired(fix_request("issue_comment.created", payload, "/bot fix")).trigger == (
        "phrase '/bot fix'"
    )


# Never ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("action", ["edited", "deleted"])
def test_edited_or_deleted_comments_do_not_fire(action: str) -> None:
    assert skipped(fix_request(f"issue_comment.{action}", pr_comment(PHRASE, action))) == (
        f"the comment was {action}, not created"
    )
    inline = inline_comment(PHRASE, action)
    assert skipped(fix_request(f"github:pull_request_review_comment.{action}", inline)) == (
        f"the comment was {action}, not created"
    )


def test_a_review_dismissed_or_a_reaction_is_no_request() -> None:
    dismissed = example("pull_request_review", "dismissed")
    assert skipped(fix_request("pull_request_review.dismissed", dismissed)) == (
        "the review was dismissed, not submitted"
    )
    # GitHub sends no event for a reaction; whatever carries one is not a comment event.
    reacted = pr_comment(PHRASE)
    assert skipped(fix_request("github:reaction.created", reacted)) == (
        "reaction is not a pull request comment or review"
    )


def test_a_comment_on_an_issue_does_not_fire() -> None:
    payload = example("issue_comment", "created")
    payload["comment"]["body"] = PHRASE
    assert "pull_request" not in payload["issue"]
    assert skipped(fix_request("issue_comment.created", payload)) == (
        "the comment is on an issue, not a pull request"
    )


def test_a_draft_or_closed_pull_request_does_not_fire() -> None:
    payload = inline_comment(PHRASE)
    payload["pull_request"]["draft"] = True
    assert skipped(fix_request("pull_request_review_comment.created", payload)) == (
        "the pull request is a draft"
    )
    assert fired(fix_request("pull_request_review_comment.created", payload, drafts=True))
    comment = pr_comment(PHRASE)
    comment["issue"]["draft"] = True
    assert skipped(fix_request("issue_comment.created", comment)) == "the pull request is a draft"
    closed = review(PHRASE)
    closed["pull_request"]["state"] = "closed"
    assert skipped(fix_request("pull_request_review.submitted", closed)) == (
        "the pull request is closed"
    )


def test_taskyards_own_marked_words_never_fire_even_from_a_person() -> None:
    """With a personal token the sender is a person; the hidden marker still tells."""
    summary = "Fixed the test. Say @taskyard fix to run again."
    for key in (action_key("task1", 0, "github.comment", {"body": summary}), "approval:01ab"):
        marked = with_marker(summary, key)
        for found in (
            fix_request("issue_comment.created", pr_comment(marked)),
            fix_request("pull_request_review_comment.created", inline_comment(marked)),
            fix_request("pull_request_review.submitted", review(marked)),
        ):
            assert skipped(found) == "the body carries taskyard's hidden marker: taskyard wrote it"


def test_taskyard_itself_and_bots_never_fire() -> None:
    payload = pr_comment(PHRASE)
    payload["sender"]["login"] = "taskyard-bot"
    assert skipped(fix_request("issue_comment.created", payload, bot_logins=["Taskyard-Bot"])) == (
        "taskyard-bot is taskyard itself"
    )
    payload["sender"]["login"] = "taskyard[bot]"
    assert skipped(fix_request("issue_comment.created", payload, bot_logins=["taskyard"])) == (
        "taskyard[bot] is taskyard itself"
    )
    payload["sender"].update(login="renovate[bot]", type="Bot")
    assert skipped(fix_request("issue_comment.created", payload)) == (
        "renovate[bot] is a bot; a fix is asked for by a person"
    )


@pytest.mark.parametrize(
    "body",
    [
        "> @taskyard fix\n\nI did not ask for that.",
        "  > earlier: @taskyard fix the tests\nno thanks",
        "Try:\n```\n@taskyard fix\n```\n",
        "~~~~md\n@taskyard fix\n```\nstill code\n~~~~\n",
        "Write `@taskyard fix` to ask for a fix.",
        "@taskyard fixed this already",
        "me@taskyard fix",
        "",
    ],
)
def test_quoted_coded_or_partial_phrases_do_not_fire(body: str) -> None:
    assert not mentions(body, PHRASE)
    assert skipped(fix_request("issue_comment.created", pr_comment(body))) == (
        "the comment does not ask for '@taskyard fix'"
    )


@pytest.mark.parametrize(
    "body",
    [
        "> quoted text\n\n@taskyard fix",
        "```\ncode\n```\nnow @TASKYARD FIX it",
        "`x` and then @taskyard fix, `y`",
        "(@taskyard fix)",
    ],
)
def test_the_phrase_outside_quotes_and_code_fires(body: str) -> None:
    assert mentions(body, PHRASE)


# As a route trigger --------------------------------------------------------------------------

SETTINGS = RoutingSettings(bot_user="taskyard-bot")


def _fix_route(**fields: Any) -> Any:
    return route(name="pr-fix", on=list(FIX_TYPES), **fields)


def test_fix_route_starts_on_each_kind_through_select_routes() -> None:
    fix = _fix_route(fix=True)
    deliveries = [
        ("issue_comment", pr_comment("@taskyard fix please")),
        ("pull_request_review_comment", inline_comment("@taskyard fix")),
        ("pull_request_review", review("@taskyard fix all of these")),
    ]
    for kind, payload in deliveries:
        decision = select_routes(event_for("github", payload, kind), payload, [fix], SETTINGS)
        assert [m.name for m in decision.matched] == ["pr-fix"], decision
        assert decision.matched[0].triggered_by == "fix: phrase '@taskyard fix'"


def test_fix_route_skips_with_the_reason_in_words() -> None:
    fix = _fix_route(fix="/fix-it")
    payload = pr_comment("@taskyard fix")
    decision = select_routes(
        event_for("github", payload, "issue_comment"), payload, [fix], SETTINGS
    )
    assert [(s.route, s.reason) for s in decision.skipped] == [
        ("pr-fix", "the comment does not ask for '/fix-it'")
    ]
    mine = pr_comment("/fix-it")
    mine["sender"]["login"] = "taskyard-bot"
    decision = select_routes(event_for("github", mine, "issue_comment"), mine, [fix], SETTINGS)
    assert decision.ignored_reason == "pr-fix: taskyard-bot is taskyard itself"


def test_fix_route_on_changes_requested_and_drafts() -> None:
    fix = _fix_route(fix={"on_changes_requested": True}, drafts=True)
    payload = review(None)
    payload["pull_request"]["draft"] = True
    decision = select_routes(
        event_for("github", payload, "pull_request_review"), payload, [fix], SETTINGS
    )
    assert decision.matched[0].triggered_by == "fix: changes requested"
    strict = _fix_route(fix=True)
    decision = select_routes(
        event_for("github", payload, "pull_request_review"), payload, [strict], SETTINGS
    )
    assert decision.ignored_reason == "pr-fix: draft pull request"


def _fix_of(value: Any) -> tuple[str, bool] | None:
    fix = route(name="a", on="github:*", fix=value).fix
    return None if fix is None else (fix.phrase, fix.on_changes_requested)


def test_fix_route_config_forms() -> None:
    assert _fix_of(True) == (PHRASE, False)
    assert _fix_of(" /fix ") == ("/fix", False)
    assert _fix_of(False) is None and route(name="a", on="github:*").fix is None
    assert _fix_of({"phrase": "go fix", "on_changes_requested": True}) == ("go fix", True)
    for bad in ("  ", {"phrase": "x", "typo": 1}, 3):
        with pytest.raises(ValidationError):
            _fix_of(bad)
