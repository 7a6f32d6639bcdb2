"""The `Target` of a task's actions: the platform thing its event came from.

- GitHub: the repository, the issue or pull request number (when the event has one), whether
  it is a pull request, and the head commit (pull request, check run/suite, workflow run,
  push) that reviews and check runs need.
- Linear: the issue and its team.
- Slack: the channel and the thread to answer in (the message's `thread_ts`, or its own `ts`
  so that a reply starts a thread under it).
- Sentry and other sources have nothing taskyard writes to: the target keeps the source as
  its platform, so that every action on it fails to plan with a reason, except the ones that
  go elsewhere (`create_issue` to Linear, `post_channel` to a named Slack channel).

`default_linear_team` (config) is where `create_issue` opens Linear issues when the event
names no team: it fills `team_id` whenever the payload has none.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from taskyard.actions.models import Target
from taskyard.models import Event
from taskyard.platforms.subject import ContextSubject, subject_from_payload

# Where a GitHub payload names the commit the event is about, most specific first.
_HEAD_SHA_PATHS = (
    ("pull_request", "head", "sha"),
    ("check_run", "head_sha"),
    ("check_suite", "head_sha"),
    ("workflow_run", "head_sha"),
    ("after",),  # push
)
_NO_COMMIT = "0" * 40  # a push that deleted its branch


def _at(payload: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(payload, Mapping):
            return None
        payload = payload.get(key)
    return payload


def head_sha(payload: Mapping[str, Any]) -> str | None:
    """The head commit a GitHub payload is about, if it names one."""
    for path in _HEAD_SHA_PATHS:
        value = _at(payload, path)
        if isinstance(value, str) and value and value != _NO_COMMIT:
            return value
    return None


def _github(subject: ContextSubject, payload: Mapping[str, Any], team: str | None) -> Target:
    return Target(
        platform="github",
        repo=subject.repo,
        number=subject.number,
        pull_request=subject.is_pull_request if subject.number is not None else None,
        head_sha=head_sha(payload),
        team_id=team,
    )


def _linear(subject: ContextSubject, payload: Mapping[str, Any], team: str | None) -> Target:
    return Target(
        platform="linear",
        issue_id=subject.linear_issue_id,
        team_id=subject.linear_team_id or team,
    )


def _slack(subject: ContextSubject, payload: Mapping[str, Any], team: str | None) -> Target:
    return Target(
        platform="slack",
        channel=subject.slack_channel,
        thread_ts=subject.slack_thread_ts,
        team_id=team,
    )


_BUILDERS: Mapping[str, Callable[[ContextSubject, Mapping[str, Any], str | None], Target]] = {
    "github": _github,
    "linear": _linear,
    "slack": _slack,
}


def target_from_event(
    event: Event, payload: Mapping[str, Any], *, default_linear_team: str | None = None
) -> Target:
    """What the actions of a task started by `event` (whose parsed body is `payload`) act on.
    Fields the payload does not carry stay None; planning an action that needs one fails
    with a reason."""
    subject = subject_from_payload(event.source, payload)
    build = _BUILDERS.get(event.source)
    if build is None:
        return Target(platform=event.source, team_id=default_linear_team)
    return build(subject, payload, default_linear_team)
