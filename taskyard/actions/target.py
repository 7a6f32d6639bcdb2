"""The `Target` of a task's actions: the platform thing its event came from.

- GitHub: the repository, the issue or pull request number (when the event has one), whether
  it is a pull request, and the head commit (pull request, check run/suite, workflow run,
  push) that reviews and check runs need; for risk rules, the branch the change goes to (a
  pull request's base, or the branch a push went to) and a pull request's size (additions +
  deletions, when the payload counts them: `pull_request` events do, reviews do not).
- Linear: the issue and its team.
- Slack: the channel, the thread to answer in (the message's `thread_ts`, or its own `ts`
  so that a reply starts a thread under it) and the message itself (`message_ts`, what a
  reaction goes on; none for a slash command).
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


# Where a GitHub payload lists the pull requests a check or workflow run belongs to.
_RUN_PULLS = (("check_run", "pull_requests"), ("check_suite", "pull_requests"))
_BRANCH_REF = "refs/heads/"


def branch(payload: Mapping[str, Any]) -> str | None:
    """The branch a GitHub payload's change goes to: its pull request's base (also the first
    pull request of a check run or suite), else the branch a push went to (none for a tag)."""
    base = _at(payload, ("pull_request", "base", "ref"))
    for path in _RUN_PULLS:
        pulls = _at(payload, path)
        if base is None and isinstance(pulls, list) and pulls:
            base = _at(pulls[0], ("base", "ref"))
    if isinstance(base, str) and base:
        return base
    ref = payload.get("ref")
    if isinstance(ref, str) and ref.startswith(_BRANCH_REF):
        return ref.removeprefix(_BRANCH_REF) or None
    return None


def lines_changed(payload: Mapping[str, Any]) -> int | None:
    """A GitHub pull request's additions + deletions, when the payload counts both."""
    added = _at(payload, ("pull_request", "additions"))
    deleted = _at(payload, ("pull_request", "deletions"))
    counted = all(isinstance(n, int) and not isinstance(n, bool) for n in (added, deleted))
    return int(added) + int(deleted) if counted else None


def _github(subject: ContextSubject, payload: Mapping[str, Any], team: str | None) -> Target:
    return Target(
        platform="github",
        repo=subject.repo,
        number=subject.number,
        pull_request=subject.is_pull_request if subject.number is not None else None,
        head_sha=head_sha(payload),
        team_id=team,
        branch=branch(payload),
        lines_changed=lines_changed(payload),
    )


def _linear(subject: ContextSubject, payload: Mapping[str, Any], team: str | None) -> Target:
    return Target(
        platform="linear",
        issue_id=subject.linear_issue_id,
        team_id=subject.linear_team_id or team,
    )


# Where a Slack payload names the message it is about: Events API (an edited message's new
# version, the message, a reaction's item), then interactions.
_MESSAGE_TS_PATHS: tuple[tuple[str, ...], ...] = (
    ("event", "message", "ts"),
    ("event", "ts"),
    ("event", "item", "ts"),
    ("message", "ts"),
    ("container", "message_ts"),
)


def message_ts(payload: Mapping[str, Any]) -> str | None:
    """The `ts` of the Slack message a payload is about, if it names one."""
    event = payload.get("event")
    paths = _MESSAGE_TS_PATHS
    if isinstance(event, Mapping) and event.get("subtype") != "message_changed":
        paths = paths[1:]
    for path in paths:
        value = _at(payload, path)
        if isinstance(value, str) and value:
            return value
    return None


def _slack(subject: ContextSubject, payload: Mapping[str, Any], team: str | None) -> Target:
    return Target(
        platform="slack",
        channel=subject.slack_channel,
        thread_ts=subject.slack_thread_ts,
        message_ts=message_ts(payload),
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
