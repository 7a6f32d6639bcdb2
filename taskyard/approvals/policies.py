"""What each risk level asks for: `ApprovalPolicies`, read from `approval-policies.yaml`.

```yaml
levels:                       # all four levels, each:
  low: {approval: false}      # applied without asking (nothing else applies)
  medium:
    roles: [maintainer, lead] # who may decide (besides operators, see `may_decide`)
    timeout_minutes: 30       # required (> 0) where approval is true
    checklist: ["…"]          # what the decider should check
    justification_required: false
    remind_at: 0.5            # remind the deciders at this fraction of the timeout
    escalate_to: lead         # the role asked once the reminder goes unanswered
    allow_self_approval: false  # may whoever triggered the task decide? (default: no)
roles:                        # each role's people, per platform
  maintainer: {github: [octocat], linear: [user-id-or-email], slack: [U123]}
people:                       # optional: one person's ids on each platform, linked
  mona: {github: octocat, linear: mona@example.com, slack: U123}
```

`people` links one person's identities across platforms, so separation of duties knows that
the GitHub login that triggered a task and the Slack user who approves it are one person
(`same_person`). An id may belong to one person only.

GitHub logins and Linear ids / emails compare ignoring case (and a login's leading `@`);
Slack user ids compare exactly. `ApprovalPolicies.load(None)` reads the shipped
`defaults/approval-policies.yaml`; a file that does not validate raises ConfigError naming
the file and the level or role at fault.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from taskyard.approvals.risk import RiskLevel, invalid_file, read_yaml
from taskyard.exceptions import ConfigError

ROLE_PLATFORMS = ("github", "linear", "slack")  # where a role's people are named
OPERATOR_PLATFORMS = ("cli", "web")  # an operator of this taskyard, not a platform user
PLATFORMS = (*ROLE_PLATFORMS, *OPERATOR_PLATFORMS)


def _fold(person: str) -> str:
    return person.strip().removeprefix("@").casefold()


# How an id is compared, per platform (the ones not listed compare exactly).
_NORMAL = {"github": _fold, "linear": _fold}


def normal_id(platform: str, person: str) -> str:
    """An id as it compares on its platform (see the module's doc)."""
    normal = _NORMAL.get(platform)
    return person.strip() if normal is None else normal(person)


_normal = normal_id


@dataclass(frozen=True, slots=True)
class Identity:
    """Who decides: a GitHub login, a Linear user id or email, a Slack user id, or an
    operator on the CLI or the web (`id`: whatever names them in the audit record)."""

    platform: str  # one of PLATFORMS
    id: str

    def __post_init__(self) -> None:
        if self.platform not in PLATFORMS:
            raise ValueError(f"unknown platform {self.platform!r} (one of {', '.join(PLATFORMS)})")
        if not self.id.strip():
            raise ValueError("an identity needs an id")

    @property
    def operator(self) -> bool:
        return self.platform in OPERATOR_PLATFORMS


@dataclass(frozen=True, slots=True)
class LevelPolicy:
    """What one risk level asks for. Without `approval` the other fields are empty."""

    approval: bool
    roles: tuple[str, ...] = ()
    timeout: float = 0.0  # seconds a request waits for a decision (0: no approval)
    checklist: tuple[str, ...] = ()
    justification_required: bool = False
    remind_at: float | None = None  # fraction of the timeout
    escalate_to: str | None = None  # a role
    allow_self_approval: bool = False  # may the task's trigger decide (see approvals.duties)


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _listed(value: Any) -> Any:
    """`github: octocat` reads as `github: [octocat]`."""
    return (value,) if isinstance(value, str) else value


Text = Annotated[str, Field(min_length=1)]
Texts = Annotated[tuple[Text, ...], BeforeValidator(_listed)]


class LevelConfig(_Model):
    approval: bool = True
    roles: Texts = ()
    timeout_minutes: float | None = None
    checklist: Texts = ()
    justification_required: bool = False
    remind_at: Annotated[float, Field(gt=0, lt=1)] | None = None
    escalate_to: Text | None = None
    allow_self_approval: bool = False

    @model_validator(mode="after")
    def _timeout(self) -> LevelConfig:
        if self.approval and (self.timeout_minutes is None or self.timeout_minutes <= 0):
            raise ValueError("a level that asks for approval needs timeout_minutes > 0")
        return self

    def policy(self) -> LevelPolicy:
        if not self.approval or self.timeout_minutes is None:
            return LevelPolicy(approval=False)
        return LevelPolicy(
            approval=True,
            roles=self.roles,
            timeout=self.timeout_minutes * 60,
            checklist=self.checklist,
            justification_required=self.justification_required,
            remind_at=self.remind_at,
            escalate_to=self.escalate_to,
            allow_self_approval=self.allow_self_approval,
        )


class RoleConfig(_Model):
    github: Texts = ()
    linear: Texts = ()
    slack: Texts = ()


class PoliciesFile(_Model):
    levels: dict[RiskLevel, LevelConfig]
    roles: dict[Text, RoleConfig] = Field(default_factory=dict)
    people: dict[Text, RoleConfig] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_person_an_id(self) -> PoliciesFile:
        owner: dict[tuple[str, str], str] = {}
        for person, ids in self.people.items():
            for platform in ROLE_PLATFORMS:
                for one in getattr(ids, platform):
                    key = (platform, _normal(platform, one))
                    if owner.setdefault(key, person) != person:
                        raise ValueError(
                            f"people: {platform} id {one!r} is both {owner[key]!r} and {person!r}"
                        )
        return self

    @model_validator(mode="after")
    def _complete(self) -> PoliciesFile:
        missing = [level.value for level in RiskLevel if level not in self.levels]
        if missing:
            raise ValueError(f"levels: {', '.join(missing)} missing (every level needs a policy)")
        known = ", ".join(sorted(self.roles)) or "none defined"
        for level, config in self.levels.items():
            named = [*config.roles, *([config.escalate_to] if config.escalate_to else [])]
            for role in named:
                if role not in self.roles:
                    raise ValueError(f"level {level.value}: unknown role {role!r} (roles: {known})")
        return self


@dataclass(frozen=True, slots=True)
class ApprovalPolicies:
    levels: Mapping[RiskLevel, LevelPolicy]
    roles: Mapping[str, Mapping[str, tuple[str, ...]]]  # role → platform → ids, as written
    # (platform, normal id) → every (platform, normal id) of the same person (`people`)
    linked: Mapping[tuple[str, str], frozenset[tuple[str, str]]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path | None = None) -> ApprovalPolicies:
        """The policies in `path`, or the shipped defaults for None."""
        data, origin = read_yaml(path, "approval-policies.yaml", "approval policies")
        return cls.from_mapping(data, origin)

    @classmethod
    def from_mapping(cls, data: Any, origin: str = "(mapping)") -> ApprovalPolicies:
        if not isinstance(data, Mapping):
            raise ConfigError(
                f"invalid approval policies {origin}: expected a mapping with `levels`"
            )
        try:
            parsed = PoliciesFile.model_validate(data)
        except ValidationError as exc:
            raise invalid_file("approval policies", origin, exc, data) from exc
        levels = {level: config.policy() for level, config in parsed.levels.items()}
        roles = {
            name: {p: getattr(people, p) for p in ROLE_PLATFORMS}
            for name, people in parsed.roles.items()
        }
        return cls(levels, roles, _linked(parsed.people))

    def policy_for(self, level: RiskLevel | str) -> LevelPolicy:
        return self.levels[RiskLevel(level)]

    def identities_of(self, platform: str, person: str) -> frozenset[tuple[str, str]]:
        """Every (platform, normal id) of the person `person` is on `platform`: the ones
        `people` links to it, and always itself."""
        me = (platform, _normal(platform, person))
        return self.linked.get(me, frozenset()) | {me}

    def people_of(self, role: str) -> Mapping[str, tuple[str, ...]]:
        """The role's people per platform (every one of ROLE_PLATFORMS, maybe empty), to
        mention in approval requests. KeyError for a role not defined."""
        if role not in self.roles:
            raise KeyError(f"unknown role {role!r}")
        return self.roles[role]

    def roles_of(self, identity: Identity) -> set[str]:
        """The roles that name `identity` (none for an operator: operators have no roles)."""
        if identity.operator:
            return set()
        me = _normal(identity.platform, identity.id)
        return {
            role
            for role, people in self.roles.items()
            if any(_normal(identity.platform, p) == me for p in people[identity.platform])
        }

    def may_decide(
        self, level: RiskLevel | str, identity: Identity, *, escalated: bool = False
    ) -> bool:
        """Whether `identity` may approve or reject an action of `level`: someone in one of
        the level's roles (or its `escalate_to` role once the request is `escalated`).

        An operator (`cli`, `web`) always may: whoever holds taskyard's API token or a shell
        on its host can change its configuration anyway, so refusing them protects nothing;
        the decision is recorded under their identity. A level without approval has nothing
        to decide: False for everyone."""
        policy = self.policy_for(level)
        if not policy.approval:
            return False
        if identity.operator:
            return True
        escalation = policy.escalate_to if escalated else None
        deciders = {*policy.roles, *([escalation] if escalation else [])}
        return not deciders.isdisjoint(self.roles_of(identity))


def _linked(people: Mapping[str, RoleConfig]) -> dict[tuple[str, str], frozenset[tuple[str, str]]]:
    """(platform, normal id) → all of that person's (platform, normal id)s."""
    linked: dict[tuple[str, str], frozenset[tuple[str, str]]] = {}
    for ids in people.values():
        mine = frozenset(
            (platform, _normal(platform, one))
            for platform in ROLE_PLATFORMS
            for one in getattr(ids, platform)
        )
        linked.update(dict.fromkeys(mine, mine))
    return linked
