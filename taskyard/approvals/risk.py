"""How risky one action is: `RiskRules`, read from `risk-rules.yaml`.

The file lists rules in order; the FIRST rule whose `match` holds gives the action its
`RiskLevel`, and an action no rule matches gets `default` (its verdict names the rule
"default"). Every criterion a `match` sets must hold (`match: {}` matches every action); a
list criterion holds when ANY of its entries does. Globs are shell-style (`*`, `?`, `[...]`).

- `types`: the action's type matches (`add_labels`, `set_*`).
- `platforms`: the platform the action's requests go to matches: `create_issue` on anything
  but a GitHub target goes to linear, `post_channel` to slack, the rest to the target's.
- `environments`: the task's environment (config) matches; none never matches.
- `repos`: the target's GitHub repository (`owner/name`) matches, ignoring case.
- `branches`: the branch the change goes to matches: `create_pr`'s base, else the target's
  branch (a pull request's base, a push's branch).
- `paths`: ANY path the action touches matches (a review's inline comments; other actions
  touch none). `**` spans directories, `*` stays within one; a glob without `/` matches a
  file name in any directory (`*.prod.*`).
- `channels`: the Slack channel the action posts to matches (`post_channel`'s channel, else
  the target's).
- `min_lines`, `max_lines`: the target's `lines_changed` is within the bound (inclusive);
  unknown never matches.
- `params`: each param named equals the value given (as the action's JSON has it).
- `mentions_outside`: a `mention_users` names someone not on this list (the team; `@` and
  case ignored); `[]`: anyone.

`RiskRules.load(None)` reads the shipped `defaults/risk-rules.yaml`. A file that does not
validate raises ConfigError naming the file, the rule and what is wrong.
"""

from __future__ import annotations

import enum
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase, translate
from importlib import resources
from operator import attrgetter
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from taskyard.actions.models import (
    REGISTRY,
    ActionParams,
    CreatePr,
    MentionUsers,
    ParsedAction,
    PostChannel,
    Review,
    Target,
)
from taskyard.exceptions import ConfigError

DEFAULT_RULE = "default"  # the rule a verdict names when no rule matched


class RiskLevel(enum.StrEnum):
    """How much could go wrong. Ordered: LOW < MEDIUM < HIGH < CRITICAL (a level also
    compares with its name: `RiskLevel.HIGH >= "medium"`)."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def __lt__(self, other: object) -> bool:
        rank = _rank(other)
        return NotImplemented if rank is None else self.rank < rank

    def __le__(self, other: object) -> bool:
        rank = _rank(other)
        return NotImplemented if rank is None else self.rank <= rank

    def __gt__(self, other: object) -> bool:
        rank = _rank(other)
        return NotImplemented if rank is None else self.rank > rank

    def __ge__(self, other: object) -> bool:
        rank = _rank(other)
        return NotImplemented if rank is None else self.rank >= rank


_RANKS: Mapping[RiskLevel, int] = {level: rank for rank, level in enumerate(RiskLevel)}


def _rank(other: object) -> int | None:
    """The rank of a level or a level's name (ValueError for another string); None for
    anything else (the comparison is then not supported)."""
    if isinstance(other, str):
        return RiskLevel(other).rank
    return None


@dataclass(frozen=True, slots=True)
class RiskSubject:
    """What the rules look at: one action, where its requests go and what it touches."""

    type: str
    platform: str  # where the action's requests go (see `subject_of`)
    environment: str | None = None
    repo: str | None = None
    branch: str | None = None
    paths: tuple[str, ...] = ()
    channel: str | None = None
    lines_changed: int | None = None
    params: Mapping[str, Any] = field(default_factory=dict)  # the action's params as JSON
    mentions: tuple[str, ...] = ()  # the people a mention_users names


@dataclass(frozen=True, slots=True)
class RiskVerdict:
    level: RiskLevel
    rule: str  # the matched rule's name; DEFAULT_RULE when none matched


# Actions whose requests go somewhere other than the target's platform (as the planner sends
# them: taskyard.actions.planner).
_DESTINATIONS: Mapping[str, Callable[[Target], str]] = {
    "post_channel": lambda target: "slack",
    "create_issue": lambda target: "github" if target.platform == "github" else "linear",
}


def _paths(params: ActionParams) -> tuple[str, ...]:
    return tuple(c.path for c in params.comments) if isinstance(params, Review) else ()


def _channel(params: ActionParams, target: Target) -> str | None:
    if isinstance(params, PostChannel) and params.channel:
        return params.channel
    return target.channel


def _branch(params: ActionParams, target: Target) -> str | None:
    return params.base if isinstance(params, CreatePr) else target.branch


def subject_of(action: ParsedAction, target: Target, environment: str | None) -> RiskSubject:
    """What the rules see of `action` on `target` in the task's `environment`."""
    goes_to = _DESTINATIONS.get(action.type)
    params = action.params
    return RiskSubject(
        type=action.type,
        platform=target.platform if goes_to is None else goes_to(target),
        environment=environment,
        repo=target.repo,
        branch=_branch(params, target),
        paths=_paths(params),
        channel=_channel(params, target),
        lines_changed=target.lines_changed,
        params=action.params_json(),
        mentions=params.users if isinstance(params, MentionUsers) else (),
    )


# --- globs ---------------------------------------------------------------------------------


def _globs(globs: Sequence[str], *, ignore_case: bool = False) -> re.Pattern[str]:
    flags = re.IGNORECASE if ignore_case else 0
    return re.compile("|".join(f"(?:{translate(g)})" for g in globs), flags)


def _segment(glob: str) -> str:
    """One path segment's glob as a regex that never crosses a `/`."""
    out: list[str] = []
    i = 0
    while i < len(glob):
        char = glob[i]
        end = glob.find("]", i + 2) if char == "[" else -1
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif end != -1:
            body = glob[i + 1 : end].replace("\\", "\\\\")
            out.append(f"[^/{body[1:]}]" if body.startswith("!") else f"[{body}]")
            i = end
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


def _path_glob(glob: str) -> str:
    parts = glob.strip("/").split("/")
    out: list[str] = []
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part == "**":
            out.append(".*" if last else "(?:[^/]+/)*")
        else:
            out.append(_segment(part) + ("" if last else "/"))
    anywhere = len(parts) == 1 and parts[0] != "**"
    return ("(?:.*/)?" if anywhere else "") + "".join(out)


def _path_globs(globs: Sequence[str]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{_path_glob(g)})" for g in globs))


# --- the checks one rule's match makes ---------------------------------------------------------

Check = Callable[[RiskSubject], bool]


def _one(value_of: Callable[[RiskSubject], str | None], pattern: re.Pattern[str]) -> Check:
    def check(subject: RiskSubject) -> bool:
        value = value_of(subject)
        return value is not None and pattern.fullmatch(value) is not None

    return check


def _any_path(globs: Sequence[str]) -> Check:
    pattern = _path_globs(globs)
    return lambda subject: any(pattern.fullmatch(p.lstrip("/")) for p in subject.paths)


def _at_least(bound: int) -> Check:
    return lambda subject: subject.lines_changed is not None and subject.lines_changed >= bound


def _at_most(bound: int) -> Check:
    return lambda subject: subject.lines_changed is not None and subject.lines_changed <= bound


_MISSING = object()


def _params_equal(wanted: Mapping[str, Any]) -> Check:
    def check(subject: RiskSubject) -> bool:
        return all(subject.params.get(k, _MISSING) == v for k, v in wanted.items())

    return check


def _person(name: str) -> str:
    return name.strip().removeprefix("@").casefold()


def _mentions_outside(team: Sequence[str]) -> Check:
    members = frozenset(_person(n) for n in team)
    return lambda subject: any(_person(u) not in members for u in subject.mentions)


# Each `match` criterion → the check it makes (in the order they are tried).
_CRITERIA: Mapping[str, Callable[[Any], Check]] = {
    "types": lambda globs: _one(attrgetter("type"), _globs(globs)),
    "platforms": lambda globs: _one(attrgetter("platform"), _globs(globs)),
    "environments": lambda globs: _one(attrgetter("environment"), _globs(globs)),
    "repos": lambda globs: _one(attrgetter("repo"), _globs(globs, ignore_case=True)),
    "branches": lambda globs: _one(attrgetter("branch"), _globs(globs)),
    "channels": lambda globs: _one(attrgetter("channel"), _globs(globs)),
    "paths": _any_path,
    "min_lines": _at_least,
    "max_lines": _at_most,
    "params": _params_equal,
    "mentions_outside": _mentions_outside,
}


# --- the file ------------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _listed(value: Any) -> Any:
    """`types: comment` reads as `types: [comment]`."""
    return (value,) if isinstance(value, str) else value


Text = Annotated[str, Field(min_length=1)]
Globs = Annotated[tuple[Text, ...], Field(min_length=1), BeforeValidator(_listed)]
Lines = Annotated[int, Field(ge=0)]


# What the rules rate besides the actions: a change task's code change, before taskyard commits
# it (`taskyard.run.personreview`); it has no params to match.
RATED = (*REGISTRY, "change")


def _types_of(globs: Sequence[str] | None) -> list[str]:
    """The rated types (actions, and `RATED`'s others) the globs name (all for no globs)."""
    return [t for t in RATED if globs is None or any(fnmatchcase(t, g) for g in globs)]


def _param_value(types: Sequence[str], name: str, value: Any) -> Any:
    """`value` as the JSON of the first of `types` whose params have `name` would carry it;
    ValueError when none has that param or takes that value."""
    having = [t for t in types if t in REGISTRY and name in REGISTRY[t].params.model_fields]
    if not having:
        raise ValueError(f"{name!r} is not a param of {', '.join(types)}")
    problem = ""
    for kind in having:
        annotation = REGISTRY[kind].params.model_fields[name].annotation
        adapter: TypeAdapter[Any] = TypeAdapter(Any if annotation is None else annotation)
        try:
            return adapter.dump_python(adapter.validate_python(value), mode="json")
        except ValidationError as exc:
            problem = problem or exc.errors(include_url=False)[0]["msg"]
    raise ValueError(f"{value!r} is not a valid {name} of {', '.join(having)}: {problem}")


class MatchConfig(_Model):
    types: Globs | None = None
    platforms: Globs | None = None
    environments: Globs | None = None
    repos: Globs | None = None
    branches: Globs | None = None
    paths: Globs | None = None
    channels: Globs | None = None
    min_lines: Lines | None = None
    max_lines: Lines | None = None
    params: dict[str, Any] | None = None
    mentions_outside: Annotated[tuple[Text, ...], BeforeValidator(_listed)] | None = None

    @field_validator("types")
    @classmethod
    def _known_types(cls, globs: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for glob in globs or ():
            if not _types_of([glob]):
                known = ", ".join(RATED)
                raise ValueError(f"{glob!r} names no action type (known: {known})")
        return globs

    @field_validator("params")
    @classmethod
    def _known_params(cls, params: dict[str, Any] | None, info: ValidationInfo) -> Any:
        if params is None:
            return None
        types = _types_of(info.data.get("types"))
        return {name: _param_value(types, name, value) for name, value in params.items()}

    @model_validator(mode="after")
    def _bounds(self) -> MatchConfig:
        low, high = self.min_lines, self.max_lines
        if low is not None and high is not None and low > high:
            raise ValueError(f"min_lines {low} is above max_lines {high}: nothing would match")
        return self


class RuleConfig(_Model):
    name: Text
    level: RiskLevel
    match: MatchConfig

    @field_validator("name")
    @classmethod
    def _not_default(cls, name: str) -> str:
        if name == DEFAULT_RULE:
            raise ValueError(f"{DEFAULT_RULE!r} names the default level, not a rule")
        return name


class RiskFile(_Model):
    default: RiskLevel = RiskLevel.MEDIUM
    rules: tuple[RuleConfig, ...] = ()

    @model_validator(mode="after")
    def _unique_names(self) -> RiskFile:
        counts = Counter(rule.name for rule in self.rules)
        twice = [name for name, n in counts.items() if n > 1]
        if twice:
            raise ValueError(f"rule {twice[0]!r} is named more than once; names must be unique")
        return self


# --- reading files (shared with taskyard.approvals.policies) -----------------------------------


def read_yaml(path: Path | None, shipped: str, what: str) -> tuple[Any, str]:
    """The parsed YAML of `path`, or of the shipped default file `shipped`, and its name."""
    source = path or resources.files("taskyard.approvals").joinpath("defaults", shipped)
    try:
        return yaml.safe_load(source.read_text(encoding="utf-8")), str(source)
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read {what} {source}: {exc}") from exc


def _where(loc: Sequence[int | str], data: Any) -> str:
    """A pydantic error location, with a rule's index given as its name."""
    parts: list[str] = []
    for i, key in enumerate(loc):
        if isinstance(key, int) and i == 1 and loc[0] == "rules":
            rules = data.get("rules") if isinstance(data, Mapping) else None
            rule = rules[key] if isinstance(rules, list) and key < len(rules) else None
            name = rule.get("name") if isinstance(rule, Mapping) else None
            parts[-1] = f"rule {name!r} (#{key + 1})" if name else f"rule #{key + 1}"
        else:
            parts.append(str(key))
    return ".".join(parts)


def invalid_file(what: str, origin: str, exc: ValidationError, data: Any) -> ConfigError:
    """A ConfigError naming the file and, for each problem, where it is (rule names for
    indexes) and what is wrong."""
    problems = []
    for err in exc.errors(include_url=False, include_input=False):
        message = err["msg"].removeprefix("Value error, ")
        where = _where(err["loc"], data)
        problems.append(f"{where}: {message}" if where else message)
    return ConfigError(f"invalid {what} {origin}: {'; '.join(problems)}")


# --- the rules -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RiskRule:
    name: str
    level: RiskLevel
    checks: tuple[Check, ...]

    @classmethod
    def of(cls, config: RuleConfig) -> RiskRule:
        match = config.match
        checks = [
            build(getattr(match, name))
            for name, build in _CRITERIA.items()
            if getattr(match, name) is not None
        ]
        return cls(config.name, config.level, tuple(checks))

    def matches(self, subject: RiskSubject) -> bool:
        return all(check(subject) for check in self.checks)


@dataclass(frozen=True, slots=True)
class RiskRules:
    default: RiskLevel
    rules: tuple[RiskRule, ...]

    @classmethod
    def load(cls, path: Path | None = None) -> RiskRules:
        """The rules in `path`, or the shipped defaults for None."""
        data, origin = read_yaml(path, "risk-rules.yaml", "risk rules")
        return cls.from_mapping(data, origin)

    @classmethod
    def from_mapping(cls, data: Any, origin: str = "(mapping)") -> RiskRules:
        if not isinstance(data, Mapping):
            raise ConfigError(f"invalid risk rules {origin}: expected a mapping with `rules`")
        try:
            parsed = RiskFile.model_validate(data)
        except ValidationError as exc:
            raise invalid_file("risk rules", origin, exc, data) from exc
        return cls(parsed.default, tuple(RiskRule.of(rule) for rule in parsed.rules))

    def assess(self, subject: RiskSubject) -> RiskVerdict:
        """The level of the first rule that matches `subject`, else the default."""
        rule = next((r for r in self.rules if r.matches(subject)), None)
        if rule is None:
            return RiskVerdict(self.default, DEFAULT_RULE)
        return RiskVerdict(rule.level, rule.name)
