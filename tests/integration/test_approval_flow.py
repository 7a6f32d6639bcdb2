"""Gated actions end to end in the executor, on every store: the low-risk action is applied at
once, the risky one waits (the task holds no worker), a decision hands the task back and the
action is applied exactly once; a denial skips and reports it; an expiry is not a denial."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from taskyard.approvals.policies import Identity
from taskyard.approvals.service import Sweeper
from taskyard.models import TaskStatus
from taskyard.records import ActionStatus, ApprovalStatus, Decision
from taskyard.run.taskops import log_file
from taskyard.store.base import Store
from tests.integration.actions_harness import (
    ISSUE,
    LABELS,
    PlatformServer,
    gh,
    posts,
    result,
    settings_for,
    yards,
)

__all__ = ["gh", "yards"]  # fixtures

CLOSE = {"type": "close_issue", "params": {"reason": "completed"}, "reasoning": "fixed"}
ALICE = Identity("cli", "alice")


def gated(tmp_path: Path, gh: PlatformServer) -> Any:
    return settings_for(
        tmp_path,
        gh,
        result(LABELS, CLOSE, summary="Labelled and closed."),
        actions={"allow": {"r": ["add_labels", "close_issue", "comment"]}},
    )


def closes(gh: PlatformServer) -> list[Any]:
    return [r for r in gh.requests if r.method == "PATCH" and r.path == ISSUE]


async def test_a_risky_action_waits_and_is_applied_once_approved(
    tmp_path: Path, gh: PlatformServer, store: Store, yards: Any
) -> None:
    yard = yards(gated(tmp_path, gh), store, approvals=True)
    task = yard.queue_task()
    assert await yard.executor.run(task.id) == "awaiting_approval"
    waiting = store.get_task(task.id)
    assert waiting.status is TaskStatus.AWAITING_APPROVAL
    assert waiting.reason == "waiting for approval: close_issue (#1)"
    # The workspace was archived; the task says where, so its agent log is still found.
    assert waiting.workspace is not None and log_file(waiting) is not None
    records = yard.actions(task.id)
    assert records[0].status is ActionStatus.APPLIED  # low risk: at once
    assert records[1].status is ActionStatus.AWAITING_APPROVAL
    assert closes(gh) == [] and len(posts(gh, "/labels")) == 1
    [approval] = store.list_approvals(ApprovalStatus.PENDING, task.id)
    assert (approval.risk, approval.action_type, approval.action_key) == (
        "medium",
        "close_issue",
        records[1].key,
    )
    assert approval.details["requests"][0]["path"] == ISSUE
    assert approval.expires_at - approval.created_at == 30 * 60  # the medium policy
    assert store.tasks_to_dispatch(10) == []  # nothing runs while it waits

    outcome = await yard.approvals.decisions.decide(approval.id, Decision.APPROVE, ALICE, "ok")
    assert outcome.accepted and outcome.resumed
    [resumed] = store.tasks_to_dispatch(10)
    assert resumed.status is TaskStatus.APPLYING
    assert await yard.executor.run(task.id) == "succeeded"
    assert len(closes(gh)) == 1 and len(posts(gh, "/labels")) == 1  # each exactly once
    assert yard.actions(task.id)[1].status is ActionStatus.APPLIED
    assert await yard.executor.run(task.id) == "succeeded"  # a repeated run changes nothing
    assert len(closes(gh)) == 1


async def test_a_denied_action_is_skipped_and_the_denial_reported(
    tmp_path: Path, gh: PlatformServer, store: Store, yards: Any
) -> None:
    yard = yards(gated(tmp_path, gh), store, approvals=True)
    task = yard.queue_task()
    await yard.executor.run(task.id)
    [approval] = store.list_approvals(ApprovalStatus.PENDING, task.id)
    outcome = await yard.approvals.decisions.decide(
        approval.id, Decision.DENY, ALICE, "not yet: waiting for QA"
    )
    assert outcome.accepted and outcome.resumed
    assert await yard.executor.run(task.id) == "succeeded"
    assert closes(gh) == []
    record = yard.actions(task.id)[1]
    assert record.status is ActionStatus.SKIPPED
    assert record.reason == "denied by cli:alice via cli: not yet: waiting for QA"
    [report] = [c.json()["body"] for c in posts(gh, "/comments")]
    assert "Not applied: close_issue (denied by cli:alice via cli: not yet: waiting for QA)" in (
        report
    )


async def test_an_expired_request_ends_the_task_expired_not_denied(
    tmp_path: Path, gh: PlatformServer, store: Store, yards: Any
) -> None:
    yard = yards(gated(tmp_path, gh), store, approvals=True)
    task = yard.queue_task()
    await yard.executor.run(task.id)
    [approval] = store.list_approvals(ApprovalStatus.PENDING, task.id)
    later = Sweeper(store, 1.0, clock=lambda: approval.expires_at + 1)
    [expired] = later.sweep()
    assert expired.status is ApprovalStatus.EXPIRED and expired.decided_via == "expiry"
    assert await yard.executor.run(task.id) == "expired"
    done = store.get_task(task.id)
    assert done.reason == "approval expired, not applied: close_issue (#1)"
    assert yard.actions(task.id)[1].status is ActionStatus.EXPIRED
    assert closes(gh) == []
    [report] = [c.json()["body"] for c in posts(gh, "/comments")]
    assert "Nobody decided in time, so nothing risky was done" in report
    late = await yard.approvals.decisions.decide(approval.id, Decision.APPROVE, ALICE, "sorry")
    assert not late.accepted and late.why is not None and late.why.startswith("expired at")
    assert closes(gh) == []


async def test_only_a_holder_of_the_role_decides_and_every_refusal_is_recorded(
    tmp_path: Path, gh: PlatformServer, store: Store, yards: Any
) -> None:
    yard = yards(gated(tmp_path, gh), store, approvals=True)
    task = yard.queue_task()
    await yard.executor.run(task.id)
    [approval] = store.list_approvals(ApprovalStatus.PENDING, task.id)
    mallory = Identity("github", "mallory")  # the shipped roles name nobody on GitHub
    refused = await yard.approvals.decisions.decide(approval.id, Decision.APPROVE, mallory)
    assert not refused.accepted
    assert refused.why is not None and refused.why.startswith("not authorised: github:mallory")
    [attempt] = store.decision_attempts(approval.id)
    assert (attempt.actor, attempt.accepted) == ("github:mallory", False)
    assert store.get_approval(approval.id).status is ApprovalStatus.PENDING
    assert store.tasks_to_dispatch(10) == [] and closes(gh) == []


async def test_two_racing_decisions_exactly_one_wins(
    tmp_path: Path, gh: PlatformServer, store: Store, yards: Any
) -> None:
    yard = yards(gated(tmp_path, gh), store, approvals=True)
    task = yard.queue_task()
    await yard.executor.run(task.id)
    [approval] = store.list_approvals(ApprovalStatus.PENDING, task.id)
    decide = yard.approvals.decisions.decide
    outcomes = await asyncio.gather(
        decide(approval.id, Decision.APPROVE, Identity("cli", "alice"), "go"),
        decide(approval.id, Decision.DENY, Identity("web", "bob"), "stop"),
    )
    assert sorted(o.accepted for o in outcomes) == [False, True]
    loser = next(o for o in outcomes if not o.accepted)
    assert loser.why is not None and loser.why.startswith("already")
    assert await yard.executor.run(task.id) == "succeeded"
    assert len(closes(gh)) == (1 if outcomes[0].accepted else 0)


async def test_a_decision_before_the_task_waits_still_resumes_it(
    tmp_path: Path, gh: PlatformServer, store: Store, yards: Any
) -> None:
    yard = yards(gated(tmp_path, gh), store, approvals=True)
    task = yard.queue_task()
    gate = yard.approvals.gate
    request = gate.request

    async def decided_at_once(*args: Any, **kwargs: Any) -> Any:
        made = await request(*args, **kwargs)  # a fast approver decides before the task waits
        await yard.approvals.decisions.decide(made.id, Decision.APPROVE, ALICE, "quick")
        return made

    gate.request = decided_at_once  # type: ignore[method-assign]
    assert await yard.executor.run(task.id) == "applying"
    gate.request = request  # type: ignore[method-assign]
    assert [t.id for t in store.tasks_to_dispatch(10)] == [task.id]
    assert await yard.executor.run(task.id) == "succeeded"
    assert len(closes(gh)) == 1


POLICIES = """
levels:
  low: {approval: false}
  medium: {roles: [maintainer], timeout_minutes: 30, remind_at: 0.5, escalate_to: lead}
  high: {roles: [lead], timeout_minutes: 60}
  critical: {roles: [lead], timeout_minutes: 120}
roles:
  maintainer: {github: [octocat]}
  lead: {github: [boss]}
"""


async def test_the_request_is_posted_reminded_and_escalated_half_way(
    tmp_path: Path, gh: PlatformServer, store: Store, yards: Any
) -> None:
    policies = tmp_path / "policies.yaml"
    tmp_path.mkdir(parents=True, exist_ok=True)
    policies.write_text(POLICIES)
    settings = settings_for(
        tmp_path,
        gh,
        result(LABELS, CLOSE),
        actions={"allow": {"r": ["add_labels", "close_issue", "comment"]}},
        approvals={"policies": str(policies)},
    )
    yard = yards(settings, store, approvals=True, channels=True)
    task = yard.queue_task()
    assert await yard.executor.run(task.id) == "awaiting_approval"
    [approval] = store.list_approvals(ApprovalStatus.PENDING, task.id)
    [request] = [c.json()["body"] for c in posts(gh, "/comments")]
    assert f"<!-- taskyard:approval:{approval.id} -->" in request and "@octocat" in request
    assert approval.channels["github"]["number"] == 1
    boss = Identity("github", "boss")
    early = await yard.approvals.decisions.decide(approval.id, Decision.APPROVE, boss, "go")
    assert not early.accepted  # the lead is not a decider of medium… yet

    assert approval.remind_at == approval.created_at + 15 * 60
    sweeper = Sweeper(store, 1.0, clock=lambda: approval.remind_at + 1)
    assert sweeper.sweep() == [] and [a.id for a in sweeper.reminding] == [approval.id]
    assert yard.approvals.channels is not None
    await yard.approvals.channels.remind(sweeper.reminding[0])
    reminder = posts(gh, "/comments")[-1].json()["body"]
    assert reminder.startswith(f"⏰ Reminder: approval {approval.id}")
    assert "maintainer, lead" in reminder
    assert sweeper.sweep() == [] and len(sweeper.reminding) == 1  # reminded once only

    late = await yard.approvals.decisions.decide(approval.id, Decision.APPROVE, boss, "go")
    assert late.accepted and late.resumed  # escalated: the lead decides now
