"""The typed actions agents may propose, in ONE registry, and the parsing of a result's
`actions[]` into them.

Each entry of `REGISTRY` names the params model, whether sending the action again is harmless
(`idempotent`, e.g. adding labels or a reaction), and which text field carries the hidden
idempotency marker (`marker_field`, for actions that post a body).
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from taskyard.actions.keys import action_key, with_marker
from taskyard.config.action_names import ALIASES
from taskyard.models import Priority

Text = Annotated[str, Field(min_length=1)]
Names = Annotated[tuple[str, ...], Field(min_length=1)]


class ActionParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _one_or_many(data: Any, one: str, many: str) -> Any:
    """Accept `{one: x}` as `{many: [x]}` (agents write `add_label` with `label`)."""
    if isinstance(data, Mapping) and one in data and many not in data:
        rest = {k: v for k, v in data.items() if k != one}
        return {**rest, many: [data[one]]}
    return data


class AddLabels(ActionParams):
    labels: Names

    @model_validator(mode="before")
    @classmethod
    def _single(cls, data: Any) -> Any:
        return _one_or_many(data, "label", "labels")


class RemoveLabels(AddLabels):
    pass


def _priority_names(data: Any) -> Any:
    """Accept "P1" (and the other names Priority.parse knows) for a `priority` field."""
    if isinstance(data, Mapping) and isinstance(data.get("priority"), str):
        try:
            return {**data, "priority": Priority.parse(data["priority"])}
        except KeyError:
            raise ValueError("priority must be one of P0, P1, P2, P3") from None
    return data


class SetPriority(ActionParams):
    priority: Priority

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, data: Any) -> Any:
        return _priority_names(data)


class SetState(ActionParams):
    state: Text


class Assign(ActionParams):
    assignees: Names

    @model_validator(mode="before")
    @classmethod
    def _single(cls, data: Any) -> Any:
        return _one_or_many(data, "assignee", "assignees")


class Comment(ActionParams):
    body: Text


class CreateIssue(ActionParams):
    title: Text
    body: str = ""
    labels: tuple[str, ...] = ()
    priority: Priority | None = None  # Linear only: GitHub issues have none

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, data: Any) -> Any:
        return _priority_names(data)


class InlineComment(ActionParams):
    path: Text
    line: int = Field(ge=1)
    body: Text
    side: Literal["LEFT", "RIGHT"] = "RIGHT"


class Review(ActionParams):
    summary: Text
    verdict: Literal["comment", "approve", "request_changes"] = "comment"
    comments: tuple[InlineComment, ...] = ()


class SetCheck(ActionParams):
    name: Text
    conclusion: Literal["success", "failure", "neutral", "action_required"]
    title: Text
    summary: str = ""


class CloseIssue(ActionParams):
    reason: Literal["completed", "not_planned", "duplicate"] = "completed"


class CreatePr(ActionParams):
    title: Text
    head: Text
    base: Text
    body: str = ""
    draft: bool = True


class MergePr(ActionParams):
    method: Literal["merge", "squash", "rebase"] = "squash"


class MentionUsers(ActionParams):
    users: Names
    message: Text


class PostChannel(ActionParams):
    text: Text
    channel: str | None = None  # None: the task's own Slack channel, at the top level


_EMOJI = r"^[a-z0-9_+-]+(::skin-tone-[2-6])?$"


class React(ActionParams):
    """An emoji reaction on the task's issue, pull request or Slack message: a GitHub reaction
    name (+1, -1, laugh, confused, heart, hooray, rocket, eyes) or a Slack emoji name, with
    or without its colons."""

    emoji: Annotated[str, Field(pattern=_EMOJI)] = "eyes"

    @model_validator(mode="before")
    @classmethod
    def _name(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and isinstance(data.get("emoji"), str):
            return {**data, "emoji": data["emoji"].strip().strip(":").lower()}
        return data


class RunCommand(ActionParams):
    argv: Names


@dataclass(frozen=True, slots=True)
class ActionSpec:
    type: str
    params: builtins.type[ActionParams]
    idempotent: bool = False  # sending twice leaves the same state as sending once
    marker_field: str | None = None  # the posted text that carries the hidden key marker


_SPECS = (
    ActionSpec("add_labels", AddLabels, idempotent=True),
    ActionSpec("remove_labels", RemoveLabels, idempotent=True),
    ActionSpec("set_priority", SetPriority, idempotent=True),
    ActionSpec("set_state", SetState, idempotent=True),
    ActionSpec("assign", Assign, idempotent=True),
    ActionSpec("comment", Comment, marker_field="body"),
    ActionSpec("create_issue", CreateIssue, marker_field="body"),
    ActionSpec("review", Review, marker_field="summary"),
    ActionSpec("set_check", SetCheck),
    ActionSpec("close_issue", CloseIssue, idempotent=True),
    ActionSpec("create_pr", CreatePr, marker_field="body"),
    ActionSpec("merge_pr", MergePr),
    ActionSpec("mention_users", MentionUsers, marker_field="message"),
    ActionSpec("post_channel", PostChannel),
    ActionSpec("react", React, idempotent=True),
    ActionSpec("run_command", RunCommand),
)
Registry = Mapping[str, ActionSpec]
REGISTRY: Registry = {spec.type: spec for spec in _SPECS}
# Platforms whose markdown hides an HTML comment, so a posted body can carry the marker.
MARKER_PLATFORMS = frozenset({"github"})


@dataclass(frozen=True, slots=True)
class Target:
    """What the task's actions act on, built from the task's event (`target_from_event`)."""

    platform: str  # "github" | "linear" | "slack"; "sentry" etc.: a source with no writes
    repo: str | None = None  # GitHub "owner/name"
    number: int | None = None  # GitHub issue or pull request number
    issue_id: str | None = None  # Linear issue id
    team_id: str | None = None  # Linear team id
    channel: str | None = None  # Slack channel id
    thread_ts: str | None = None  # Slack thread to answer in
    message_ts: str | None = None  # Slack message the event is about (what `react` reacts to)
    head_sha: str | None = None  # GitHub head commit (pull request, check run, push)
    pull_request: bool | None = None  # GitHub: the number is a pull request (None: unknown)
    branch: str | None = None  # GitHub: a pull request's base branch, or the branch pushed to
    lines_changed: int | None = None  # GitHub: a pull request's additions + deletions


@dataclass(frozen=True, slots=True)
class ParsedAction:
    index: int
    key: str
    spec: ActionSpec
    params: ActionParams
    reasoning: str = ""

    @property
    def type(self) -> str:
        return self.spec.type

    def params_json(self) -> dict[str, Any]:
        return self.params.model_dump(mode="json")

    def for_sending(self, target: Target) -> ParsedAction:
        """This action with its key's hidden marker in the posted text, where it can hide."""
        name = self.spec.marker_field
        if name is None or target.platform not in MARKER_PLATFORMS:
            return self
        marked = with_marker(str(getattr(self.params, name)), self.key)
        return ParsedAction(
            self.index,
            self.key,
            self.spec,
            self.params.model_copy(update={name: marked}),
            self.reasoning,
        )


@dataclass(frozen=True, slots=True)
class InvalidAction:
    """A proposed action that is not one: unknown type or bad params; recorded as skipped."""

    index: int
    key: str
    type: str
    params: dict[str, Any]
    error: str
    reasoning: str = ""


def _errors(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in err["loc"]) or "params"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def parse_action(
    task_id: str, index: int, raw: Any, registry: Registry = REGISTRY
) -> ParsedAction | InvalidAction:
    item = raw if isinstance(raw, Mapping) else {}
    name = str(item.get("type", ""))
    params = item.get("params", {})
    params = dict(params) if isinstance(params, Mapping) else {"_": params}
    reasoning = str(item.get("reasoning", ""))

    def invalid(error: str) -> InvalidAction:
        key = action_key(task_id, index, name, params)
        return InvalidAction(index, key, name, params, error, reasoning)

    if not isinstance(raw, Mapping):
        return invalid(f"an action must be an object, not {type(raw).__name__}")
    spec = registry.get(ALIASES.get(name, name))
    if spec is None:
        return invalid(f"unknown action type {name!r}")
    try:
        model = spec.params.model_validate(params)
    except ValidationError as exc:
        return invalid(f"invalid params for {spec.type}: {_errors(exc)}")
    key = action_key(task_id, index, spec.type, model.model_dump(mode="json"))
    return ParsedAction(index, key, spec, model, reasoning)


def parse_actions(
    task_id: str, result_actions: Sequence[Any], registry: Registry = REGISTRY
) -> list[ParsedAction | InvalidAction]:
    """Each proposed action typed, or marked invalid with the reason; none stops the rest."""
    return [parse_action(task_id, i, raw, registry) for i, raw in enumerate(result_actions)]
