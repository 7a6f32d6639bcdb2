"""The Linear approval channel against the Linear test server (every document executed
against Linear's schema), with a real store: the request becomes a sub-issue of the hub with
a fixed id (a second announce makes none), and the real `Issue` update delivery, moved to
Approved by someone, decides it through `ApprovalChannels` — or is refused and recorded."""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from taskyard.actions.directory import LinearDirectory
from taskyard.approvals.channels import ApprovalChannels
from taskyard.approvals.channels.linear import LinearChannel, approval_issue_id
from taskyard.approvals.gate import Decisions
from taskyard.approvals.policies import ApprovalPolicies
from taskyard.config import LinearApprovalHub
from taskyard.models import Priority, Task, TaskStatus
from taskyard.platforms import github_write as gw
from taskyard.platforms.linear import LinearClient
from taskyard.platforms.linear_write import LinearWriter
from taskyard.records import Approval, ApprovalStatus
from taskyard.store.base import Store
from tests.lifecycle_paths import drive
from tests.linear_workspace import LinearWorkspace, operation_name, stable_id
from tests.platform_servers import PlatformServer, linear_server
from tests.unit.routing.events import event_for

T0 = 1_700_000_000.0
KEY = "lin_api_APPROVALSkeythatmustneverleak"
HUB = stable_id("hub", "approvals")
OTHER = stable_id("user", "other")


@pytest.fixture
def real(shared_dir: Path) -> dict[str, Any]:
    """The real Issue update delivery (an issue moved to Todo, by its assignee)."""
    path = shared_dir / "webhooks" / "linear" / "issue.update.state_change.json"
    payload: dict[str, Any] = json.loads(path.read_text())
    return payload


def team_of(real: dict[str, Any]) -> str:
    return str(real["data"]["team"]["id"])


def actor_of(real: dict[str, Any]) -> dict[str, Any]:
    """The delivery's person as the `actor` Linear sends today (this 2021 capture has none)."""
    person = real["data"]["assignee"]
    return {"id": person["id"], "name": person["name"], "email": person["name"], "type": "user"}


@pytest.fixture
def workspace(real: dict[str, Any]) -> LinearWorkspace:
    ws = LinearWorkspace(url_key="korosuke613")
    ws.add_delivered_issue(real)  # its team, states and people agree with the delivery
    team = team_of(real)
    ws.add_state(team, "Approved", "completed")
    ws.add_state(team, "Denied", "canceled")
    ws.add_label("approval", team)
    ws.add_user(OTHER, "Other Person", "other@example.com")
    ws.add_issue(team, "Approval requests", issue_id=HUB)
    return ws


@pytest.fixture
def linear(workspace: LinearWorkspace) -> Iterator[PlatformServer]:
    with linear_server(workspace) as server:
        yield server
        assert server.problems == []
        assert all(KEY not in r.everything_but_auth() for r in server.requests)


@pytest.fixture
async def channel(linear: PlatformServer) -> AsyncIterator[LinearChannel]:
    writer = LinearWriter(KEY, url=linear.base_url)
    reader = LinearClient(KEY, url=linear.base_url)
    hub = LinearApprovalHub(hub_issue_id=HUB)  # no team: the hub issue's
    try:
        yield LinearChannel(writer, hub, POLICIES, LinearDirectory(reader, 0), reader=reader)
    finally:
        await writer.aclose()
        await reader.aclose()


POLICIES = ApprovalPolicies.from_mapping(
    {
        "levels": {
            "low": {"approval": False},
            **{
                level: {"roles": ["lead"], "timeout_minutes": 60, "checklist": ["CI is green"]}
                for level in ("medium", "high", "critical")
            },
        },
        "roles": {"lead": {"linear": ["user@example.com"]}},  # the delivery's person
    }
)


def approval(aid: str = "a1") -> Approval:
    return Approval(
        id=aid,
        task_id="t1",
        action_key=f"t1.0.{aid}",
        route="pr-review",
        action_type="merge_pr",
        risk="high",
        rule="merge-main",
        summary="merge_pr: squash-merge acme/api#7",
        details={
            "params": {"number": 7, "method": "squash"},
            "reasoning": "Checks pass; two approvals.",
            "requests": [gw.merge_pr("acme/api", 7, "squash").to_json()],
            "roles": ["lead"],
            "checklist": ["CI is green"],
            "justification_required": False,
        },
        status=ApprovalStatus.PENDING,
        created_at=T0,
        expires_at=T0 + 3600,
    )


def creates(server: PlatformServer) -> list[Any]:
    return [r for r in server.requests if operation_name(r.json()) == "IssueCreate"]


async def test_the_request_is_one_sub_issue_of_the_hub_however_often_announced(
    channel: LinearChannel, workspace: LinearWorkspace, linear: PlatformServer, real: Any
) -> None:
    ref = await channel.announce(approval())
    issue = workspace.issue(approval_issue_id("a1"))
    team = team_of(real)
    assert (issue["parentId"], issue["teamId"], issue["priority"]) == (HUB, team, 2)
    assert issue["title"] == "[HIGH] Approval: merge_pr: squash-merge acme/api#7"
    assert issue["labelIds"] == [workspace.label_id("approval", team)]
    assert "- **lead**: `user@example.com`" in issue["description"]
    assert ref == {
        "issue_id": issue["id"],
        "identifier": issue["identifier"],
        "url": issue["url"],
        "team_id": team,
    }
    count = len(workspace.issues)
    assert await channel.announce(approval()) == ref  # Linear refused the taken id
    assert len(workspace.issues) == count and len(creates(linear)) == 2
    children = [i for i in workspace.issues.values() if i["parentId"] == HUB]
    assert [c["id"] for c in children] == [issue["id"]]


def waiting_task(store: Store) -> None:
    task = Task(
        id="t1",
        event_id="e-t1",
        route="pr-review",
        agent="codex",
        status=TaskStatus.QUEUED,
        priority=Priority.P2,
        created_at=T0,
        updated_at=T0,
        workflow_id="task-t1",
    )
    store.record_routing([], [task])
    store.mark_task_dispatched("t1", "task-t1")
    assert drive(store, "t1", TaskStatus.AWAITING_APPROVAL)


async def announced(store: Store, channel: LinearChannel) -> tuple[ApprovalChannels, Approval]:
    waiting_task(store)
    stored = store.create_approval(approval())
    channels = ApprovalChannels(store, Decisions(store, POLICIES, clock=lambda: T0 + 60), [channel])
    return channels, await channels.announce(stored)


def moved_to_approved(
    real: dict[str, Any], workspace: LinearWorkspace, issue_id: str, actor: dict[str, Any]
) -> dict[str, Any]:
    """The real delivery, about the approval issue, moved to Approved by `actor`."""
    payload = copy.deepcopy(real)
    issue = workspace.issue(issue_id)
    state = workspace.states[
        next(k for k, s in workspace.states.items() if s["name"] == "Approved")
    ]
    payload["data"].update(
        id=issue_id,
        identifier=issue["identifier"],
        title=issue["title"],
        parentId=HUB,
        stateId=state["id"],
        state={"id": state["id"], "name": "Approved", "color": "#5e6ad2", "type": "completed"},
    )
    payload["url"] = issue["url"]
    payload["actor"] = actor
    return payload


async def test_moving_the_issue_to_approved_decides_it_through_the_channels(
    store: Store, channel: LinearChannel, workspace: LinearWorkspace, real: Any
) -> None:
    channels, posted = await announced(store, channel)
    issue_id = posted.channels["linear"]["issue_id"]
    assert issue_id == approval_issue_id("a1")
    payload = moved_to_approved(real, workspace, issue_id, actor_of(real))
    said = await channels.intercept(event_for("linear", payload), payload)
    assert said == "approval a1: approve by linear:user@example.com accepted"
    decided = store.get_approval("a1")
    assert (decided.status, decided.decided_by, decided.decided_via, decided.reason) == (
        ApprovalStatus.APPROVED,
        "linear:user@example.com",
        "linear",
        None,
    )
    assert store.get_task("t1").status is TaskStatus.APPLYING  # handed back to apply
    [comment] = workspace.comments_of(issue_id)
    assert comment["body"].startswith("✅ **Approved** by `linear:user@example.com`")
    assert "(moved to Approved)" in comment["body"]


async def test_someone_without_the_role_is_refused_and_recorded(
    store: Store, channel: LinearChannel, workspace: LinearWorkspace, real: Any
) -> None:
    channels, posted = await announced(store, channel)
    issue_id = posted.channels["linear"]["issue_id"]
    other = {"id": OTHER, "name": "Other Person", "email": "other@example.com", "type": "user"}
    payload = moved_to_approved(real, workspace, issue_id, other)
    said = await channels.intercept(event_for("linear", payload), payload)
    assert said is not None and said.startswith(
        "approval a1: approve by linear:other@example.com refused (not authorised"
    )
    assert store.get_approval("a1").status is ApprovalStatus.PENDING
    [attempt] = store.decision_attempts("a1")
    assert (attempt.actor, attempt.via, attempt.accepted) == (
        "linear:other@example.com",
        "linear",
        False,
    )
    assert attempt.why is not None and attempt.why.startswith("not authorised")
    assert store.get_task("t1").status is TaskStatus.AWAITING_APPROVAL
    [comment] = workspace.comments_of(issue_id)
    assert "did not count: not authorised" in comment["body"]
    assert "taskyard does not move this issue back" in comment["body"]


async def test_a_real_delivery_of_another_issue_is_left_to_routing(
    store: Store, channel: LinearChannel, real: Any
) -> None:
    channels, _ = await announced(store, channel)
    payload = {**real, "actor": actor_of(real)}  # KOR-11 moved to Todo: no approval issue
    assert await channels.intercept(event_for("linear", payload), payload) is None


def commented(
    shared_dir: Path, issue_id: str, body: str, actor: dict[str, Any] | None
) -> dict[str, Any]:
    """The real `Comment.create` delivery, on `issue_id`, saying `body` (by `actor`; the
    sample itself names its author only by `userId`)."""
    payload: dict[str, Any] = json.loads(
        (shared_dir / "webhooks" / "linear" / "comment.create.sdk-test.json").read_text()
    )
    payload["data"].update(issueId=issue_id, body=body)
    if actor is not None:
        payload["actor"] = actor
    return payload


async def test_a_comment_gives_the_justification_a_state_change_cannot(
    store: Store,
    linear: PlatformServer,
    workspace: LinearWorkspace,
    real: Any,
    shared_dir: Path,
) -> None:
    policies = ApprovalPolicies.from_mapping(
        {
            "levels": {
                "low": {"approval": False},
                **{lv: {"roles": ["lead"], "timeout_minutes": 60} for lv in ("medium", "high")},
                "critical": {
                    "roles": ["lead"],
                    "timeout_minutes": 60,
                    "justification_required": True,
                },
            },
            "roles": {"lead": {"linear": ["user@example.com"]}},
        }
    )
    writer = LinearWriter(KEY, url=linear.base_url)
    hub = LinearApprovalHub(hub_issue_id=HUB, team_id=team_of(real))
    made = LinearChannel(writer, hub, policies)
    waiting_task(store)
    critical = replace_risk(approval(), "critical")
    channels = ApprovalChannels(store, Decisions(store, policies, clock=lambda: T0 + 60), [made])
    posted = await channels.announce(store.create_approval(critical))
    issue_id = posted.channels["linear"]["issue_id"]
    assert (
        "approve by comment, `/approve <justification>`" in workspace.issue(issue_id)["description"]
    )

    # Moving it to Approved says no why: refused.
    payload = moved_to_approved(real, workspace, issue_id, actor_of(real))
    said = await channels.intercept(event_for("linear", payload), payload)
    assert said is not None and "refused (a justification is required" in said

    # A comment elsewhere that happens to start with /approve is routed as usual.
    elsewhere = commented(shared_dir, stable_id("issue", "other"), "/approve", actor_of(real))
    assert await channels.intercept(event_for("linear", elsewhere), elsewhere) is None

    # The sample's author, named only by userId, holds no role: refused and recorded.
    payload = commented(shared_dir, issue_id, "/approve fine by me", None)
    said = await channels.intercept(event_for("linear", payload), payload)
    author = payload["data"]["userId"]
    assert said is not None and f"by linear:{author} refused (not authorised" in said

    # The lead, by comment, with the justification: approved, the reason kept.
    payload = commented(shared_dir, issue_id, "/approve\nrollback plan: revert #7", actor_of(real))
    said = await channels.intercept(event_for("linear", payload), payload)
    assert said == "approval a1: approve by linear:user@example.com accepted"
    decided = store.get_approval("a1")
    assert (decided.status, decided.reason) == (ApprovalStatus.APPROVED, "rollback plan: revert #7")
    assert [(a.actor, a.accepted) for a in store.decision_attempts("a1")] == [
        ("linear:user@example.com", False),
        (f"linear:{author}", False),
        ("linear:user@example.com", True),
    ]
    assert store.get_task("t1").status is TaskStatus.APPLYING
    assert linear.problems == []
    await writer.aclose()


def replace_risk(made: Approval, risk: str) -> Approval:
    details = {**made.details, "justification_required": risk == "critical"}
    return dataclasses.replace(made, risk=risk, details=details)
