"""Routes as configured in `taskyard.yaml` (`routes:` and `routing:`), validated once at load.

A route names the normalised event types it listens to (`on`, globs), the conditions an event
must meet (drafts rule, one-liner triggers, `when` filters; every one that is set must hold),
who may start it (`who`), and what to run (agent, prompt, context, repo, limits).

This module imports nothing from `taskyard.config` (config imports it).
"""

from __future__ import annotations

import enum
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from fnmatch import translate
from typing import Annotated, Any, Literal

import jmespath
from jmespath.exceptions import JMESPathError
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
_TYPE_GLOB = re.compile(r"^[^\s:]+:\S+$")
OPERATORS = ("equals", "in", "contains", "regex", "exists")
_OPERATOR_FIELDS = {  # field name → operator as written
    "equals": "equals",
    "one_of": "in",
    "contains": "contains",
    "regex": "regex",
    "exists": "exists",
}
_FILTER_KEYS = {*OPERATORS, "one_of", "path", "jmespath", "not", "negate", "reason"}


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class Permission(enum.IntEnum):
    """GitHub's repository permission ladder; `none` lets anyone trigger."""

    NONE = 0
    READ = 1
    TRIAGE = 2
    WRITE = 3
    MAINTAIN = 4
    ADMIN = 5

    @classmethod
    def parse(cls, value: Any) -> Permission:
        if isinstance(value, Permission):
            return value
        name = str(value).strip().upper()
        if name not in cls.__members__:
            known = ", ".join(p.name.lower() for p in cls)
            raise ValueError(f"unknown permission {value!r} (expected one of {known})")
        return cls[name]

    @property
    def label(self) -> str:
        return self.name.lower()


def _one_or_many(value: Any) -> Any:
    """`label: agent` and `label: [agent, bot]` both read as a tuple."""
    if value is None:
        return ()
    if isinstance(value, list | tuple):
        return tuple(_scalar_text(v) for v in value)
    return (_scalar_text(value),)


def _scalar_text(value: Any) -> Any:
    """Numbers as text (a Sentry project id, a Slack channel written unquoted); anything else
    is left for validation to refuse."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


Names = Annotated[tuple[str, ...], BeforeValidator(_one_or_many)]


class FilterConfig(_Frozen):
    """One condition on the payload: a value read at `path` (dotted, `[]` flattens a list) or
    by a `jmespath` expression, and one operator. `not: true` inverts it; `reason` is what a
    skipped event records when the condition fails (default: a description of it)."""

    path: str | None = None
    jmespath: str | None = None
    equals: Any = None
    one_of: tuple[Any, ...] | None = Field(default=None, alias="in")
    contains: Any = None
    regex: str | None = None
    exists: bool | None = None
    negate: bool = Field(default=False, alias="not")
    reason: str | None = None
    _pattern: re.Pattern[str] | None = PrivateAttr(default=None)
    _expression: Any = PrivateAttr(default=None)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(str(k) for k in data if str(k) not in _FILTER_KEYS)
            if unknown:
                raise ValueError(
                    f"unknown filter operator {unknown[0]!r} "
                    f"(expected one of {', '.join(OPERATORS)})"
                )
        return data

    @field_validator("regex")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"bad regex {value!r}: {exc}") from exc
        return value

    @field_validator("jmespath")
    @classmethod
    def _jmespath(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                jmespath.compile(value)
            except JMESPathError as exc:
                raise ValueError(f"bad JMESPath {value!r}: {exc}") from exc
        return value

    @model_validator(mode="after")
    def _one_source_one_operator(self) -> FilterConfig:
        if (self.path is None) == (self.jmespath is None):
            raise ValueError("a filter needs exactly one of 'path' or 'jmespath'")
        given = self.operators()
        if len(given) != 1:
            raise ValueError(
                f"a filter needs exactly one operator of {', '.join(OPERATORS)}"
                + (f" (got {', '.join(given)})" if given else "")
            )
        return self

    def model_post_init(self, context: Any) -> None:
        self._pattern = re.compile(self.regex) if self.regex is not None else None
        self._expression = jmespath.compile(self.jmespath) if self.jmespath else None

    def operators(self) -> list[str]:
        """The operators written in this filter (valid filters have exactly one)."""
        return [op for field, op in _OPERATOR_FIELDS.items() if field in self.model_fields_set]

    @property
    def operator(self) -> str:
        return self.operators()[0]

    @property
    def pattern(self) -> re.Pattern[str] | None:
        return self._pattern

    @property
    def expression(self) -> Any:
        """The compiled JMESPath expression (has `.search(payload)`), or None."""
        return self._expression

    @property
    def target(self) -> str:
        """What the filter reads, as written: the path or the JMESPath expression."""
        return self.path if self.path is not None else f"jmespath({self.jmespath})"


class WhoConfig(_Frozen):
    """Who may start a route.

    users / teams: an allowlist (GitHub logins and `org/team-slug`; for other sources the
      actor's id, name or email). When set, only those listed may trigger.
    min_permission: GitHub repository permission the actor needs. Unset means `write`, or
      `none` when an allowlist is given (listing someone trusts them); set it explicitly to
      require both. Only GitHub events carry permissions; other sources ignore it.
    allow_bots: bots (GitHub `[bot]` logins and Bot senders, Slack bot messages, Linear
      integrations and OAuth apps, taskyard's own bot user) are ignored unless this is true
      or the bot's name is in `users`.
    """

    min_permission: Permission | None = None
    users: Names = ()
    teams: Names = ()
    allow_bots: bool = False

    @field_validator("min_permission", mode="before")
    @classmethod
    def _permission(cls, value: Any) -> Any:
        return None if value is None else Permission.parse(value)

    @field_validator("teams")
    @classmethod
    def _teams(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for team in value:
            org, _, slug = team.partition("/")
            if not org or not slug or "/" in slug:
                raise ValueError(f"team {team!r} must be written 'org/team-slug'")
        return value

    @property
    def allowlist(self) -> bool:
        return bool(self.users or self.teams)

    @property
    def required_permission(self) -> Permission:
        if self.min_permission is not None:
            return self.min_permission
        return Permission.NONE if self.allowlist else Permission.WRITE


DEFAULT_FIX_PHRASE = "@taskyard fix"


class FixTrigger(_Frozen):
    """`fix:` on a route: a person asks for a pull-request fix (`taskyard.routing.fixes`).

    `fix: true` listens for the default phrase, `fix: "@bot fix"` for another one, and
    `fix: {phrase: …, on_changes_requested: true}` also takes a review that requests changes
    without the phrase. `on_ci_failure: true` also takes a failing check on a pull request's
    head that taskyard pushed (`taskyard.routing.cifixes`); the route then listens to
    `github:check_run.completed` or `github:check_suite.completed`. The check's sender is
    usually the CI app, not a person: such a route sets `who: {allow_bots: true,
    min_permission: none}`, and taskyard having pushed the head is what lets the fix start.
    """

    phrase: str = DEFAULT_FIX_PHRASE
    on_changes_requested: bool = False
    on_ci_failure: bool = False

    @field_validator("phrase")
    @classmethod
    def _phrase(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the fix phrase must not be empty")
        return value.strip()


def _fix_shorthand(value: Any) -> Any:
    """`fix: true` and `fix: "<phrase>"` as the full form; `fix: false` as no fix trigger."""
    if value is None or value is False:
        return None
    if value is True:
        return {}
    if isinstance(value, str):
        return {"phrase": value}
    return value


class GatesConfig(_Frozen):
    """`gates:` on a change route: the optional gates it runs (`taskyard.lifecycle.Gate`).
    Only configuration turns one off; implement, test and commit always run, and the task's
    record shows which gates ran."""

    plan: bool = True
    plan_review: bool = True
    review: bool = True

    def enabled(self) -> list[str]:
        """The gates to run, in order."""
        off = {name for name in ("plan", "plan_review", "review") if not getattr(self, name)}
        order = ("plan", "plan_review", "implement", "test", "review", "commit")
        return [gate for gate in order if gate not in off]


class RouteConfig(_Frozen):
    """One route. YAML 1.1 reads a bare `on:` key as `true`; that is accepted as `on` too."""

    name: str
    on: Names
    drafts: bool = False  # false: a draft pull request is skipped
    when: tuple[FilterConfig, ...] = ()
    # One-liner triggers.
    label: Names = ()  # a label was added (GitHub `labeled`, Linear labels)
    command: Names = ()  # a line of the comment/message starts with it: "/review"
    phrase: Names = ()  # the comment/message holds it anywhere, case-insensitively
    assigned_to_bot: bool = False  # assigned to `routing.bot_user` / `routing.linear_bot_user`
    channel: Names = ()  # Slack/Discord channel id or name
    bugs_channel: bool = False  # in `routing.slack_bugs_channel`
    level: Names = ()  # Sentry level
    project: Names = ()  # Sentry project slug, name or id
    fix: Annotated[FixTrigger | None, BeforeValidator(_fix_shorthand)] = None  # asks for a PR fix
    who: WhoConfig = WhoConfig()
    # What to run.
    agent: str
    prompt: str | None = None  # template name; None: the default template
    context: Names = ()
    repo: bool = False  # the agent needs a git worktree of the event's repository
    timeout_seconds: float | None = Field(default=None, gt=0)  # None: the agent's or runs:
    max_tool_calls: int | None = Field(default=None, ge=1)  # None: the agent's or runs:
    result_schema: dict[str, Any] | None = None  # default: the standard result shape
    # The test gate: shell command lines taskyard runs itself, in order, in the box, in the
    # workspace's repository directory (`taskyard.run.testgate`); the first failure fails it.
    test_commands: tuple[str, ...] = ()
    # `mode: change`: the agent changes code, through gates (plan → plan_review → implement →
    # test → review → commit, `taskyard.run.change`), and taskyard commits and delivers it.
    mode: Literal["action", "change"] = "action"
    gates: GatesConfig = GatesConfig()
    reviewer: str | None = None  # the reviewing agent; None: the other CLI (codex ⇄ claude)
    changes_mode: Literal["suggest", "push"] | None = None  # None: `changes.mode`
    max_revisions: int | None = Field(default=None, ge=1)  # None: `changes.max_revisions`
    _on: re.Pattern[str] = PrivateAttr()

    @model_validator(mode="before")
    @classmethod
    def _yaml_on(cls, data: Any) -> Any:
        if isinstance(data, dict) and True in data:
            data = {("on" if k is True else k): v for k, v in data.items()}
        return data

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(
                f"route name {value!r} must be lower-case letters, digits, '.', '_' or '-'"
            )
        return value

    @field_validator("on")
    @classmethod
    def _globs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("'on' needs at least one event type glob")
        for glob in value:
            check_type_glob(glob)
        return value

    @field_validator("result_schema")
    @classmethod
    def _schema(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            import jsonschema  # only for routes that give a schema: it is slow to import

            try:
                jsonschema.Draft202012Validator.check_schema(value)
            except jsonschema.SchemaError as exc:
                raise ValueError(f"result_schema is no valid JSON Schema: {exc.message}") from exc
        return value

    @field_validator("test_commands")
    @classmethod
    def _test_commands(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(not command.strip() for command in value):
            raise ValueError("test_commands: a blank command tests nothing")
        return value

    @model_validator(mode="after")
    def _change_needs_repo(self) -> RouteConfig:
        if self.mode == "change" and not self.repo:
            raise ValueError(f"route {self.name!r}: mode change needs `repo: true`")
        return self

    def model_post_init(self, context: Any) -> None:
        self._on = re.compile("|".join(f"(?:{translate(glob)})" for glob in self.on))

    def listens_to(self, event_type: str) -> bool:
        return self._on.match(event_type) is not None


def check_type_glob(glob: str) -> None:
    """`source:event.action` with shell wildcards (`*`, `?`, `[...]`), e.g. `github:issues.*`."""
    if not _TYPE_GLOB.match(glob):
        raise ValueError(
            f"event type glob {glob!r} must look like 'source:event.action' "
            "(e.g. 'github:pull_request.opened' or 'sentry:issue.*'), without spaces"
        )
    if glob.count("[") != glob.count("]"):
        raise ValueError(f"event type glob {glob!r} has an unbalanced '[' … ']'")


def _unique_names(routes: tuple[RouteConfig, ...]) -> tuple[RouteConfig, ...]:
    twice = sorted(name for name, n in Counter(r.name for r in routes).items() if n > 1)
    if twice:
        raise ValueError(f"route names must be unique: {', '.join(twice)} given more than once")
    return routes


Routes = Annotated[tuple[RouteConfig, ...], AfterValidator(_unique_names)]


class RoutingSettings(_Frozen):
    """Knobs the routes refer to (`routing:` in taskyard.yaml)."""

    bot_user: str | None = None  # taskyard's GitHub login: `assigned_to_bot`, and never a trigger
    linear_bot_user: str | None = None  # taskyard's Linear user: id, name or email
    slack_bugs_channel: str | None = None  # channel id (or name) of `bugs_channel: true`


_OTHER_CLI = {"codex": "claude", "claude": "codex"}


def reviewer_for(route: RouteConfig, kinds: Mapping[str, str]) -> str | None:
    """The agent that reviews a change route's work: its `reviewer`, else the first agent of
    the other CLI (codex work is reviewed by claude and the reverse), else None. `kinds`:
    agent name → kind."""
    if route.reviewer is not None:
        return route.reviewer
    other = _OTHER_CLI.get(kinds.get(route.agent, ""))
    return next((name for name, kind in kinds.items() if kind == other), None)


def change_problems(routes: Sequence[RouteConfig], kinds: Mapping[str, str]) -> list[str]:
    """Readable problems of change routes: a reviewer that is not configured, or review gates
    with nobody to review."""
    problems = []
    for r in routes:
        if r.mode != "change":
            continue
        reviewing = r.gates.plan_review or r.gates.review
        if r.reviewer is not None and r.reviewer not in kinds:
            problems.append(f"route {r.name!r} names reviewer {r.reviewer!r}, not configured")
        elif reviewing and reviewer_for(r, kinds) is None:
            problems.append(
                f"route {r.name!r} has review gates but no reviewer: configure an agent of "
                "the other CLI, name one in `reviewer:`, or turn the review gates off"
            )
    return problems


def unknown_agents(routes: Sequence[RouteConfig], agents: Sequence[str]) -> list[str]:
    """Readable problems for routes naming an agent that is not configured."""
    have = ", ".join(sorted(agents)) or "none"
    return [
        f"route {r.name!r} names agent {r.agent!r}, which is not configured (agents: {have})"
        for r in routes
        if r.agent not in agents
    ]
