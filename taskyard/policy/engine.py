"""Evaluating a policy at one point, and recording the decision in the audit chain.

Every rule of the point whose `when` is true fires; the decision is the strongest outcome
among them (deny over approve over allow), and no rule fired is allow. An approval's risk is
the highest risk among the approve rules that fired. A rule whose `when` fails while it runs
(a missing map key, a type mismatch, a bad time zone) or gives anything but a bool fires as a
deny naming the error: a policy that cannot be read fails closed.

The input, the same names at every point (a caller fills what its point knows; the rest keep
the defaults shown, so a rule never meets an undefined name):

    idea           {id: "", labels: [], risk: "", priority: 0, repo: ""}
    task           {key: "", title: "", labels: []}
    diff           {files: 0, lines_added: 0, lines_removed: 0, paths: []}
    paths          []            the changed paths
    labels         []            the task's and idea's labels
    tests          {passed: false, commands: []}   the test commands that ran and passed
    time           a timestamp; given as RFC 3339 text (default: now)
    environment    ""            the deploy's environment ("production"…)
    service        ""            the service being deployed
    deploys_today  {}            service → deploys so far today (the change budget)

Helpers (`taskyard.policy.windows`): `in_window(time, "Fri 18:00", "Mon 06:00", zone)`,
`weekday(time, zone)` ("Mon"…"Sun"), `hour(time, zone)` (0 to 23).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import cel

from taskyard.audit import AuditEntry
from taskyard.policy import windows
from taskyard.policy.rules import RISKS, Outcome, Point, Policy, Rule
from taskyard.store.base import Store

DEFAULTS: dict[str, Any] = {
    "idea": {"id": "", "labels": [], "risk": "", "priority": 0, "repo": ""},
    "task": {"key": "", "title": "", "labels": []},
    "diff": {"files": 0, "lines_added": 0, "lines_removed": 0, "paths": []},
    "paths": [],
    "labels": [],
    "tests": {"passed": False, "commands": []},
    "time": None,
    "environment": "",
    "service": "",
    "deploys_today": {},
}
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "in_window": windows.in_window,
    "weekday": windows.weekday,
    "hour": windows.hour,
}


class InputError(ValueError):
    """The input is not the documented one (an unknown name, a time that is not RFC 3339)."""


@dataclass(frozen=True, slots=True)
class Fired:
    rule_id: str
    outcome: Outcome
    reason: str


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: Outcome
    fired: tuple[Fired, ...]
    risk: str | None = None  # for APPROVE: the risk level the approval needs

    def as_json(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome.value,
            "risk": self.risk,
            "fired": [
                {"rule": f.rule_id, "outcome": f.outcome.value, "reason": f.reason}
                for f in self.fired
            ],
        }


def policy_input(data: Mapping[str, Any], now: datetime | None = None) -> dict[str, Any]:
    """The documented input: `data` over the defaults (maps merged a field at a time), `time`
    a timezone-aware datetime (from RFC 3339 text, else `now`)."""
    unknown = sorted(set(data) - set(DEFAULTS))
    if unknown:
        raise InputError(f"unknown input names {unknown}; known: {sorted(DEFAULTS)}")
    merged = copy.deepcopy(DEFAULTS)
    for name, value in data.items():
        if isinstance(merged[name], dict):
            if not isinstance(value, Mapping):
                raise InputError(f"input {name!r} must be an object")
            merged[name].update(value)
        else:
            merged[name] = value
    merged["time"] = _time(merged["time"], now)
    return merged


def _time(value: Any, now: datetime | None) -> datetime:
    if value is None:
        return now or datetime.now(UTC)
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        raise InputError(f"time {value!r} is not RFC 3339") from None
    if parsed.tzinfo is None:
        raise InputError(f"time {value!r} has no offset (RFC 3339 needs one, e.g. Z)")
    return parsed


def evaluate(policy: Policy, point: Point, data: Mapping[str, Any]) -> Decision:
    """The decision of `policy`'s rules at `point` over `data` (see `policy_input`)."""
    context = cel.Context()
    for name, value in policy_input(data).items():
        context.add_variable(name, value)
    for name, function in _FUNCTIONS.items():
        context.add_function(name, function)
    fired = tuple(f for f in (_run(rule, context) for rule in policy.at(point)) if f)
    return decide(fired, {r.id: r for r in policy.rules})


def _run(rule: Rule, context: cel.Context) -> Fired | None:
    try:
        result = rule.program.execute(context)
    except (ValueError, TypeError, KeyError, RuntimeError, IndexError) as exc:
        return Fired(rule.id, Outcome.DENY, f"rule could not be evaluated: {exc}")
    if not isinstance(result, bool):
        return Fired(rule.id, Outcome.DENY, f"rule gave {result!r}, not true or false")
    return Fired(rule.id, rule.outcome, rule.reason) if result else None


def decide(fired: tuple[Fired, ...], rules: Mapping[str, Rule]) -> Decision:
    """Deny over approve over allow; the approval at the highest risk that asked for one."""
    if not fired:
        return Decision(Outcome.ALLOW, ())
    outcome = max((f.outcome for f in fired), key=lambda o: o.strength)
    risk = None
    if outcome == Outcome.APPROVE:
        asked = [rules[f.rule_id].risk for f in fired if f.outcome == Outcome.APPROVE]
        risk = max((r for r in asked if r), key=RISKS.index)
    return Decision(outcome, fired, risk)


def record(
    store: Store,
    decision: Decision,
    point: Point,
    subject: str,
    now: float,
    *,
    task_id: str | None = None,
) -> AuditEntry:
    """The decision appended to the audit chain (kind `policy`): what it was about (`subject`,
    an idea or task id), the point, the outcome and each fired rule with its reason."""
    data = {"point": point.value, "subject": subject, **decision.as_json()}
    return store.append_audit("policy", task_id, "taskyard", data, now)
