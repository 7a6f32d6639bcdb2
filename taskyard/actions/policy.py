"""The policy hook: may this route's task apply this action now?

`AllowListPolicy`: a configured allow-list per route (`actions.allow`): what a route may
never do. `taskyard.approvals.policy.RiskPolicy` puts risk rules behind it: an allowed
action of low risk is applied, one of higher risk gets `Verdict.ASK` (a person decides).
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Protocol

from taskyard.actions.models import ParsedAction, Target


class Verdict(enum.StrEnum):
    ALLOW = "allow"
    DENY = "deny"
    ASK = "ask"  # a person must approve it first (see taskyard.approvals)


@dataclass(frozen=True, slots=True)
class Assessment:
    verdict: Verdict
    reason: str | None = None
    risk: str | None = None  # low | medium | high | critical, when risk rules assessed it
    rule: str | None = None  # the risk rule that matched

    @property
    def allowed(self) -> bool:
        return self.verdict is Verdict.ALLOW


class ActionPolicy(Protocol):
    def assess(self, route: str, action: ParsedAction, target: Target) -> Assessment: ...


class AllowListPolicy:
    """Allows an action when its type is on its route's list; a route not listed may do
    nothing."""

    def __init__(self, allow: Mapping[str, Collection[str]]) -> None:
        self._allow = {route: frozenset(types) for route, types in allow.items()}

    def assess(self, route: str, action: ParsedAction, target: Target) -> Assessment:
        if action.type in self._allow.get(route, frozenset()):
            return Assessment(Verdict.ALLOW)
        reason = f"{action.type} is not allowed by route {route}'s allow-list"
        return Assessment(Verdict.DENY, reason)
