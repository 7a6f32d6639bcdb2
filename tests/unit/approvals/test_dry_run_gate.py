"""`approvals.in_dry_run`: a dry run's gated action waits at the gate like a live one, its
request is never announced on the platforms' channels, and once approved the action is
recorded as planned (nothing sent); without the setting it is "would need approval"."""

from __future__ import annotations

from taskyard.actions.apply import apply_actions
from taskyard.actions.fakes import FakePlanner, FakeWriter
from taskyard.actions.models import Target, parse_action
from taskyard.approvals.policies import Identity
from taskyard.approvals.service import Approvals
from taskyard.config import Settings
from taskyard.records import ActionStatus, Approval, Decision
from taskyard.store import MemoryStore

LINEAR = Target(platform="linear", issue_id="i1", team_id="t1")
GATED = {"type": "remove_labels", "params": {"labels": ["wip"]}, "reasoning": "done"}


async def _apply(store: MemoryStore, approvals: Approvals, rehearse: bool) -> ActionStatus:
    writer = FakeWriter("linear")
    [record] = await apply_actions(
        "task1",
        "linear-triage",
        [parse_action("task1", 0, GATED)],
        LINEAR,
        planner=FakePlanner(),
        writers={"linear": writer},
        policy=approvals.policy,
        store=store,
        dry_run=True,
        gate=approvals.gate,
        approvals_in_dry_run=rehearse,
    )
    assert writer.calls == []
    return record.status


async def test_a_rehearsed_request_waits_is_not_announced_and_records_the_plan() -> None:
    store = MemoryStore()
    announced: list[Approval] = []

    async def announce(approval: Approval) -> Approval:
        announced.append(approval)
        return approval

    approvals = Approvals.from_settings(Settings(), store, announce=announce)
    assert await _apply(store, approvals, rehearse=True) is ActionStatus.AWAITING_APPROVAL
    [pending] = store.list_approvals(None)
    assert pending.details["dry_run"] is True and announced == []
    outcome = await approvals.decisions.decide(pending.id, Decision.APPROVE, Identity("cli", "ana"))
    assert outcome.accepted
    assert await _apply(store, approvals, rehearse=True) is ActionStatus.DRY_RUN
    record = store.get_action_by_key(pending.action_key)
    assert record is not None and record.sent == 0
    assert record.reason == "approved by cli:ana (medium: remove-labels); dry run: nothing sent"


async def test_without_rehearsal_no_request_is_raised() -> None:
    store = MemoryStore()
    approvals = Approvals.from_settings(Settings(), store)
    assert await _apply(store, approvals, rehearse=False) is ActionStatus.DRY_RUN
    assert store.list_approvals(None) == []
