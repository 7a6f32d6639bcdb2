"""The policy hook: may this route's task apply this action now?

For now a configured allow-list per route (`actions.allow` in the config). The approvals
issue replaces `AllowListPolicy` with risk rules behind the same one-method interface and
adds a verdict that asks for approval; `apply_actions` applies only `Verdict.ALLOW`.
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


@dataclass(frozen=True, slots=True)
class Assessment:
    verdict: Verdict
    reason: str | None = None

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


# What the shipped routes (taskyard/routing/defaults.py) may apply when `actions.allow` does
# not say otherwise.
DEFAULT_ALLOW: Mapping[str, tuple[str, ...]] = {
    "linear-triage": (
        "add_labels",
        "remove_labels",
        "set_priority",
        "set_state",
        "assign",
        "comment",
    ),
    "slack-bug-analysis": ("post_channel", "mention_users", "create_issue"),
    "pr-review": ("review", "comment", "add_labels", "remove_labels", "set_check"),
    "sentry-triage": ("create_issue", "comment"),
}
