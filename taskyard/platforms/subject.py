"""What context fetchers need to know about an event, read from the platform's payload."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ContextSubject:
    """The thing an event is about, as far as the platform reads go. Fields a payload does
    not carry stay None; a fetcher that needs one fails permanently, saying which."""

    source: str
    repo: str | None = None  # GitHub "owner/name"
    number: int | None = None  # GitHub pull request or issue number
    is_pull_request: bool = False
    installation_id: int | None = None  # GitHub App installation that sent the event
    linear_issue_id: str | None = None
    linear_team_id: str | None = None
    title: str | None = None  # the issue's / PR's title, when the payload has it
    slack_channel: str | None = None
    slack_thread_ts: str | None = None
    sentry_issue_id: str | None = None
    sentry_organization: str | None = None
    sentry_project: str | None = None


def _at(payload: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(payload, Mapping):
            return None
        payload = payload.get(key)
    return payload


def _text(value: Any) -> str | None:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def _github(payload: Mapping[str, Any]) -> ContextSubject:
    pull = _at(payload, "pull_request")
    issue = _at(payload, "issue")
    check_prs = _at(payload, "check_run", "pull_requests") or _at(
        payload, "check_suite", "pull_requests"
    )
    from_check = check_prs[0] if isinstance(check_prs, list) and check_prs else None
    number = _int(_first(_at(pull, "number"), _at(issue, "number"), _at(from_check, "number")))
    is_pr = pull is not None or from_check is not None or _at(issue, "pull_request") is not None
    return ContextSubject(
        source="github",
        repo=_text(_at(payload, "repository", "full_name")),
        number=number,
        is_pull_request=number is not None and is_pr,
        installation_id=_int(_at(payload, "installation", "id")),
        title=_text(_first(_at(pull, "title"), _at(issue, "title"))),
    )


def _linear(payload: Mapping[str, Any]) -> ContextSubject:
    data = _at(payload, "data")
    is_issue = payload.get("type") == "Issue"
    issue_id = (
        _at(data, "id") if is_issue else _first(_at(data, "issueId"), _at(data, "issue", "id"))
    )
    holder = data if is_issue else _at(data, "issue")
    team = _first(_at(holder, "teamId"), _at(holder, "team", "id"))
    return ContextSubject(
        source="linear",
        linear_issue_id=_text(issue_id),
        linear_team_id=_text(_first(team, _at(data, "teamId"))),
        title=_text(_at(holder, "title")),
    )


def _slack(payload: Mapping[str, Any]) -> ContextSubject:
    event = _at(payload, "event")
    if isinstance(event, Mapping):  # Events API
        inner = _at(event, "message") if event.get("subtype") == "message_changed" else event
        channel = _first(
            _text(_at(event, "channel")),
            _text(_at(event, "channel", "id")),
            _text(_at(event, "item", "channel")),
        )
        ts = _first(_at(inner, "thread_ts"), _at(inner, "ts"), _at(event, "item", "ts"))
    elif "command" in payload:  # slash command: no message to read a thread from
        channel, ts = _text(payload.get("channel_id")), None
    else:  # interaction (block_actions, message_action, ...)
        channel = _first(
            _text(_at(payload, "channel", "id")),
            _text(payload.get("channel_id")),
            _text(_at(payload, "container", "channel_id")),
        )
        ts = _first(
            _at(payload, "container", "thread_ts"),
            _at(payload, "message", "thread_ts"),
            _at(payload, "message", "ts"),
            _at(payload, "container", "message_ts"),
        )
    return ContextSubject(source="slack", slack_channel=channel, slack_thread_ts=_text(ts))


def _sentry(payload: Mapping[str, Any]) -> ContextSubject:
    data = _at(payload, "data")
    issue_id = _first(
        _at(data, "issue", "id"), _at(data, "event", "issue_id"), _at(data, "issue_id")
    )
    project = _first(
        _at(data, "issue", "project", "slug"),
        _at(data, "project_slug"),
        _at(data, "event", "project"),
    )
    return ContextSubject(
        source="sentry",
        sentry_issue_id=_text(issue_id),
        sentry_organization=_text(_at(payload, "installation", "organization", "slug")),
        sentry_project=_text(project),
        title=_text(_first(_at(data, "issue", "title"), _at(data, "event", "title"))),
    )


_READERS: dict[str, Callable[[Mapping[str, Any]], ContextSubject]] = {
    "github": _github,
    "linear": _linear,
    "slack": _slack,
    "sentry": _sentry,
}


def subject_from_payload(source: str, payload: Mapping[str, Any]) -> ContextSubject:
    """The subject of a delivery's parsed payload. Sources without platform reads (discord,
    generic:<name>) give a subject with only `source` set."""
    reader = _READERS.get(source)
    return reader(payload) if reader is not None else ContextSubject(source=source)
