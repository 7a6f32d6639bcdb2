"""Approval policies: what each level asks for, who may decide, invalid files."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from taskyard.approvals.policies import ApprovalPolicies, Identity, LevelPolicy
from taskyard.approvals.risk import RiskLevel
from taskyard.exceptions import ConfigError

LOW, MEDIUM, HIGH, CRITICAL = RiskLevel


def gated(roles: list[str], **fields: Any) -> dict[str, Any]:
    return {"roles": roles, "timeout_minutes": 30, **fields}


def config(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "levels": {
            "low": {"approval": False},
            "medium": gated(
                ["maintainer", "lead"],
                checklist=["Read the diff"],
                remind_at=0.5,
                escalate_to="lead",
            ),
            "high": gated(["lead"], timeout_minutes=60, justification_required=True),
            "critical": gated(["lead", "owner"], timeout_minutes=120),
        },
        "roles": {
            "maintainer": {
                "github": ["Octocat"],
                "linear": ["Dev@Example.com", "4a5c9e1e-0000-4000-8000-00000000000a"],
                "slack": ["U0MAINT"],
            },
            "lead": {"github": "hubot", "slack": ["U0LEAD"]},
            "owner": {"linear": ["boss@example.com"]},
        },
    }
    data.update(changes)
    return data


@pytest.fixture
def policies() -> ApprovalPolicies:
    return ApprovalPolicies.from_mapping(config())


def test_each_level_gets_its_policy(policies: ApprovalPolicies) -> None:
    assert policies.policy_for(LOW) == LevelPolicy(approval=False)
    assert policies.policy_for("medium") == LevelPolicy(
        approval=True,
        roles=("maintainer", "lead"),
        timeout=1800.0,
        checklist=("Read the diff",),
        justification_required=False,
        remind_at=0.5,
        escalate_to="lead",
    )
    high = policies.policy_for(HIGH)
    assert (high.timeout, high.justification_required, high.remind_at) == (3600.0, True, None)
    assert policies.policy_for(CRITICAL).roles == ("lead", "owner")


@pytest.mark.parametrize(
    ("who", "roles"),
    [
        (Identity("github", "octocat"), {"maintainer"}),  # GitHub logins ignore case
        (Identity("github", "@OCTOCAT"), {"maintainer"}),
        (Identity("github", "hubot"), {"lead"}),
        (Identity("github", "U0MAINT"), set()),  # a Slack id is no GitHub login
        (Identity("linear", "dev@example.COM"), {"maintainer"}),  # emails ignore case
        (Identity("linear", "4A5C9E1E-0000-4000-8000-00000000000A"), {"maintainer"}),
        (Identity("linear", "boss@example.com"), {"owner"}),
        (Identity("slack", "U0LEAD"), {"lead"}),
        (Identity("slack", "u0lead"), set()),  # Slack ids compare exactly
        (Identity("cli", "root"), set()),  # operators hold no roles
    ],
)
def test_roles_of(policies: ApprovalPolicies, who: Identity, roles: set[str]) -> None:
    assert policies.roles_of(who) == roles


def test_one_person_may_hold_several_roles() -> None:
    data = config()
    data["roles"]["owner"]["github"] = ["HUBOT"]
    policies = ApprovalPolicies.from_mapping(data)
    assert policies.roles_of(Identity("github", "hubot")) == {"lead", "owner"}


@pytest.mark.parametrize(
    ("level", "who", "allowed"),
    [
        (MEDIUM, Identity("github", "octocat"), True),
        (MEDIUM, Identity("slack", "U0LEAD"), True),
        (HIGH, Identity("github", "octocat"), False),  # a maintainer is no lead
        (HIGH, Identity("github", "hubot"), True),
        (CRITICAL, Identity("linear", "Boss@Example.com"), True),
        (CRITICAL, Identity("slack", "U0MAINT"), False),
        (CRITICAL, Identity("github", "stranger"), False),
        (CRITICAL, Identity("cli", "alice"), True),  # operators always may
        (HIGH, Identity("web", "token"), True),
        (LOW, Identity("cli", "alice"), False),  # nothing to decide without approval
        (LOW, Identity("github", "hubot"), False),
    ],
)
def test_may_decide(
    policies: ApprovalPolicies, level: RiskLevel, who: Identity, allowed: bool
) -> None:
    assert policies.may_decide(level, who) is allowed


def test_an_escalated_request_may_also_be_decided_by_the_escalation_role() -> None:
    data = config()
    data["levels"]["high"]["escalate_to"] = "owner"
    policies = ApprovalPolicies.from_mapping(data)
    owner = Identity("linear", "boss@example.com")
    assert not policies.may_decide(HIGH, owner)
    assert policies.may_decide(HIGH, owner, escalated=True)
    assert not policies.may_decide(HIGH, Identity("github", "octocat"), escalated=True)


def test_people_of_a_role_per_platform(policies: ApprovalPolicies) -> None:
    assert policies.people_of("lead") == {"github": ("hubot",), "linear": (), "slack": ("U0LEAD",)}
    with pytest.raises(KeyError, match="unknown role 'leads'"):
        policies.people_of("leads")


def test_identity_names_a_known_platform() -> None:
    assert Identity("web", "session-1").operator
    assert not Identity("slack", "U1").operator
    with pytest.raises(ValueError, match="unknown platform 'discord'"):
        Identity("discord", "x")
    with pytest.raises(ValueError, match="needs an id"):
        Identity("github", " ")


def test_shipped_defaults_gate_all_but_low_and_name_nobody_yet() -> None:
    shipped = ApprovalPolicies.load(None)
    assert not shipped.policy_for(LOW).approval
    medium, high, critical = (shipped.policy_for(level) for level in (MEDIUM, HIGH, CRITICAL))
    assert (medium.roles, medium.timeout, medium.justification_required) == (
        ("maintainer", "lead"),
        1800.0,
        False,
    )
    assert (high.roles, high.timeout, high.justification_required) == (("lead",), 3600.0, False)
    assert (critical.roles, critical.timeout) == (("lead", "owner"), 7200.0)
    assert all(p.checklist and p.remind_at == 0.5 and p.escalate_to for p in (medium, high))
    assert shipped.roles_of(Identity("github", "octocat")) == set()
    assert shipped.may_decide(CRITICAL, Identity("cli", "operator"))
    assert shipped.people_of("owner") == {"github": (), "linear": (), "slack": ()}


def with_level(level: str, **policy: Any) -> dict[str, Any]:
    data = config()
    data["levels"][level] = policy
    return data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            with_level("high", roles=["leed"], timeout_minutes=5),
            "level high: unknown role 'leed' (roles: lead, maintainer, owner)",
        ),
        (
            with_level("medium", roles=["lead"], timeout_minutes=5, escalate_to="boss"),
            "level medium: unknown role 'boss'",
        ),
        (
            config(roles={}),
            "level medium: unknown role 'maintainer' (roles: none defined)",
        ),
        (
            with_level("high", roles=["lead"]),
            "levels.high: a level that asks for approval needs timeout_minutes > 0",
        ),
        (
            with_level("high", roles=["lead"], timeout_minutes=0),
            "levels.high: a level that asks for approval needs timeout_minutes > 0",
        ),
        (
            with_level("high", roles=["lead"], timeout_minutes=5, remind_at=1.5),
            "levels.high.remind_at: Input should be less than 1",
        ),
        (
            with_level("high", roles=["lead"], timeout_minutes=5, approvers=["lead"]),
            "levels.high.approvers: Extra inputs are not permitted",
        ),
        (
            config(levels={"low": {"approval": False}}),
            "levels: medium, high, critical missing",
        ),
        (
            config(levels={**config()["levels"], "urgent": {"approval": False}}),
            "levels.urgent.[key]: Input should be 'low', 'medium', 'high' or 'critical'",
        ),
        (
            config(roles={**config()["roles"], "lead": {"discord": ["x"]}}),
            "roles.lead.discord: Extra inputs are not permitted",
        ),
        ({"roles": {}}, "levels: Field required"),
    ],
)
def test_invalid_policies_are_refused(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ApprovalPolicies.from_mapping(data, "policies.yaml")
    assert str(caught.value).startswith("invalid approval policies policies.yaml: ")
    assert message in str(caught.value)


def test_a_level_without_approval_needs_no_timeout() -> None:
    data = with_level("medium", approval=False, roles=["lead"], timeout_minutes=0)
    assert ApprovalPolicies.from_mapping(data).policy_for(MEDIUM) == LevelPolicy(approval=False)


def test_files_are_read_and_named_in_errors(tmp_path: Path) -> None:
    path = tmp_path / "policies.yaml"
    path.write_text(
        "levels:\n"
        "  low: {approval: false}\n"
        "  medium: {approval: false}\n"
        "  high: {roles: [lead], timeout_minutes: 1.5}\n"
        "  critical: {roles: [lead], timeout_minutes: 10}\n"
        "roles:\n"
        "  lead: {slack: U0LEAD}\n"
    )
    loaded = ApprovalPolicies.load(path)
    assert loaded.policy_for(HIGH).timeout == 90.0
    assert loaded.may_decide(HIGH, Identity("slack", "U0LEAD"))
    path.write_text("levels: [low]\n")
    with pytest.raises(ConfigError, match=re.escape(f"invalid approval policies {path}: levels: ")):
        ApprovalPolicies.load(path)
    path.write_text("just text\n")
    with pytest.raises(
        ConfigError, match=re.escape(f"invalid approval policies {path}: expected a mapping")
    ):
        ApprovalPolicies.load(path)
    with pytest.raises(ConfigError, match=r"cannot read approval policies .*missing\.yaml"):
        ApprovalPolicies.load(tmp_path / "missing.yaml")
