"""`Approvals.decide_and_tell`, which the API, the web UI and the CLI share: the channels hear
of a decision that counted, and a channel that cannot be told never undoes it; and
`resubmit`, which asks again only for an expired request."""

from __future__ import annotations

import logging

import pytest

from taskyard.approvals.policies import Identity
from taskyard.approvals.service import Approvals, NotResubmitted, resubmit
from taskyard.config import Settings
from taskyard.exceptions import NotFound
from taskyard.records import Approval, ApprovalStatus, Decision, DecisionOutcome
from taskyard.store import MemoryStore

T0 = 1_700_000_000.0
ANA = Identity("cli", "ana")


def request(store: MemoryStore, aid: str = "a1", **kw: object) -> Approval:
    fields: dict[str, object] = {
        "id": aid,
        "task_id": "t1",
        "action_key": f"t1.0.{aid}",
        "route": "linear-triage",
        "action_type": "remove_labels",
        "risk": "medium",
        "rule": "remove-labels",
        "summary": "remove wip",
        "details": {},
        "status": ApprovalStatus.PENDING,
        "created_at": T0,
        "expires_at": 4_000_000_000.0,
    }
    fields.update(kw)
    return store.create_approval(Approval(**fields))  # type: ignore[arg-type]


def approvals_telling(store: MemoryStore, told: list[DecisionOutcome], fail: bool) -> Approvals:
    approvals = Approvals.from_settings(Settings(), store)

    async def tell(outcome: DecisionOutcome) -> None:
        told.append(outcome)
        if fail:
            raise RuntimeError("slack is down")

    approvals.tell_apart = tell  # type: ignore[method-assign]
    return approvals


async def test_a_decision_that_counts_is_told() -> None:
    store, told = MemoryStore(), list[DecisionOutcome]()
    request(store)
    approvals = approvals_telling(store, told, fail=False)
    outcome = await approvals.decide_and_tell("a1", Decision.DENY, ANA, "not now")
    assert outcome.accepted and outcome.approval.status is ApprovalStatus.DENIED
    assert told == [outcome]


async def test_a_refused_decision_is_not_told() -> None:
    store, told = MemoryStore(), list[DecisionOutcome]()
    request(store)
    approvals = approvals_telling(store, told, fail=False)
    await approvals.decide_and_tell("a1", Decision.DENY, ANA, "not now")
    again = await approvals.decide_and_tell("a1", Decision.APPROVE, ANA, "ok")
    assert not again.accepted and again.why == "already denied by cli:ana (cli)"
    assert len(told) == 1


async def test_a_channel_that_cannot_be_told_leaves_the_decision_standing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store, told = MemoryStore(), list[DecisionOutcome]()
    request(store)
    approvals = approvals_telling(store, told, fail=True)
    with caplog.at_level(logging.ERROR):
        outcome = await approvals.decide_and_tell("a1", Decision.APPROVE, ANA)
    assert outcome.accepted and store.get_approval("a1").status is ApprovalStatus.APPROVED
    assert [r.message for r in caplog.records] == ["approval outcome not told"]


async def test_an_unknown_request_is_not_found() -> None:
    approvals = approvals_telling(MemoryStore(), [], fail=False)
    with pytest.raises(NotFound):
        await approvals.decide_and_tell("nope", Decision.APPROVE, ANA)


def test_only_an_expired_request_is_resubmitted() -> None:
    store = MemoryStore()
    request(store)
    with pytest.raises(NotResubmitted, match="a1 is pending; only an expired request"):
        resubmit(store, "a1", T0 + 10)
    with pytest.raises(NotFound):
        resubmit(store, "nope", T0 + 10)


def test_a_resubmit_whose_task_is_gone_stores_nothing() -> None:
    store = MemoryStore()
    request(store, status=ApprovalStatus.EXPIRED)
    with pytest.raises(NotResubmitted, match="task t1 is no longer waiting for this action"):
        resubmit(store, "a1", T0 + 10)
    assert [a.id for a in store.list_approvals(None)] == ["a1"]
