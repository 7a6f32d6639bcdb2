"""The Linear approval channel without Linear: the request issue it plans (checked against
Linear's schema), decisions read from variants of a real `Issue` update delivery, and the
comments that say what came of a request."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from taskyard.actions.directory import LinearDirectory
from taskyard.actions.fakes import FakeWriter
from taskyard.approvals.channels.base import DecisionRequest, Lookup
from taskyard.approvals.channels.linear import (
    NO_ACTOR,
    LinearChannel,
    approval_issue_id,
    title_of,
)
from taskyard.approvals.policies import ApprovalPolicies, Identity
from taskyard.config import LinearApprovalHub
from taskyard.exceptions import PlatformPermanentError
from taskyard.platforms import github_write as gw
from taskyard.platforms.fakes import FakeLinear
from taskyard.platforms.linear_write import linear_uuid
from taskyard.records import Approval, ApprovalStatus, Decision, DecisionOutcome
from tests.linear_workspace import graphql_problems
from tests.unit.routing.events import event_for

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z
HUB = "5d9a1c1e-4b7e-4c1a-9e0f-0a1b2c3d4e5f"
TEAM = "eeaa0cbd-xxxx-xxxx-xxxx-1c701c3485f1"  # the real delivery's team
USER = "80e102b0-xxxx-xxxx-xxxx-044bcfb4cd39"  # the real delivery's assignee and creator
ACTOR = {
    "id": USER,
    "name": "user@example.com",
    "email": "user@example.com",
    "type": "user",
    "url": "https://linear.app/korosuke613/profiles/user",
}
APPROVED_STATE = {"id": "0b6f7a8e-0000-4000-8000-00000000a001", "name": "Approved"}
DENIED_STATE = {"id": "0b6f7a8e-0000-4000-8000-00000000a002", "name": "Denied"}


def policies(lead: list[str] | None = None) -> ApprovalPolicies:
    gated = {"roles": ["lead"], "timeout_minutes": 60, "checklist": ["CI is green"]}
    return ApprovalPolicies.from_mapping(
        {
            "levels": {
                "low": {"approval": False},
                "medium": gated,
                "high": gated,
                "critical": {**gated, "roles": ["lead", "owner"], "justification_required": True},
            },
            "roles": {
                "lead": {"linear": lead if lead is not None else ["user@example.com"]},
                "owner": {"github": ["octocat"]},
            },
        }
    )


def approval(aid: str = "a1", risk: str = "high", **changes: Any) -> Approval:
    request = gw.merge_pr("acme/api", 7, "squash")
    fields: dict[str, Any] = {
        "id": aid,
        "task_id": "t1",
        "action_key": "t1.0.aa",
        "route": "pr-review",
        "action_type": "merge_pr",
        "risk": risk,
        "rule": "merge-main",
        "summary": "merge_pr: merge acme/api#7 into main",
        "details": {
            "params": {"number": 7, "method": "squash"},
            "reasoning": "All checks pass and two reviews approve.",
            "requests": [request.to_json()],
            "roles": ["lead", "owner"] if risk == "critical" else ["lead"],
            "checklist": ["CI is green"],
            "justification_required": risk == "critical",
        },
        "status": ApprovalStatus.PENDING,
        "created_at": T0,
        "expires_at": T0 + 3600,
    }
    fields.update(changes)
    return Approval(**fields)


def hub(**changes: Any) -> LinearApprovalHub:
    return LinearApprovalHub(hub_issue_id=HUB, **changes)


def channel(
    writer: FakeWriter | None = None,
    linear: FakeLinear | None = None,
    who: ApprovalPolicies | None = None,
    **hub_changes: Any,
) -> LinearChannel:
    linear = linear or FakeLinear()
    return LinearChannel(
        writer if writer is not None else FakeWriter("linear"),
        hub(**hub_changes),
        who or policies(),
        LinearDirectory(linear, 0),
        reader=linear,
    )


# --- deliveries: the real Issue update, changed as a decision would change it ---------------


@pytest.fixture
def real(shared_dir: Path) -> dict[str, Any]:
    path = shared_dir / "webhooks" / "linear" / "issue.update.state_change.json"
    payload: dict[str, Any] = json.loads(path.read_text())
    return payload


def delivery(real: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """The real delivery about the approval issue of `a1` under the hub, by ACTOR; `state`
    moves it there, `labels` (+ `before`: the label ids it had) changes its labels."""
    payload = copy.deepcopy(real)
    data = payload["data"]
    data.update(id=approval_issue_id("a1"), parentId=changes.get("parent", HUB))
    if "state" in changes:
        data["state"] = {**data["state"], **changes["state"]}
        data["stateId"] = data["state"]["id"]
    if "labels" in changes:
        del payload["updatedFrom"]["stateId"]
        payload["updatedFrom"]["labelIds"] = changes.get("before", [])
        data["labels"] = changes["labels"]
        data["labelIds"] = [label["id"] for label in changes["labels"]]
    if changes.get("actor", ACTOR) is not None:
        payload["actor"] = changes.get("actor", ACTOR)
    return payload


def decide(ch: LinearChannel, payload: dict[str, Any]) -> DecisionRequest | None:
    return ch.decision_in(event_for("linear", payload), payload)


LABEL_APPROVED = {"id": "l-approved", "name": "approved", "color": "#0f0"}
LABEL_DENIED = {"id": "l-denied", "name": "Denied", "color": "#f00"}
LABEL_OTHER = {"id": "l-bug", "name": "Bug", "color": "#f00"}


def test_moving_the_issue_to_the_approved_state_approves_it(real: dict[str, Any]) -> None:
    found = decide(channel(), delivery(real, state=APPROVED_STATE))
    assert found == DecisionRequest(
        lookup=Lookup(platform="linear", key="issue_id", value=approval_issue_id("a1")),
        decision=Decision.APPROVE,
        who=Identity("linear", "user@example.com"),
        reason=None,
        reply_to={"issue_id": approval_issue_id("a1"), "how": "moved to Approved"},
    )


def test_states_compare_ignoring_case_and_denied_denies(real: dict[str, Any]) -> None:
    found = decide(channel(denied_state="Rejected"), delivery(real, state={"name": "rejected"}))
    assert found is not None and found.decision is Decision.DENY
    found = decide(channel(), delivery(real, state=DENIED_STATE))
    assert found is not None and found.decision is Decision.DENY


def test_a_move_to_another_state_is_no_decision(real: dict[str, Any]) -> None:
    moved_to_todo = delivery(real)  # the real delivery: moved to Todo
    assert moved_to_todo["data"]["state"]["name"] == "Todo"
    assert decide(channel(), moved_to_todo) is None


def test_an_approved_state_that_did_not_change_is_no_decision(real: dict[str, Any]) -> None:
    payload = delivery(real, state=APPROVED_STATE)
    del payload["updatedFrom"]["stateId"]  # e.g. only the title changed
    assert decide(channel(), payload) is None


def test_adding_the_approved_or_denied_label_decides(real: dict[str, Any]) -> None:
    found = decide(
        channel(), delivery(real, labels=[LABEL_OTHER, LABEL_APPROVED], before=["l-bug"])
    )
    assert found is not None
    assert (found.decision, _how(found)) == (Decision.APPROVE, "labelled approved")
    found = decide(channel(), delivery(real, labels=[LABEL_DENIED]))
    assert found is not None and found.decision is Decision.DENY


def test_a_label_it_already_had_or_another_label_is_no_decision(real: dict[str, Any]) -> None:
    had = delivery(real, labels=[LABEL_APPROVED, LABEL_OTHER], before=["l-approved"])
    assert decide(channel(), had) is None
    assert decide(channel(), delivery(real, labels=[LABEL_OTHER])) is None


def test_approved_and_denied_at_once_is_no_decision(real: dict[str, Any]) -> None:
    payload = delivery(real, labels=[LABEL_APPROVED, LABEL_DENIED])
    assert decide(channel(), payload) is None
    payload = delivery(real, state=APPROVED_STATE)
    payload["updatedFrom"]["labelIds"] = []
    payload["data"]["labels"] = [LABEL_DENIED]
    assert decide(channel(), payload) is None


def test_only_sub_issues_of_the_hub_and_issue_updates_are_read(real: dict[str, Any]) -> None:
    elsewhere = delivery(real, state=APPROVED_STATE, parent="9f0e0d0c-0000-4000-8000-000000000000")
    assert decide(channel(), elsewhere) is None
    no_parent = delivery(real, state=APPROVED_STATE)
    del no_parent["data"]["parentId"]
    assert decide(channel(), no_parent) is None
    created = {**delivery(real, state=APPROVED_STATE), "action": "create"}
    assert decide(channel(), created) is None
    comment = {**delivery(real, state=APPROVED_STATE), "type": "Comment"}
    assert decide(channel(), comment) is None


def test_a_hub_named_by_identifier_is_refused_by_the_config() -> None:
    with pytest.raises(ValidationError, match="a UUID"):
        LinearApprovalHub(hub_issue_id="OPS-12")


def test_a_delivery_without_an_actor_is_decided_by_nobody(real: dict[str, Any]) -> None:
    found = decide(channel(), delivery(real, state=APPROVED_STATE, actor=None))
    assert found is not None and found.who == Identity("linear", NO_ACTOR)
    assert not policies().roles_of(found.who)


def test_the_decider_is_named_as_the_policies_name_them(real: dict[str, Any]) -> None:
    by_id = channel(who=policies([USER]))
    found = decide(by_id, delivery(real, state=APPROVED_STATE))
    assert found is not None and found.who == Identity("linear", USER)
    nobody = channel(who=policies(["someone@example.com"]))
    found = decide(nobody, delivery(real, state=APPROVED_STATE))
    assert found is not None and found.who == Identity("linear", "user@example.com")


def test_an_actor_that_is_not_a_user_never_decides_by_an_email(real: dict[str, Any]) -> None:
    external = {"id": "ext-1", "name": "Ann", "email": "user@example.com", "type": "externalUser"}
    found = decide(channel(), delivery(real, state=APPROVED_STATE, actor=external))
    assert found is not None and found.who == Identity("linear", "ext-1")
    integration = {"id": "int-1", "service": "github", "type": "integration"}
    found = decide(channel(), delivery(real, state=APPROVED_STATE, actor=integration))
    assert found is not None and found.who == Identity("linear", "int-1")


def _how(found: DecisionRequest) -> Any:
    return (found.reply_to or {}).get("how")


# --- announcing ----------------------------------------------------------------------------


def directory_of(*labels: str) -> dict[str, Any]:
    listed = [{"id": f"l-{n.lower()}", "name": n, "isGroup": False} for n in labels]
    return {"id": TEAM, "labels": listed, "states": [], "members": []}


def test_wants_a_hub_issue_and_a_writer() -> None:
    assert channel().wants(approval())
    assert not LinearChannel(None, hub(), policies()).wants(approval())
    assert not LinearChannel(FakeWriter("linear"), LinearApprovalHub(), policies()).wants(
        approval()
    )


async def test_the_request_is_a_sub_issue_of_the_hub_with_a_fixed_id() -> None:
    writer = FakeWriter("linear")
    linear = FakeLinear(issues={HUB: {"id": HUB, "team": {"id": TEAM}}})
    linear.directories[TEAM] = directory_of("Approval", "Risk")
    ch = channel(writer, linear, labels=("approval", "risk", "missing"))
    ref = await ch.announce(approval())
    [sent] = writer.calls
    assert graphql_problems(sent.body) == []
    fields = sent.body["variables"]["input"]
    assert {k: v for k, v in fields.items() if k != "description"} == {
        "id": approval_issue_id("a1"),
        "teamId": TEAM,  # the hub issue's team
        "parentId": HUB,
        "title": "[HIGH] Approval: merge_pr: merge acme/api#7 into main",
        "priority": 2,
        "labelIds": ["l-approval", "l-risk"],  # "missing" is left out
    }
    assert approval_issue_id("a1") == linear_uuid("approval:a1")
    assert ref == {
        "issue_id": approval_issue_id("a1"),
        "identifier": None,
        "url": None,
        "team_id": TEAM,
    }


async def test_the_configured_team_is_used_and_the_hub_team_read_once() -> None:
    writer, linear = FakeWriter("linear"), FakeLinear()
    await channel(writer, linear, team_id="t-ops").announce(approval())
    assert writer.calls[0].body["variables"]["input"]["teamId"] == "t-ops"
    assert [c[0] for c in linear.calls] == ["team_directory"]
    linear = FakeLinear(issues={HUB: {"id": HUB, "team": {"id": TEAM}}})
    ch = channel(FakeWriter("linear"), linear, labels=())
    await ch.announce(approval("a1"))
    await ch.announce(approval("a2"))
    assert [c[0] for c in linear.calls] == ["issue_team"]


@pytest.mark.parametrize(("risk", "priority"), [("critical", 1), ("high", 2), ("medium", 3)])
async def test_priority_follows_the_risk(risk: str, priority: int) -> None:
    writer = FakeWriter("linear")
    await channel(writer, team_id=TEAM).announce(approval(risk=risk))
    assert writer.calls[0].body["variables"]["input"]["priority"] == priority


async def test_the_description_says_what_why_who_until_when_and_how() -> None:
    writer = FakeWriter("linear")
    await channel(writer, team_id=TEAM).announce(approval())
    text = writer.calls[0].body["variables"]["input"]["description"]
    for said in (
        "**Task:** `t1`, route `pr-review`",
        "**Risk:** high (rule `merge-main`)",
        '"method": "squash"',  # the params
        "All checks pass and two reviews approve.",  # the reasoning
        "`PUT github /repos/acme/api/pulls/7/merge`",  # the exact request …
        '"merge_method": "squash"',  # … and its body
        "- [ ] CI is green",
        "- **lead**: `user@example.com`",
        "**Expires:** 2023-11-14 23:13 UTC",
        "move this issue to **Approved**, or add the label **Approved**",
        "move this issue to **Denied**, or add the label **Denied**",
        "`/approve <reason>`, `/deny <reason>` or `/question <what you need to know>`",
    ):
        assert said in text, said
    assert "justification" not in text


async def test_a_level_that_needs_a_justification_says_where_to_give_it() -> None:
    writer = FakeWriter("linear")
    await channel(writer, team_id=TEAM).announce(approval(risk="critical"))
    text = writer.calls[0].body["variables"]["input"]["description"]
    assert "approve by comment, `/approve <justification>`" in text
    assert "- **owner**: no Linear user is configured" in text


def test_a_long_summary_makes_a_short_title() -> None:
    title = title_of(approval(summary="comment: " + "word " * 100))
    assert len(title) == 120 and title.startswith("[HIGH] Approval: comment: word")
    assert title.endswith("…") and "\n" not in title


async def test_an_issue_already_there_is_read_back_not_made_twice() -> None:
    taken = PlatformPermanentError("linear: The issue already exists.", platform="linear")
    writer = FakeWriter("linear").fail(taken)
    issue = {"id": approval_issue_id("a1"), "identifier": "KOR-12", "url": "https://l/KOR-12"}
    linear = FakeLinear(issues={issue["id"]: issue})
    ref = await channel(writer, linear, team_id=TEAM).announce(approval())
    assert ref == {
        "issue_id": issue["id"],
        "identifier": "KOR-12",
        "url": issue["url"],
        "team_id": TEAM,
    }
    writer = FakeWriter("linear").fail(taken)
    with pytest.raises(PlatformPermanentError, match="already exists"):
        await channel(writer, FakeLinear(), team_id=TEAM).announce(approval())


async def test_without_a_team_or_a_reader_the_announce_fails_as_a_platform_error() -> None:
    ch = LinearChannel(FakeWriter("linear"), hub(), policies())
    with pytest.raises(PlatformPermanentError, match="no team_id"):
        await ch.announce(approval())


# --- what came of it -----------------------------------------------------------------------


def decided(**changes: Any) -> Approval:
    fields = {
        "decided_at": T0 + 60,
        "decided_by": "linear:user@example.com",
        "decided_via": "linear",
    }
    return approval(channels={"linear": {"issue_id": "i-posted"}}, **{**fields, **changes})


async def told(outcome: DecisionOutcome, request: DecisionRequest | None = None) -> tuple[str, Any]:
    writer = FakeWriter("linear")
    await channel(writer).decided(outcome.approval, outcome, request)
    [sent] = writer.calls
    assert graphql_problems(sent.body) == []
    fields = sent.body["variables"]["input"]
    assert fields["issueId"] == "i-posted"
    return str(fields["body"]), fields.get("id")


async def test_an_approval_made_here_is_confirmed_and_says_it_has_no_reason(
    real: dict[str, Any],
) -> None:
    request = decide(channel(), delivery(real, state=APPROVED_STATE))
    outcome = DecisionOutcome(True, decided(status=ApprovalStatus.APPROVED))
    text, comment_id = await told(outcome, request)
    assert text.startswith("✅ **Approved** by `linear:user@example.com`")
    assert "(moved to Approved)" in text and "carries no reason" in text
    assert comment_id == linear_uuid("approval:a1:approved")


async def test_a_denial_made_elsewhere_is_told_with_its_reason() -> None:
    denied = decided(
        status=ApprovalStatus.DENIED, decided_by="slack:U1", decided_via="slack", reason="not now"
    )
    text, _ = await told(DecisionOutcome(True, denied))
    assert text == "❌ **Denied** by `slack:U1`: the change will not be made.\n\nReason: not now"


async def test_an_expiry_is_told_as_such() -> None:
    expired = decided(status=ApprovalStatus.EXPIRED, decided_by="taskyard", decided_via="expiry")
    text, _ = await told(DecisionOutcome(True, expired))
    assert text.startswith("⌛ **Expired** at 2023-11-14 23:13 UTC")


async def test_a_refused_decision_says_why_and_that_the_issue_stays(real: dict[str, Any]) -> None:
    request = decide(channel(), delivery(real, state=APPROVED_STATE))
    why = "not authorised: linear:user@example.com holds none of the roles that decide high"
    text, comment_id = await told(DecisionOutcome(False, decided(), why), request)
    assert text == (
        f"⚠️ The approve decision by `linear:user@example.com` did not count: {why}. "
        "The request is still **pending**; taskyard does not move this issue back."
    )
    assert comment_id is None


async def test_an_outcome_told_twice_is_one_comment() -> None:
    taken = PlatformPermanentError("linear: The comment already exists.", platform="linear")
    comment_id = linear_uuid("approval:a1:approved")
    linear = FakeLinear(comment_refs={comment_id: {"id": comment_id, "url": "u"}})
    writer = FakeWriter("linear").fail(taken)
    outcome = DecisionOutcome(True, decided(status=ApprovalStatus.APPROVED))
    await channel(writer, linear).decided(outcome.approval, outcome, None)  # no error
    writer = FakeWriter("linear").fail(taken)
    with pytest.raises(PlatformPermanentError):
        await channel(writer, FakeLinear()).decided(outcome.approval, outcome, None)


async def test_each_question_asked_elsewhere_is_its_own_comment() -> None:
    asked = decided(decided_by="slack:U1", decided_via="slack", question="Which branch?")
    text, comment_id = await told(DecisionOutcome(True, asked))
    assert text == "❓ `slack:U1` asks for more information: Which branch?"
    assert comment_id is None
