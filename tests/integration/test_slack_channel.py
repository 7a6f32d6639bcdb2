"""The Slack approval channel against the Slack test server (slack-sdk's methods and
arguments checked) and a real store: the request posted with its buttons, a button press
delivered as Slack signs and form-encodes it, read through taskyard's Slack intake, decided
once (approved, denied, refused for a user without the role, refused once decided) and the
message updated or the presser told; and the press accepted by the real webhook endpoint."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from taskyard.approvals.channels import ApprovalChannels
from taskyard.approvals.channels.slack import (
    APPROVE_ACTION,
    DENY_ACTION,
    INTERACTION,
    REASON_BLOCK,
    SlackChannel,
    request_blocks,
)
from taskyard.approvals.gate import Decisions
from taskyard.approvals.policies import ApprovalPolicies
from taskyard.intake.slack import SlackAdapter
from taskyard.models import Event, Priority, Task, TaskStatus, new_id
from taskyard.platforms import slack_write as sw
from taskyard.platforms.slack_write import SlackWriter
from taskyard.records import Approval, ApprovalStatus, Decision
from taskyard.routing import payload_of
from taskyard.store.base import Store
from tests.integration.intake_harness import SECRETS, running_intake
from tests.lifecycle_paths import drive
from tests.platform_servers import PlatformServer, Recorded, Reply, SlackWorkspace, slack_server

TOKEN = "xoxb-APPROVALS-slack-token-never-leaks"
CHANNEL = "C0APPROVALS"
APPROVER, STRANGER = "U0APPROVER", "U0STRANGER"
T0 = time.time()
DAY = 86_400.0
POLICIES = ApprovalPolicies.from_mapping(
    {
        "levels": {
            "low": {"approval": False},
            "medium": {"roles": ["lead"], "timeout_minutes": 30},
            "high": {
                "roles": ["lead"],
                "timeout_minutes": 60,
                "checklist": ["CI green", "No open review threads"],
            },
            "critical": {"roles": ["lead"], "timeout_minutes": 60, "justification_required": True},
        },
        "roles": {"lead": {"slack": [APPROVER], "github": ["octocat"]}},
    }
)


def _updated(request: Recorded) -> Reply:
    args = request.arguments()
    return Reply(200, {"ok": True, "channel": args["channel"], "ts": args["ts"]})


@pytest.fixture
def workspace() -> SlackWorkspace:
    return SlackWorkspace()


@pytest.fixture
def slack(workspace: SlackWorkspace) -> Iterator[PlatformServer]:
    with slack_server(workspace) as server:
        # The server answers chat.postMessage itself; these two as Slack documents them.
        server.route("POST", "/api/chat.update", _updated)
        server.route(
            "POST", "/api/chat.postEphemeral", Reply(200, {"ok": True, "message_ts": "1.000001"})
        )
        yield server
        assert server.problems == []
        assert all(TOKEN not in r.everything_but_auth() for r in server.requests)


@pytest.fixture
def channel(slack: PlatformServer) -> SlackChannel:
    return SlackChannel(SlackWriter(TOKEN, base_url=slack.base_url), CHANNEL, POLICIES)


def channels_over(store: Store, channel: SlackChannel) -> ApprovalChannels:
    return ApprovalChannels(store, Decisions(store, POLICIES, clock=lambda: T0 + 60), [channel])


def waiting(store: Store, task_id: str = "t-42", risk: str = "high") -> Approval:
    """A task stopped on one high-risk action, and its pending request (not yet posted)."""
    task = Task(
        id=task_id,
        event_id=f"e-{task_id}",
        route="pr-review",
        agent="codex",
        status=TaskStatus.QUEUED,
        priority=Priority.P2,
        created_at=T0,
        updated_at=T0,
        workflow_id=f"task-{task_id}",
    )
    store.record_routing([], [task])
    store.mark_task_dispatched(task_id, f"task-{task_id}")
    assert drive(store, task_id, TaskStatus.AWAITING_APPROVAL)
    return store.create_approval(
        Approval(
            id=new_id(),
            task_id=task_id,
            action_key=f"{task_id}.1.ab",
            route="pr-review",
            action_type="merge_pr",
            risk=risk,
            rule="merge-main",
            summary="merge_pr: merge acme/api#7 into main",
            details={
                "params": {"number": 7, "method": "squash"},
                "reasoning": "CI is green and two reviews approve it.",
                "requests": [
                    {
                        "platform": "github",
                        "method": "PUT",
                        "path": "/repos/acme/api/pulls/7/merge",
                        "body": {"merge_method": "squash"},
                        "description": "merge acme/api#7",
                    }
                ],
                "roles": ["lead"],
                "checklist": ["CI green", "No open review threads"],
                "justification_required": POLICIES.policy_for(risk).justification_required,
            },
            status=ApprovalStatus.PENDING,
            created_at=T0,
            expires_at=T0 + DAY,
        )
    )


def pressed(
    approval_id: str,
    ts: str,
    action_id: str = APPROVE_ACTION,
    user: str = APPROVER,
    reason: str = "",
) -> dict[str, Any]:
    """A `block_actions` interaction as Slack sends it when a button of the message is pressed."""
    block = {REASON_BLOCK: {"type": "plain_text_input", "value": reason or None}}
    return {
        "type": "block_actions",
        "team": {"id": "T0TEAM", "domain": "acme"},
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": "T0TEAM"},
        "api_app_id": "A0APP",
        "token": "legacy-verification-token",
        "trigger_id": f"{new_id()[-10:]}.738474920.8088930838d88f008e0",
        "container": {
            "type": "message",
            "message_ts": ts,
            "channel_id": CHANNEL,
            "is_ephemeral": False,
        },
        "channel": {"id": CHANNEL, "name": "approvals"},
        "message": {
            "type": "message",
            "ts": ts,
            "bot_id": "B1",
            "text": "Approval needed (high risk): merge_pr: merge acme/api#7 into main",
        },
        "state": {"values": {REASON_BLOCK: block}},
        "response_url": "https://hooks.slack.com/actions/T0TEAM/6213/dbRvgNFhFhmeIRdQn5gDmjtS",
        "actions": [
            {
                "action_id": action_id,
                "block_id": "taskyard_decision",
                "text": {"type": "plain_text", "text": "Approve", "emoji": True},
                "value": approval_id,
                "style": "primary" if action_id == APPROVE_ACTION else "danger",
                "type": "button",
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }


def form(interaction: dict[str, Any]) -> bytes:
    """Slack's interactivity body: form-encoded, the JSON in a `payload` field."""
    return urlencode({"payload": json.dumps(interaction)}).encode()


def delivered(interaction: dict[str, Any]) -> Event:
    """The interaction signed as Slack signs it, then verified, parsed and normalised by
    taskyard's Slack intake into the event it would store."""
    adapter, body, now = SlackAdapter(), form(interaction), time.time()
    signed = adapter.sign(SECRETS["slack"], body, now)
    adapter.verify(signed.headers, signed.body, [SECRETS["slack"]], now)
    norm = adapter.normalise(signed.headers, adapter.parse(signed.headers, signed.body))
    return Event(
        id=new_id(),
        source="slack",
        type=norm.type,
        delivery_id=norm.delivery_id,
        subject=norm.subject,
        actor=norm.actor,
        received_at=now,
        priority=Priority.P2,
        headers={"content-type": signed.headers["content-type"]},
        body=signed.body,
        content_hash=hashlib.sha256(signed.body).hexdigest(),
    )


async def press(channels: ApprovalChannels, interaction: dict[str, Any]) -> str | None:
    event = delivered(interaction)
    assert event.type == INTERACTION
    return await channels.intercept(event, payload_of(event))


def sent(slack: PlatformServer, method: str) -> list[dict[str, Any]]:
    """The arguments of every call to `method`, blocks decoded however slack-sdk sent them."""
    calls = []
    for request in slack.requests:
        if request.path == f"/api/{method}":
            args = request.arguments()
            if isinstance(args.get("blocks"), str):
                args["blocks"] = json.loads(args["blocks"])
            calls.append(args)
    return calls


async def test_announce_posts_the_request_with_its_buttons(
    store: Store, slack: PlatformServer, workspace: SlackWorkspace, channel: SlackChannel
) -> None:
    approval = await channels_over(store, channel).announce(waiting(store))
    [post] = sent(slack, sw.POST_MESSAGE)
    assert post["channel"] == CHANNEL
    assert post["text"] == "Approval needed (high risk): merge_pr: merge acme/api#7 into main"
    assert post["blocks"] == request_blocks(approval, POLICIES)
    [actions] = [b for b in post["blocks"] if b["type"] == "actions"]
    assert [(e["action_id"], e["value"]) for e in actions["elements"]] == [
        (APPROVE_ACTION, approval.id),
        (DENY_ACTION, approval.id),
    ]
    [message] = workspace.messages[CHANNEL]  # the server's, with the ts it answered
    assert approval.channels == {"slack": {"channel": CHANNEL, "ts": message["ts"]}}
    assert store.get_approval(approval.id).channels == approval.channels
    again = await channels_over(store, channel).announce(approval)  # posted once
    assert again == approval and len(sent(slack, sw.POST_MESSAGE)) == 1


async def test_a_press_by_the_lead_approves_once_and_updates_the_message(
    store: Store, slack: PlatformServer, channel: SlackChannel
) -> None:
    channels = channels_over(store, channel)
    approval = await channels.announce(waiting(store))
    ts = approval.channels["slack"]["ts"]

    said = await press(channels, pressed(approval.id, ts))
    assert said == f"approval {approval.id}: approve by slack:{APPROVER} accepted"
    stored = store.get_approval(approval.id)
    assert (stored.status, stored.decided_by, stored.decided_via) == (
        ApprovalStatus.APPROVED,
        f"slack:{APPROVER}",
        "slack",
    )
    assert store.get_task("t-42").status is TaskStatus.APPLYING  # handed back to apply
    [update] = sent(slack, sw.UPDATE_MESSAGE)
    assert (update["channel"], update["ts"]) == (CHANNEL, ts)
    assert update["blocks"][-1]["text"]["text"] == f"✅ Approved by <@{APPROVER}>"
    assert not any(b["type"] in ("actions", "input") for b in update["blocks"])

    late = await press(channels, pressed(approval.id, ts, DENY_ACTION, reason="too late"))
    assert late is not None and "refused (already approved by slack:U0APPROVER" in late
    assert store.get_approval(approval.id).status is ApprovalStatus.APPROVED
    assert len(sent(slack, sw.UPDATE_MESSAGE)) == 1  # the message is not touched again
    [told] = sent(slack, sw.POST_EPHEMERAL)
    assert (told["channel"], told["user"]) == (CHANNEL, APPROVER)
    assert "did not count: already approved by slack:U0APPROVER (slack)" in told["text"]
    attempts = store.decision_attempts(approval.id)
    assert [(a.decision, a.accepted) for a in attempts] == [
        (Decision.APPROVE, True),
        (Decision.DENY, False),
    ]


async def test_a_denial_keeps_the_typed_reason(
    store: Store, slack: PlatformServer, channel: SlackChannel
) -> None:
    channels = channels_over(store, channel)
    approval = await channels.announce(waiting(store))
    ts = approval.channels["slack"]["ts"]
    said = await press(channels, pressed(approval.id, ts, DENY_ACTION, reason="not on a Friday"))
    assert said is not None and said.endswith("accepted")
    stored = store.get_approval(approval.id)
    assert (stored.status, stored.reason) == (ApprovalStatus.DENIED, "not on a Friday")
    [update] = sent(slack, sw.UPDATE_MESSAGE)
    assert update["blocks"][-1]["text"]["text"] == f"❌ Denied by <@{APPROVER}>: not on a Friday"


async def test_a_press_by_someone_without_the_role_is_refused_and_recorded(
    store: Store, slack: PlatformServer, channel: SlackChannel
) -> None:
    channels = channels_over(store, channel)
    approval = await channels.announce(waiting(store))
    ts = approval.channels["slack"]["ts"]

    said = await press(channels, pressed(approval.id, ts, user=STRANGER))
    why = f"not authorised: slack:{STRANGER} holds none of the roles that decide high"
    assert said == f"approval {approval.id}: approve by slack:{STRANGER} refused ({why})"
    assert store.get_approval(approval.id).status is ApprovalStatus.PENDING
    [attempt] = store.decision_attempts(approval.id)
    assert (attempt.actor, attempt.via, attempt.accepted, attempt.why) == (
        f"slack:{STRANGER}",
        "slack",
        False,
        why,
    )
    assert sent(slack, sw.UPDATE_MESSAGE) == []  # the buttons stay for the lead
    [told] = sent(slack, sw.POST_EPHEMERAL)
    assert (told["channel"], told["user"]) == (CHANNEL, STRANGER)
    assert told["text"].endswith(f"did not count: {why}")


async def test_a_justification_typed_in_the_message_lets_a_critical_action_be_approved(
    store: Store, slack: PlatformServer, channel: SlackChannel
) -> None:
    channels = channels_over(store, channel)
    approval = await channels.announce(waiting(store, risk="critical"))
    ts = approval.channels["slack"]["ts"]
    [post] = sent(slack, sw.POST_MESSAGE)
    assert "Justification (required to approve)" in json.dumps(post["blocks"])

    bare = await press(channels, pressed(approval.id, ts))
    assert bare is not None and "a justification is required" in bare
    [told] = sent(slack, sw.POST_EPHEMERAL)
    assert told["user"] == APPROVER and "a justification is required" in told["text"]

    said = await press(channels, pressed(approval.id, ts, reason="hotfix for the outage"))
    assert said is not None and said.endswith("accepted")
    stored = store.get_approval(approval.id)
    assert (stored.status, stored.reason) == (ApprovalStatus.APPROVED, "hotfix for the outage")
    [update] = sent(slack, sw.UPDATE_MESSAGE)
    assert update["blocks"][-1]["text"]["text"] == (
        f"✅ Approved by <@{APPROVER}>: hotfix for the outage"
    )


async def test_a_press_on_an_unknown_request_decides_nothing(
    store: Store, slack: PlatformServer, channel: SlackChannel
) -> None:
    said = await press(channels_over(store, channel), pressed("no-such-approval", "1.2"))
    assert said == "slack: a decision on no known approval request"
    assert slack.requests == []


async def test_the_webhook_endpoint_accepts_a_signed_press_that_then_decides(
    tmp_path: Path, store_url: str, slack: PlatformServer, channel: SlackChannel
) -> None:
    async with running_intake(tmp_path, store_url) as intake:
        channels = channels_over(intake.store, channel)
        approval = await channels.announce(waiting(intake.store))
        ts = approval.channels["slack"]["ts"]
        response, _, _ = await intake.deliver("slack", form(pressed(approval.id, ts)))
        assert response.status_code == 200, response.text
        event = intake.store.get_event(response.json()["event_id"])
        assert (event.type, event.actor, event.subject) == (INTERACTION, APPROVER, CHANNEL)

        said = await channels.intercept(event, payload_of(event))
        assert said is not None and said.endswith("accepted")
        assert intake.store.get_approval(approval.id).status is ApprovalStatus.APPROVED
        assert len(sent(slack, sw.UPDATE_MESSAGE)) == 1
