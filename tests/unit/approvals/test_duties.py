"""Separation of duties: the task's trigger is refused as its approver, unless allowed."""

from __future__ import annotations

import pytest

from taskyard.approvals.duties import SELF_APPROVAL, Trigger, trigger_of
from taskyard.approvals.gate import Decisions
from taskyard.approvals.policies import ApprovalPolicies, Identity
from taskyard.exceptions import ConfigError
from taskyard.models import Event, Priority, Task, TaskStatus
from taskyard.records import Approval, ApprovalStatus, Decision
from taskyard.store.base import FOREVER, NewEvent
from taskyard.store.memory import MemoryStore
from tests.lifecycle_paths import drive

T0 = 1_700_000_000.0
GH = Trigger("github", ("Octocat", "583231"))


def policies(allow: bool = False) -> ApprovalPolicies:
    level = {"roles": ["maintainer"], "timeout_minutes": 60, "allow_self_approval": allow}
    return ApprovalPolicies.from_mapping(
        {
            "levels": {
                "low": {"approval": False},
                "medium": level,
                "high": level,
                "critical": level,
            },
            "roles": {
                "maintainer": {
                    "github": ["octocat", "hubot"],
                    "slack": ["U1", "U2"],
                    "linear": ["ann@example.com"],
                },
            },
        }
    )


@pytest.mark.parametrize(
    ("who", "is_trigger"),
    [
        (Identity("github", "octocat"), True),  # logins ignore case and a leading @
        (Identity("github", "@OCTOCAT"), True),
        (Identity("github", "583231"), True),  # the id the event also gave
        (Identity("github", "hubot"), False),
        (Identity("slack", "octocat"), False),  # another platform: not known to be them
        (Identity("cli", "Octocat"), True),  # an operator deciding as them
        (Identity("web", "octocat"), True),
        (Identity("web", "operator"), False),
    ],
)
def test_who_is_the_trigger(who: Identity, is_trigger: bool) -> None:
    assert GH.is_(who) is is_trigger


def linked_policies() -> ApprovalPolicies:
    data = {
        "levels": {"low": {"approval": False}}
        | {level: {"roles": ["maintainer"], "timeout_minutes": 60} for level in LEVELS},
        "roles": {"maintainer": {"github": ["octocat"], "slack": ["U1", "U2"]}},
        "people": {"mona": {"github": "Octocat", "slack": "U1", "linear": "mona@example.com"}},
    }
    return ApprovalPolicies.from_mapping(data)


LEVELS = ("medium", "high", "critical")


@pytest.mark.parametrize(
    ("who", "is_trigger"),
    [
        (Identity("slack", "U1"), True),  # the same person on Slack, linked by `people`
        (Identity("linear", "MONA@example.com"), True),
        (Identity("slack", "U2"), False),  # somebody else
        (Identity("github", "@octocat"), True),
    ],
)
def test_people_link_a_trigger_across_platforms(who: Identity, is_trigger: bool) -> None:
    assert GH.is_(who, linked_policies()) is is_trigger
    assert not GH.is_(Identity("slack", "U1"))  # without the policies' link: not known


def test_an_id_given_to_two_people_is_refused() -> None:
    data = {
        "levels": {"low": {"approval": False}}
        | {level: {"timeout_minutes": 60} for level in LEVELS},
        "people": {"mona": {"slack": "U1"}, "ann": {"slack": ["U2", "U1"]}},
    }
    with pytest.raises(ConfigError, match="slack id 'U1' is both 'mona' and 'ann'"):
        ApprovalPolicies.from_mapping(data)


def test_slack_ids_compare_exactly_and_linear_emails_without_case() -> None:
    assert Trigger("slack", ("U1",)).is_(Identity("slack", "U1"))
    assert not Trigger("slack", ("U1",)).is_(Identity("slack", "u1"))
    assert Trigger("linear", ("Ann", "Ann@Example.com")).is_(Identity("linear", "ann@example.com"))


def test_a_trigger_reads_back_and_bad_records_are_none() -> None:
    assert Trigger.from_json(GH.to_json()) == GH
    for bad in (None, "x", {"platform": "github"}, {"platform": 1, "ids": ["a"]},
                {"platform": "github", "ids": ["", 3]}):  # fmt: skip
        assert Trigger.from_json(bad) is None


def seed(store: MemoryStore, spec: dict[str, object], actor: str | None = "octocat") -> Approval:
    event = Event("e1", "github", "github:issues.opened", "d1", "acme/api#1", actor, T0,
                  Priority.P2, {}, b"{}", "h1")  # fmt: skip
    store.insert_events([NewEvent(event, "e1", FOREVER)], T0)
    task = Task("t1", "e1", "r", "codex", TaskStatus.QUEUED, Priority.P2, T0, T0, "task-t1",
                spec)  # fmt: skip
    store.record_routing([], [task])
    store.mark_task_dispatched("t1", "task-t1")
    drive(store, "t1", TaskStatus.AWAITING_APPROVAL)
    return store.create_approval(
        Approval(
            "a1",
            "t1",
            "t1.0.k",
            "r",
            "close_issue",
            "medium",
            "rule",
            "close it",
            {},
            ApprovalStatus.PENDING,
            T0,
            T0 + 3600,
        )
    )


def test_the_trigger_comes_from_the_spec_else_from_the_event() -> None:
    store = MemoryStore()
    seed(store, {"trigger": GH.to_json()})
    assert trigger_of(store, "t1") == GH
    assert trigger_of(store, "gone") is None
    old = MemoryStore()
    seed(old, {})
    assert trigger_of(old, "t1") == Trigger("github", ("octocat",))
    nobody = MemoryStore()
    seed(nobody, {}, actor=None)
    assert trigger_of(nobody, "t1") is None


async def test_the_trigger_cannot_approve_but_may_deny_and_another_may_approve() -> None:
    store = MemoryStore()
    seed(store, {"trigger": GH.to_json()})
    decisions = Decisions(store, policies(), clock=lambda: T0 + 60)
    refused = await decisions.decide("a1", Decision.APPROVE, Identity("github", "octocat"), "ok")
    assert not refused.accepted
    assert refused.why == f"{SELF_APPROVAL} (github:octocat started it; medium risk)"
    as_operator = await decisions.decide("a1", Decision.APPROVE, Identity("cli", "octocat"))
    assert as_operator.why is not None and as_operator.why.startswith(SELF_APPROVAL)
    attempts = store.decision_attempts("a1")
    assert [(a.actor, a.accepted, a.why) for a in attempts] == [
        ("github:octocat", False, refused.why),
        ("cli:octocat", False, as_operator.why),
    ]
    assert store.get_approval("a1").status is ApprovalStatus.PENDING
    accepted = await decisions.decide("a1", Decision.APPROVE, Identity("github", "hubot"), "ok")
    assert accepted.accepted and store.get_approval("a1").decided_by == "github:hubot"


async def test_the_trigger_cannot_approve_from_another_platform_they_are_linked_on() -> None:
    store = MemoryStore()
    seed(store, {"trigger": GH.to_json()})
    decisions = Decisions(store, linked_policies(), clock=lambda: T0 + 60)
    refused = await decisions.decide("a1", Decision.APPROVE, Identity("slack", "U1"), "ok")
    assert refused.why == f"{SELF_APPROVAL} (slack:U1 started it; medium risk)"
    accepted = await decisions.decide("a1", Decision.APPROVE, Identity("slack", "U2"), "ok")
    assert accepted.accepted and store.get_approval("a1").decided_by == "slack:U2"


async def test_the_trigger_may_deny_their_own_tasks_action() -> None:
    store = MemoryStore()
    seed(store, {"trigger": GH.to_json()})
    decisions = Decisions(store, policies(), clock=lambda: T0 + 60)
    denied = await decisions.decide("a1", Decision.DENY, Identity("github", "octocat"), "no")
    assert denied.accepted and store.get_approval("a1").status is ApprovalStatus.DENIED


async def test_a_policy_may_allow_self_approval() -> None:
    store = MemoryStore()
    seed(store, {"trigger": GH.to_json()})
    decisions = Decisions(store, policies(allow=True), clock=lambda: T0 + 60)
    outcome = await decisions.decide("a1", Decision.APPROVE, Identity("github", "octocat"))
    assert outcome.accepted


def test_self_approval_is_off_by_default_in_every_shipped_level() -> None:
    shipped = ApprovalPolicies.load(None)
    assert not any(p.allow_self_approval for p in shipped.levels.values())
