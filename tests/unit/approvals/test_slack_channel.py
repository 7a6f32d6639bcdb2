"""The Slack approval channel on its own: the request message (valid Block Kit, buttons that
name the request), reading button presses, and what it posts after a decision (a recording
fake writer)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from slack_sdk.models.blocks import Block

from taskyard.actions.fakes import FakeWriter
from taskyard.approvals.channels.base import DecisionRequest, Lookup
from taskyard.approvals.channels.slack import (
    APPROVE_ACTION,
    DENIED_HERE,
    DENY_ACTION,
    INTERACTION,
    REASON_BLOCK,
    SlackChannel,
    decision_of,
    escape,
    mention,
    outcome_blocks,
    request_blocks,
    requests_text,
)
from taskyard.approvals.policies import ApprovalPolicies, Identity
from taskyard.exceptions import PlatformPermanentError
from taskyard.models import Event, Priority
from taskyard.platforms import slack_write as sw
from taskyard.records import Approval, ApprovalStatus, Decision, DecisionOutcome

AID = "018f3a5b7c9d0123456789abcdef0123"
T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z
POLICIES = ApprovalPolicies.from_mapping(
    {
        "levels": {
            "low": {"approval": False},
            "medium": {"roles": ["maintainer"], "timeout_minutes": 30},
            "high": {"roles": ["lead", "maintainer"], "timeout_minutes": 60},
            "critical": {"roles": ["lead"], "timeout_minutes": 60, "justification_required": True},
        },
        "roles": {
            "maintainer": {"github": ["octocat"]},
            "lead": {"slack": ["U0APPROVER", "W0LEAD2"], "github": ["hubot"]},
        },
    }
)


def approval(**changes: Any) -> Approval:
    fields: dict[str, Any] = {
        "id": AID,
        "task_id": "t-42",
        "action_key": "t-42.1.ab",
        "route": "pr-review",
        "action_type": "merge_pr",
        "risk": "high",
        "rule": "merge-main",
        "summary": "merge_pr: merge acme/api#7 into main",
        "details": {
            "params": {"method": "squash"},
            "reasoning": "CI is green and two reviews approve it.",
            "requests": [
                {"platform": "github", "method": "PUT", "path": "/repos/acme/api/pulls/7/merge"}
            ],
            "roles": ["lead", "maintainer"],
            "checklist": ["CI green", "No open review threads"],
            "justification_required": False,
        },
        "status": ApprovalStatus.PENDING,
        "created_at": T0,
        "expires_at": T0 + 3600,
        "channels": {"slack": {"channel": "C0APPROVALS", "ts": "1700000000.000100"}},
    }
    fields.update(changes)
    return Approval(**fields)


def press(action_id: str = APPROVE_ACTION, value: str = AID, **changes: Any) -> dict[str, Any]:
    """A `block_actions` payload as Slack documents it, one button pressed."""
    payload: dict[str, Any] = {
        "type": "block_actions",
        "team": {"id": "T0TEAM", "domain": "acme"},
        "user": {"id": "U0APPROVER", "username": "ada", "team_id": "T0TEAM"},
        "api_app_id": "A0APP",
        "token": "legacy-verification-token",
        "trigger_id": "13345224609.738474920.8088930838d88f008e0",
        "container": {
            "type": "message",
            "message_ts": "1700000000.000100",
            "channel_id": "C0APPROVALS",
            "is_ephemeral": False,
        },
        "channel": {"id": "C0APPROVALS", "name": "approvals"},
        "message": {"type": "message", "ts": "1700000000.000100", "text": "Approval needed"},
        "response_url": "https://hooks.slack.com/actions/T0TEAM/1/abc",
        "state": {"values": {}},
        "actions": [
            {
                "action_id": action_id,
                "block_id": "taskyard_decision",
                "value": value,
                "type": "button",
                "action_ts": "1700000100.000200",
            }
        ],
    }
    payload.update(changes)
    return payload


def typed(text: str) -> dict[str, Any]:
    """The message's reason field as it arrives in `state.values`."""
    return {"values": {REASON_BLOCK: {REASON_BLOCK: {"type": "plain_text_input", "value": text}}}}


def event(kind: str = INTERACTION) -> Event:
    return Event(
        id="e1",
        source="slack",
        type=kind,
        delivery_id="13345224609.738474920.8088930838d88f008e0",
        subject="C0APPROVALS",
        actor="U0APPROVER",
        received_at=T0,
        priority=Priority.P2,
        headers={},
        body=b"",
        content_hash="x",
    )


def button(blocks: list[dict[str, Any]], action_id: str) -> dict[str, Any]:
    [actions] = [b for b in blocks if b["type"] == "actions"]
    [found] = [e for e in actions["elements"] if e["action_id"] == action_id]
    return dict(found)


def texts(blocks: list[dict[str, Any]]) -> str:
    return json.dumps(blocks, ensure_ascii=False)


# --- the request message ---------------------------------------------------------------------


def test_the_request_is_valid_block_kit_with_two_buttons_naming_it() -> None:
    blocks = request_blocks(approval(), POLICIES)
    for block in blocks:  # slack-sdk's models check types, lengths and required fields
        assert Block.parse(block).to_dict() == block  # type: ignore[union-attr]
    assert blocks[0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "Approval needed: high risk", "emoji": True},
    }
    approve, deny = button(blocks, APPROVE_ACTION), button(blocks, DENY_ACTION)
    assert (approve["value"], approve["style"], approve["text"]["text"]) == (
        AID,
        "primary",
        "Approve",
    )
    assert (deny["value"], deny["style"], deny["text"]["text"]) == (AID, "danger", "Deny")
    assert blocks[-1]["type"] == "actions" and len(blocks[-1]["elements"]) == 2
    [reason] = [b for b in blocks if b["type"] == "input"]
    assert reason["optional"] is True and reason["block_id"] == REASON_BLOCK


def test_the_request_says_what_why_where_and_who() -> None:
    shown = texts(request_blocks(approval(), POLICIES))
    for expected in (
        "*merge_pr: merge acme/api#7 into main*",
        "`pr-review`",
        "`t-42`",
        "`merge-main`",
        "<!date^1700003600^{date_short_pretty} at {time}|2023-11-14 23:13 UTC>",
        "CI is green and two reviews approve it.",
        "```\\nPUT /repos/acme/api/pulls/7/merge\\n```",
        "• CI green\\n• No open review threads",
        "lead: <@U0APPROVER>, <@W0LEAD2>; maintainer: no Slack members",
        f"Approval `{AID}`",
    ):
        assert expected in shown, expected
    assert "Reason (optional)" in shown


def test_a_justification_is_asked_for_where_the_policy_requires_one() -> None:
    details = {**approval().details, "justification_required": True, "roles": []}
    shown = texts(request_blocks(approval(details=details), POLICIES))
    assert "Justification (required to approve)" in shown
    assert "only an operator (CLI or API) may decide" in shown


def test_text_from_the_agent_cannot_mention_or_link() -> None:
    details = {**approval().details, "reasoning": "ping <!channel> & see <https://evil|docs>"}
    blocks = request_blocks(approval(summary="close <!here>", details=details), POLICIES)
    shown = texts(blocks)
    assert "<!channel>" not in shown and "<!here>" not in shown and "<https://evil" not in shown
    assert "ping &lt;!channel&gt; &amp; see &lt;https://evil|docs&gt;" in shown
    assert escape("a<b>&c") == "a&lt;b&gt;&amp;c"


def test_long_parts_are_cut_to_slacks_limits() -> None:
    requests = [{"method": "POST", "path": f"/repos/acme/api/issues/{n}/labels"} for n in range(40)]
    details = {**approval().details, "reasoning": "x" * 5000, "requests": requests}
    blocks = request_blocks(
        approval(summary="s" * 4000, risk="critical", details=details), POLICIES
    )
    for block in blocks:
        Block.parse(block).to_dict()  # type: ignore[union-attr]  # raises past a limit
    text = requests_text(requests)
    assert text.count("\n") == 15 and text.endswith("… and 25 more")
    assert requests_text("not a list") == ""


def test_mentions() -> None:
    assert mention("slack:U0APPROVER") == "<@U0APPROVER>"
    assert mention("github:octocat") == "github:octocat"
    assert mention("slack:<!channel>") == "slack:&lt;!channel&gt;"
    assert mention(None) == "someone"


# --- reading a button press ----------------------------------------------------------------


def test_approve_is_read_with_who_and_where_to_answer() -> None:
    assert decision_of(event(), press()) == DecisionRequest(
        lookup=Lookup(approval_id=AID),
        decision=Decision.APPROVE,
        who=Identity("slack", "U0APPROVER"),
        reason=None,
        reply_to={
            "channel": "C0APPROVALS",
            "ts": "1700000000.000100",
            "response_url": "https://hooks.slack.com/actions/T0TEAM/1/abc",
        },
    )


def test_deny_carries_the_typed_reason_or_says_where_it_was_denied() -> None:
    denied = decision_of(event(), press(DENY_ACTION))
    assert denied is not None
    assert (denied.decision, denied.reason) == (Decision.DENY, DENIED_HERE)
    reasoned = decision_of(event(), press(DENY_ACTION, state=typed("  not on a Friday \n")))
    assert reasoned is not None and reasoned.reason == "not on a Friday"
    justified = decision_of(event(), press(state=typed("hotfix, on call agrees")))
    assert justified is not None and justified.reason == "hotfix, on call agrees"
    blank = decision_of(event(), press(state=typed("   ")))
    assert blank is not None and blank.reason is None


def test_the_channel_falls_back_to_the_container() -> None:
    payload = press()
    del payload["channel"], payload["response_url"]
    found = decision_of(event(), payload)
    assert found is not None
    assert found.reply_to == {"channel": "C0APPROVALS", "ts": "1700000000.000100"}


def test_our_button_among_other_actions_is_found() -> None:
    payload = press(DENY_ACTION)
    payload["actions"].insert(0, {"action_id": "someone_elses", "value": "x", "type": "button"})
    found = decision_of(event(), payload)
    assert found is not None and found.decision is Decision.DENY


@pytest.mark.parametrize(
    ("kind", "payload"),
    [
        (INTERACTION, press("someone_elses_button")),
        (INTERACTION, press(value="")),
        (INTERACTION, press(actions=[])),
        (INTERACTION, press(actions="nope")),
        (INTERACTION, press(user={"username": "ada"})),
        (INTERACTION, press(type="view_submission")),
        ("slack:interaction.view_submission", press()),
        ("slack:message.channels", {"type": "event_callback", "event": {"type": "message"}}),
        ("github:issue_comment.created", {"action": "created"}),
    ],
    ids=[
        "other-action-id",
        "no-value",
        "no-actions",
        "actions-not-a-list",
        "no-user-id",
        "payload-not-block-actions",
        "other-interaction",
        "slack-message",
        "github-comment",
    ],
)
def test_anything_else_is_no_decision(kind: str, payload: dict[str, Any]) -> None:
    channel = SlackChannel(FakeWriter("slack"), "C0APPROVALS", POLICIES)
    assert channel.decision_in(event(kind), payload) is None


# --- posting --------------------------------------------------------------------------------


def test_it_wants_a_channel_and_a_writer() -> None:
    assert SlackChannel(FakeWriter("slack"), "C0APPROVALS", POLICIES).wants(approval())
    assert not SlackChannel(None, "C0APPROVALS", POLICIES).wants(approval())
    assert not SlackChannel(FakeWriter("slack"), None, POLICIES).wants(approval())
    assert not SlackChannel(FakeWriter("slack"), "", POLICIES).wants(approval())
    assert SlackChannel(None, None, POLICIES).name == "slack"


async def test_announce_posts_the_request_and_returns_where() -> None:
    writer = FakeWriter("slack")
    ref = await SlackChannel(writer, "C0APPROVALS", POLICIES).announce(approval(channels={}))
    assert ref == {"channel": "C0APPROVALS", "ts": "slack-1"}
    [sent] = writer.calls
    assert (sent.platform, sent.path) == ("slack", sw.POST_MESSAGE)
    assert sent.body["channel"] == "C0APPROVALS"
    assert sent.body["text"] == "Approval needed (high risk): merge_pr: merge acme/api#7 into main"
    assert sent.body["blocks"] == request_blocks(approval(channels={}), POLICIES)


async def test_announce_without_a_writer_is_a_platform_error() -> None:
    with pytest.raises(PlatformPermanentError, match="no Slack writer"):
        await SlackChannel(None, "C0APPROVALS", POLICIES).announce(approval())


def decided(status: ApprovalStatus, by: str | None, reason: str | None = None) -> Approval:
    return approval(status=status, decided_by=by, decided_at=T0 + 60, reason=reason)


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        (decided(ApprovalStatus.APPROVED, "slack:U0APPROVER"), "✅ Approved by <@U0APPROVER>"),
        (
            decided(ApprovalStatus.DENIED, "slack:U0APPROVER", "not on a Friday"),
            "❌ Denied by <@U0APPROVER>: not on a Friday",
        ),
        (decided(ApprovalStatus.APPROVED, "cli:alice", "ok"), "✅ Approved by cli:alice: ok"),
        (decided(ApprovalStatus.EXPIRED, "taskyard"), "⌛ Expired — not applied"),
    ],
    ids=["approved-here", "denied-with-reason", "approved-on-the-cli", "expired"],
)
async def test_an_accepted_decision_replaces_the_buttons_with_the_outcome(
    stored: Approval, expected: str
) -> None:
    writer = FakeWriter("slack")
    channel = SlackChannel(writer, "C0APPROVALS", POLICIES)
    await channel.decided(stored, DecisionOutcome(True, stored), None)
    [sent] = writer.calls
    assert sent.path == sw.UPDATE_MESSAGE
    assert (sent.body["channel"], sent.body["ts"]) == ("C0APPROVALS", "1700000000.000100")
    blocks = sent.body["blocks"]
    assert blocks == outcome_blocks(stored, POLICIES)
    assert blocks[-1] == {"type": "section", "text": {"type": "mrkdwn", "text": expected}}
    assert not any(b["type"] in ("actions", "input") for b in blocks)
    assert sent.body["text"].startswith(expected)


async def test_a_refusal_made_here_is_told_to_the_presser_only() -> None:
    writer = FakeWriter("slack")
    channel = SlackChannel(writer, "C0APPROVALS", POLICIES)
    request = decision_of(event(), press(user={"id": "U0STRANGER", "username": "eve"}))
    assert request is not None
    why = "not authorised: slack:U0STRANGER holds none of the roles that decide high"
    await channel.decided(approval(), DecisionOutcome(False, approval(), why), request)
    [sent] = writer.calls
    assert sent.path == sw.POST_EPHEMERAL
    assert sent.body == {
        "channel": "C0APPROVALS",
        "user": "U0STRANGER",
        "text": f"Your approval of “merge_pr: merge acme/api#7 into main” did not count: {why}",
    }


async def test_a_refusal_elsewhere_and_a_request_never_posted_say_nothing() -> None:
    writer = FakeWriter("slack")
    channel = SlackChannel(writer, "C0APPROVALS", POLICIES)
    await channel.decided(approval(), DecisionOutcome(False, approval(), "expired"), None)
    never = decided(ApprovalStatus.APPROVED, "cli:alice")
    never = dataclasses.replace(never, channels={})
    await channel.decided(never, DecisionOutcome(True, never), None)
    assert writer.calls == []


async def test_a_question_goes_to_the_thread_and_keeps_the_buttons() -> None:
    writer = FakeWriter("slack")
    asked = approval(question="which branch?")
    await SlackChannel(writer, "C0APPROVALS", POLICIES).decided(
        asked, DecisionOutcome(True, asked), None
    )
    [sent] = writer.calls
    assert sent.path == sw.POST_MESSAGE
    assert sent.body == {
        "channel": "C0APPROVALS",
        "text": "❓ More information asked: which branch?",
        "thread_ts": "1700000000.000100",
    }
