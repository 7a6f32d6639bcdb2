"""What routing needs to know about one event, read once from its payload, per source.

Each source's payload says the same things in its own words: who acted (and whether a bot),
what the event is about (repository, number, head commit, channel, URL), which label was added,
who was assigned, the text of a comment or message, a Sentry level or project. `facts_of`
reads them into one `Facts` value that triggers, filters and who-rules then use.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from taskyard.config.routes import RoutingSettings
from taskyard.models import Event
from taskyard.util.paths import dig


@dataclass(frozen=True, slots=True)
class Actor:
    """Who caused the event. `login` is the name who-rules and messages use (GitHub login,
    Slack user id, Linear name or email, …); `aliases` are the other identities the payload
    gives (ids, emails, display names)."""

    login: str | None
    aliases: tuple[str, ...] = ()
    bot: bool = False
    association: str | None = None  # GitHub author_association, when it is about this actor

    def known_as(self, names: Iterable[str]) -> bool:
        mine = {n.casefold() for n in (self.login, *self.aliases) if n}
        return any(n.casefold() in mine for n in names)


@dataclass(frozen=True, slots=True)
class Subject:
    """What the event is about; fields a source does not have stay None."""

    source: str
    ref: str | None  # the event's normalised subject: "acme/api#2", "KOR-11", "C0BUGS", …
    repo: str | None = None  # GitHub "owner/name"
    number: int | None = None  # pull request / issue number
    pull_request: bool = False
    head_sha: str | None = None
    head_ref: str | None = None
    base_ref: str | None = None
    base_sha: str | None = None
    url: str | None = None
    channel: str | None = None  # Slack/Discord channel id
    thread: str | None = None  # Slack thread ts (a top-level message starts its own)


@dataclass(frozen=True, slots=True)
class Facts:
    subject: Subject
    actor: Actor
    draft: bool = False
    text: str | None = None  # comment, review or message body; a slash command with its text
    added_labels: tuple[str, ...] = ()  # names (and Linear ids) of labels this event added
    assigned: tuple[str, ...] = ()  # identities this event assigned (or asked for review)
    channels: tuple[str, ...] = ()  # channel id and name
    level: str | None = None  # Sentry level
    projects: tuple[str, ...] = ()  # Sentry project slug, name, id
    event_type: str = ""  # the normalised type: "github:issue_comment.created"
    # The payload itself, for a trigger that reads more of it than these facts (`fix`).
    payload: Mapping[str, Any] = field(default_factory=dict)


def facts_of(event: Event, payload: Any, settings: RoutingSettings) -> Facts:
    reader = _READERS.get(event.source, _generic)
    data = payload if isinstance(payload, dict) else {}
    return replace(reader(event, data, settings), event_type=event.type, payload=data)


def text(payload: Any, *paths: str) -> str | None:
    """The first non-empty string (or integer, as a string) found at one of the paths."""
    for path in paths:
        value = dig(payload, path)
        if isinstance(value, str) and value:
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
    return None


def texts(payload: Any, *paths: str) -> tuple[str, ...]:
    return tuple(t for t in (text(payload, p) for p in paths) if t)


def _number(payload: Any, *paths: str) -> int | None:
    for path in paths:
        value = dig(payload, path)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return int(value)
    return None


def _same(name: str | None, other: str | None) -> bool:
    return bool(name and other and name.casefold() == other.casefold())


# GitHub ------------------------------------------------------------------------------------

_AUTHORED = ("comment", "review", "pull_request", "issue", "discussion")
_GITHUB_TEXT = ("comment.body", "review.body", "pull_request.body", "issue.body", "discussion.body")
_GITHUB_HEAD_SHA = (
    "pull_request.head.sha",
    "check_run.head_sha",
    "check_suite.head_sha",
    "workflow_run.head_sha",
    "after",  # push
)
_GITHUB_HEAD_REF = (
    "pull_request.head.ref",
    "check_suite.head_branch",
    "workflow_run.head_branch",
    "ref",  # push
)
_GITHUB_URL = (
    "pull_request.html_url",
    "issue.html_url",
    "discussion.html_url",
    "comment.html_url",
    "repository.html_url",
)


def _github(event: Event, payload: dict[str, Any], settings: RoutingSettings) -> Facts:
    action = payload.get("action")
    return Facts(
        subject=_github_subject(event, payload),
        actor=_github_actor(payload, settings),
        draft=dig(payload, "pull_request.draft") is True or dig(payload, "issue.draft") is True,
        text=text(payload, *_GITHUB_TEXT),
        added_labels=texts(payload, "label.name") if action == "labeled" else (),
        assigned=_github_assigned(payload, action),
    )


def _github_subject(event: Event, payload: dict[str, Any]) -> Subject:
    return Subject(
        source=event.source,
        ref=event.subject,
        repo=text(payload, "repository.full_name"),
        number=_number(payload, "pull_request.number", "issue.number", "number"),
        pull_request="pull_request" in payload or dig(payload, "issue.pull_request") is not None,
        head_sha=text(payload, *_GITHUB_HEAD_SHA),
        head_ref=text(payload, *_GITHUB_HEAD_REF),
        base_ref=text(payload, "pull_request.base.ref"),
        base_sha=text(payload, "pull_request.base.sha"),
        url=text(payload, *_GITHUB_URL),
    )


def _github_actor(payload: dict[str, Any], settings: RoutingSettings) -> Actor:
    login = text(payload, "sender.login")
    bot = (
        dig(payload, "sender.type") == "Bot"
        or bool(login and login.endswith("[bot]"))
        or _same(login, settings.bot_user)
    )
    return Actor(
        login=login,
        aliases=texts(payload, "sender.id"),
        bot=bot,
        association=_association(payload, login),
    )


def _association(payload: dict[str, Any], login: str | None) -> str | None:
    """The author_association of the first object the sender wrote (their comment, review,
    pull request or issue). Another author's association says nothing about the sender."""
    for key in _AUTHORED:
        item = payload.get(key)
        if isinstance(item, dict) and _same(text(item, "user.login"), login):
            return text(item, "author_association")
    return None


def _github_assigned(payload: dict[str, Any], action: Any) -> tuple[str, ...]:
    if action == "assigned":
        return texts(payload, "assignee.login")
    if action == "review_requested":
        return texts(payload, "requested_reviewer.login")
    return ()


# Linear ------------------------------------------------------------------------------------

_LINEAR_BOT_WORDS = ("integration", "oauth", "bot", "app")


def _linear(event: Event, payload: dict[str, Any], settings: RoutingSettings) -> Facts:
    return Facts(
        subject=Subject(
            source=event.source,
            ref=event.subject,
            number=_number(payload, "data.number"),
            url=text(payload, "url"),
        ),
        actor=_linear_actor(payload, settings),
        text=text(payload, "data.body", "data.description"),
        added_labels=_linear_added_labels(payload),
        assigned=_linear_assigned(payload),
    )


def _linear_actor(payload: dict[str, Any], settings: RoutingSettings) -> Actor:
    names = texts(payload, "actor.name", "actor.email", "actor.id")
    if not names:  # older payloads have no actor: the creator (issues) or author (comments)
        names = texts(payload, "data.creatorId", "data.userId")
    kind = (text(payload, "actor.type") or "").casefold()
    created_by_bot = payload.get("action") == "create" and bool(dig(payload, "data.botActor"))
    login, aliases = (names[0], names[1:]) if names else (None, ())
    ours = Actor(login, aliases).known_as([settings.linear_bot_user or ""])
    bot = any(word in kind for word in _LINEAR_BOT_WORDS) or created_by_bot or ours
    return Actor(login=login, aliases=aliases, bot=bot)


def _linear_added_labels(payload: dict[str, Any]) -> tuple[str, ...]:
    labels = [item for item in dig(payload, "data.labels[]") if isinstance(item, dict)]
    if payload.get("action") == "update":
        before = dig(payload, "updatedFrom.labelIds")
        if not isinstance(before, list):  # labels did not change in this update
            return ()
        labels = [item for item in labels if item.get("id") not in before]
    return tuple(t for item in labels for t in texts(item, "name", "id"))


def _linear_assigned(payload: dict[str, Any]) -> tuple[str, ...]:
    changed = dig(payload, "updatedFrom")
    found: list[str] = []
    for role in ("assignee", "delegate"):
        if payload.get("action") == "update" and (
            not isinstance(changed, dict) or f"{role}Id" not in changed
        ):
            continue
        found += texts(payload, f"data.{role}.id", f"data.{role}.name", f"data.{role}.email")
        found += texts(payload, f"data.{role}Id")
    return tuple(found)


# Slack -------------------------------------------------------------------------------------


def _slack(event: Event, payload: dict[str, Any], settings: RoutingSettings) -> Facts:
    if isinstance(payload.get("command"), str):
        return _slack_command(event, payload)
    if payload.get("type") == "event_callback":
        return _slack_event(event, payload)
    return _slack_interaction(event, payload)


def _slack_event(event: Event, payload: dict[str, Any]) -> Facts:
    channel = text(payload, "event.channel", "event.channel.id", "event.item.channel")
    bot = bool(dig(payload, "event.bot_id")) or dig(payload, "event.subtype") == "bot_message"
    return Facts(
        subject=Subject(
            source=event.source,
            ref=event.subject,
            channel=channel,
            thread=text(payload, "event.thread_ts", "event.ts"),
        ),
        actor=Actor(
            login=text(payload, "event.user", "event.user.id", "event.message.user"),
            aliases=texts(payload, "event.username", "event.bot_id"),
            bot=bot,
        ),
        text=text(payload, "event.text", "event.message.text"),
        channels=(channel,) if channel else (),
    )


def _slack_command(event: Event, payload: dict[str, Any]) -> Facts:
    channels = texts(payload, "channel_id", "channel_name")
    command = " ".join(texts(payload, "command", "text"))
    return Facts(
        subject=Subject(
            source=event.source, ref=event.subject, channel=text(payload, "channel_id")
        ),
        actor=Actor(login=text(payload, "user_id"), aliases=texts(payload, "user_name")),
        text=command,
        channels=channels,
    )


def _slack_interaction(event: Event, payload: dict[str, Any]) -> Facts:
    channels = texts(payload, "channel.id", "channel.name", "channel_id")
    return Facts(
        subject=Subject(
            source=event.source,
            ref=event.subject,
            channel=channels[0] if channels else None,
            thread=text(payload, "message.thread_ts", "message.ts", "container.message_ts"),
        ),
        actor=Actor(
            login=text(payload, "user.id", "user_id"),
            aliases=texts(payload, "user.username", "user.name"),
        ),
        channels=channels,
    )


# Sentry ------------------------------------------------------------------------------------


_SENTRY_PROJECT = (
    "data.issue.project.slug",
    "data.issue.project.name",
    "data.issue.project.id",
    "data.event.project",
    "data.project_slug",
)


def _sentry(event: Event, payload: dict[str, Any], settings: RoutingSettings) -> Facts:
    names = texts(payload, "actor.name", "actor.id")
    # Sentry itself (actor id "sentry") sends issue and alert events; another application
    # acting through the API is a bot.
    bot = dig(payload, "actor.type") == "application" and text(payload, "actor.id") != "sentry"
    return Facts(
        subject=Subject(
            source=event.source,
            ref=event.subject,
            url=text(payload, "data.issue.permalink", "data.issue.web_url", "data.event.web_url"),
        ),
        actor=Actor(login=names[0] if names else None, aliases=names[1:], bot=bot),
        text=text(payload, "data.comment"),
        level=text(payload, "data.issue.level", "data.event.level"),
        projects=texts(payload, *_SENTRY_PROJECT),
    )


# Discord and generic sources ---------------------------------------------------------------


def _discord(event: Event, payload: dict[str, Any], settings: RoutingSettings) -> Facts:
    user = "member.user" if isinstance(dig(payload, "member.user"), dict) else "user"
    name = text(payload, "data.name")
    channels = texts(payload, "channel_id", "channel.id", "channel.name")
    return Facts(
        subject=Subject(
            source=event.source,
            ref=event.subject,
            channel=channels[0] if channels else None,
        ),
        actor=Actor(
            login=text(payload, f"{user}.username", f"{user}.id"),
            aliases=texts(payload, f"{user}.id", f"{user}.global_name"),
            bot=dig(payload, f"{user}.bot") is True,
        ),
        text=f"/{name}" if name else None,
        channels=channels,
    )


def _generic(event: Event, payload: dict[str, Any], settings: RoutingSettings) -> Facts:
    return Facts(
        subject=Subject(source=event.source, ref=event.subject),
        actor=Actor(login=event.actor),
    )


_READERS: dict[str, Callable[[Event, dict[str, Any], RoutingSettings], Facts]] = {
    "github": _github,
    "linear": _linear,
    "slack": _slack,
    "sentry": _sentry,
    "discord": _discord,
}
