"""`policies.yaml`: rules loaded and compiled once, refused at load when anything is wrong.

    rules:
      - id: freeze-weekend            # unique in the file
        point: pre_deploy             # scheduling | pre_merge | pre_deploy
        when: in_window(time, "Fri 18:00", "Mon 06:00", "Europe/Berlin")
        outcome: deny                 # allow | deny | approve
        risk: high                    # approve only: low | medium | high | critical
        reason: "deploys are frozen over the weekend"

`when` is written in CEL (the Common Expression Language), through the
`common-expression-language` package: Rust bindings, about 5 µs a rule, so 100 rules stay
under the 1 ms budget that the pure-Python `cel-python` would not meet; CEL itself is
non-Turing-complete, side-effect free and well documented, which is what a policy language
that operators write needs. The input each point sees is listed in `taskyard.policy.engine`.

A bad file never reaches evaluation: a YAML syntax error, a missing or unknown field, an
unknown point, outcome or risk, a duplicate id, an expression that does not parse or that
calls a function CEL and taskyard do not define, each raises `PolicyError` naming the file,
the line and the rule id.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import cel
import yaml

from taskyard.exceptions import ConfigError


class Point(enum.StrEnum):
    SCHEDULING = "scheduling"
    PRE_MERGE = "pre_merge"
    PRE_DEPLOY = "pre_deploy"


class Outcome(enum.StrEnum):
    """Ordered by strength: when several rules fire, the strongest outcome wins."""

    ALLOW = "allow"
    APPROVE = "approve"
    DENY = "deny"

    @property
    def strength(self) -> int:
        return _STRENGTH[self]


_STRENGTH = {Outcome.ALLOW: 0, Outcome.APPROVE: 1, Outcome.DENY: 2}
RISKS = ("low", "medium", "high", "critical")  # the approvals' risk levels, lowest first

# The helpers `taskyard.policy.windows` gives CEL, and CEL's own functions and macros.
HELPERS = frozenset({"in_window", "weekday", "hour"})
CEL_FUNCTIONS = frozenset(
    {
        "size", "contains", "startsWith", "endsWith", "matches", "exists", "exists_one",
        "all", "map", "filter", "has", "int", "uint", "double", "string", "bytes", "bool",
        "type", "timestamp", "duration", "dyn", "max", "min",
    }
)  # fmt: skip
E = TypeVar("E", Point, Outcome)
_FIELDS = frozenset({"id", "point", "when", "outcome", "risk", "reason"})
_REQUIRED = ("id", "point", "when", "outcome", "reason")
_ID_LINE = re.compile(r"^\s*-?\s*id:\s*['\"]?([^'\"#\s]+)")


class PolicyError(ConfigError):
    """A policy file refused at load; the message names the file, the line and the rule."""

    def __init__(self, path: Path | str, line: int, rule_id: str | None, problem: str) -> None:
        self.path, self.line, self.rule_id, self.problem = str(path), line, rule_id, problem
        rule = f"rule {rule_id!r}" if rule_id else "no rule id"
        super().__init__(f"{path}:{line}: {rule}: {problem}")


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    point: Point
    when: str
    outcome: Outcome
    risk: str | None  # for APPROVE: the approvals' risk level the approval needs
    reason: str
    line: int  # where the rule starts in its file, 1-based
    program: cel.Program


@dataclass(frozen=True, slots=True)
class Policy:
    path: str
    rules: tuple[Rule, ...]

    def at(self, point: Point) -> tuple[Rule, ...]:
        return tuple(r for r in self.rules if r.point == point)


def load_policy(path: Path | str) -> Policy:
    """The rules of a `policies.yaml`, compiled; `PolicyError` for anything wrong in it."""
    text = Path(path).read_text(encoding="utf-8")
    return parse_policy(text, path)


def parse_policy(text: str, path: Path | str = "<policies>") -> Policy:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        rule_id = _id_before(text, line)
        raise PolicyError(path, line, rule_id, f"YAML syntax: {exc.problem}") from exc
    items = _rule_nodes(root, path)
    rules = [_rule(node, path) for node in items]
    _refuse_duplicates(rules, path)
    return Policy(str(path), tuple(rules))


def _id_before(text: str, line: int) -> str | None:
    """The id of the rule a syntax error is in: the last `id:` at or above its line."""
    found = None
    for row in text.splitlines()[:line]:
        match = _ID_LINE.match(row)
        if match:
            found = match.group(1)
    return found


def _rule_nodes(root: yaml.Node | None, path: Path | str) -> list[yaml.Node]:
    if root is None:
        return []
    if not isinstance(root, yaml.MappingNode):
        raise PolicyError(path, root.start_mark.line + 1, None, "the file must be a mapping")
    for key, value in root.value:
        if key.value != "rules":
            raise PolicyError(path, key.start_mark.line + 1, None, f"unknown key {key.value!r}")
        if not isinstance(value, yaml.SequenceNode):
            raise PolicyError(path, value.start_mark.line + 1, None, "`rules` must be a list")
        return list(value.value)
    return []


def _rule(node: yaml.Node, path: Path | str) -> Rule:
    line = node.start_mark.line + 1
    if not isinstance(node, yaml.MappingNode):
        raise PolicyError(path, line, None, "a rule must be a mapping")
    fields: dict[str, tuple[str, int]] = {}
    for key, value in node.value:
        if not isinstance(value, yaml.ScalarNode):
            raise PolicyError(path, value.start_mark.line + 1, None, f"{key.value} must be text")
        fields[str(key.value)] = (str(value.value), value.start_mark.line + 1)
    rule_id = fields.get("id", ("", line))[0] or None
    for name, (_, at) in fields.items():
        if name not in _FIELDS:
            raise PolicyError(path, at, rule_id, f"unknown field {name!r}")
    for name in _REQUIRED:
        if not fields.get(name, ("", 0))[0]:
            raise PolicyError(path, line, rule_id, f"missing {name!r}")
    return _build(fields, line, path)


def _build(fields: dict[str, tuple[str, int]], line: int, path: Path | str) -> Rule:
    rule_id = fields["id"][0]
    point = _choice(Point, fields["point"], path, rule_id, "point")
    outcome = _choice(Outcome, fields["outcome"], path, rule_id, "outcome")
    risk, risk_line = fields.get("risk", ("", line))
    if outcome == Outcome.APPROVE and risk not in RISKS:
        why = f"unknown risk {risk!r}" if risk else "an approve rule needs a risk"
        raise PolicyError(path, risk_line, rule_id, f"{why} (one of {', '.join(RISKS)})")
    if outcome != Outcome.APPROVE and risk:
        raise PolicyError(path, risk_line, rule_id, "only an approve rule has a risk")
    when, when_line = fields["when"]
    program = _compile(when, path, when_line, rule_id)
    reason = fields["reason"][0]
    return Rule(rule_id, point, when, outcome, risk or None, reason, line, program)


def _choice(kind: type[E], field: tuple[str, int], path: Path | str, rule_id: str, name: str) -> E:
    value, at = field
    try:
        return kind(value)
    except ValueError:
        known = ", ".join(m.value for m in kind)
        raise PolicyError(path, at, rule_id, f"unknown {name} {value!r} (one of {known})") from None


def _compile(when: str, path: Path | str, line: int, rule_id: str) -> cel.Program:
    try:
        program = cel.compile(when)
    except ValueError as exc:
        problem = str(exc).splitlines()[0]
        raise PolicyError(path, line, rule_id, f"`when` does not compile: {problem}") from None
    unknown = sorted(
        f for f in program.functions() if f[0].isalpha() and f not in CEL_FUNCTIONS | HELPERS
    )
    if unknown:
        raise PolicyError(path, line, rule_id, f"`when` calls unknown functions: {unknown}")
    return program


def _refuse_duplicates(rules: list[Rule], path: Path | str) -> None:
    seen: set[str] = set()
    for rule in rules:
        if rule.id in seen:
            raise PolicyError(path, rule.line, rule.id, "duplicate rule id")
        seen.add(rule.id)
