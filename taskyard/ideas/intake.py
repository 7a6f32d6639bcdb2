"""Ideas from GitHub and Discord: an interceptor of the routing job (`Pipeline(interceptors=
[...])`) that takes the deliveries which are ideas, submits them, and answers where they came
from. (The CLI and the API submit through `IdeaService` and answer themselves.)

- GitHub `issues.opened`, when the issue carries the `ideas.github_label` label or was written
  from the idea issue form (a `### Goal` section): the form's sections are the idea (a
  labelled issue without the form is its title and text); the repository is the issue's
  unless the form names one.
- Discord's `/idea` slash command (an `application_command` named `idea`): its options are
  the idea; the intake has already answered "thinking…" (`{"type": 5}`), and the answer here
  replaces it through the interaction's webhook: the idea's link, or what is missing.

A delivery is submitted under its own key (the event's id; Discord's interaction id), so one
routed twice makes one idea. An idea with a missing or wrong field is not registered: a
comment on the issue (or the Discord answer) says what is wrong. Failing to say it does not
fail the event: the idea's fate is decided either way, and it is logged."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from taskyard.actions.keys import with_marker
from taskyard.config import Settings
from taskyard.exceptions import TaskyardError
from taskyard.idea import Idea
from taskyard.ideas.service import IdeaService
from taskyard.ideas.shape import from_issue_form, from_options, is_idea_form, parse
from taskyard.models import Decision, Event
from taskyard.platforms.clients import retry_policy
from taskyard.platforms.discord_write import DiscordWebhooks
from taskyard.platforms.github_write import comment
from taskyard.platforms.writes import PlatformWriter
from taskyard.routing.job import Consumed
from taskyard.store.base import Store

log = logging.getLogger(__name__)
IDEAS_ROUTE = "ideas"  # the decision recorded for an event that brought an idea
COMMAND = "idea"  # Discord's slash command
Payload = Mapping[str, Any]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _at(payload: Payload, *keys: str) -> Any:
    value: Any = payload
    for key in keys:
        value = value.get(key) if isinstance(value, Mapping) else None
    return value


def refusal(problems: list[str]) -> str:
    return "This idea was not registered: " + "; ".join(problems) + "."


class IdeaIntake:
    """`link_root`: where people open taskyard (an idea's page is `{link_root}/ui/ideas/{id}`).
    `github`: the GitHub writer, when taskyard can write there (else a refusal is logged
    only)."""

    def __init__(
        self,
        service: IdeaService,
        github_label: str,
        link_root: str,
        discord: DiscordWebhooks,
        github: PlatformWriter | None = None,
    ) -> None:
        self.service = service
        self.github_label = github_label
        self.link_root = link_root.rstrip("/")
        self.discord = discord
        self.github = github
        self._handlers: dict[str, Callable[[Event, Payload], Awaitable[str | None]]] = {
            "github:issues.opened": self._from_github,
            "discord:application_command": self._from_discord,
        }

    @classmethod
    def from_settings(
        cls, settings: Settings, store: Store, github: PlatformWriter | None
    ) -> IdeaIntake:
        ideas = settings.ideas
        discord = DiscordWebhooks(
            ideas.discord_api_url,
            timeout=settings.platforms.request_timeout_seconds,
            retry=retry_policy(settings.platforms),
        )
        root = ideas.public_url or f"http://{settings.host}:{settings.port}"
        service = IdeaService(store, budget_usd=ideas.budget_usd)
        return cls(service, ideas.github_label, root, discord, github)

    def link(self, idea: Idea) -> str:
        return f"{self.link_root}/ui/ideas/{idea.id}"

    async def intercept(self, event: Event, payload: Payload) -> Consumed | None:
        """What became of the idea `event` brings (the event's decision, route `ideas`); None
        when it brings none."""
        handler = self._handlers.get(event.type)
        said = None if handler is None else await handler(event, payload)
        return None if said is None else Consumed(said, IDEAS_ROUTE, Decision.IDEA)

    async def aclose(self) -> None:
        await self.discord.aclose()

    # --- GitHub ---------------------------------------------------------------------------

    def _is_idea(self, issue: Payload) -> bool:
        labels = issue.get("labels")
        found = labels if isinstance(labels, list) else []
        names = {_text(label.get("name")) for label in found if isinstance(label, Mapping)}
        return self.github_label in names or is_idea_form(_text(issue.get("body")))

    async def _from_github(self, event: Event, payload: Payload) -> str | None:
        issue = payload.get("issue")
        if not isinstance(issue, Mapping) or not self._is_idea(issue):
            return None
        body, repo = _text(issue.get("body")), _text(_at(payload, "repository", "full_name"))
        if is_idea_form(body):
            data = from_issue_form(body)
        else:  # labelled, no form: the issue as written
            data = {"goal": f"{_text(issue.get('title'))}\n\n{body}".strip()}
        data.setdefault("repo", repo or None)
        origin = {
            "platform": "github",
            "repo": repo,
            "number": issue.get("number"),
            "actor": _text(_at(payload, "sender", "login")) or None,
            "url": _text(issue.get("html_url")) or None,
        }
        return await self._submit(event, data, origin, event.id, self._say_on_github)

    async def _say_on_github(self, event: Event, origin: Payload, text: str) -> None:
        repo, number = _text(origin.get("repo")), origin.get("number")
        if self.github is None or not repo or not isinstance(number, int):
            log.warning(
                "idea refusal not posted: taskyard cannot write to GitHub",
                extra={"event_id": event.id, "said": text},
            )
            return
        await self.github.send(comment(repo, number, with_marker(text, f"idea.{event.id}")))

    # --- Discord --------------------------------------------------------------------------

    async def _from_discord(self, event: Event, payload: Payload) -> str | None:
        if _at(payload, "data", "name") != COMMAND:
            return None
        options = _at(payload, "data", "options")
        data = from_options(o for o in options if isinstance(o, Mapping)) if options else {}
        origin = {
            "platform": "discord",
            "application_id": _text(payload.get("application_id")) or None,
            "interaction_id": _text(payload.get("id")) or None,
            "guild_id": _text(payload.get("guild_id")) or None,
            "channel_id": _text(payload.get("channel_id")) or None,
            "actor": _text(_at(payload, "member", "user", "username"))
            or _text(_at(payload, "user", "username"))
            or None,
        }
        key = _text(payload.get("id")) or event.id
        token = _text(payload.get("token"))

        async def say(event: Event, origin: Payload, text: str) -> None:
            app_id = _text(origin.get("application_id"))
            if not app_id or not token:
                log.warning("idea answer not sent: the interaction has no application id or token")
                return
            await self.discord.answer(app_id, token, text)

        return await self._submit(event, data, origin, key, say, tell_link=True)

    # --- both -----------------------------------------------------------------------------

    async def _submit(
        self,
        event: Event,
        data: Payload,
        origin: dict[str, Any],
        key: str,
        say: Callable[[Event, Payload, str], Awaitable[None]],
        tell_link: bool = False,
    ) -> str:
        """Register the idea (or not: say why where it came from); what became of it."""
        shape, problems = parse(data)
        if shape is None:
            await self._say(say, event, origin, refusal(problems))
            return f"idea refused: {'; '.join(problems)}"
        idea = await asyncio.to_thread(self.service.submit, shape.submitted(), origin, key)
        log.info("idea registered", extra={"event_id": event.id, "idea_id": idea.id})
        if tell_link:
            await self._say(say, event, origin, f"Idea registered: {self.link(idea)}")
        return f"idea {idea.id} registered"

    async def _say(
        self,
        say: Callable[[Event, Payload, str], Awaitable[None]],
        event: Event,
        origin: Payload,
        text: str,
    ) -> None:
        try:
            await say(event, origin, text)
        except TaskyardError as exc:  # the idea's fate stands, said or not
            log.warning("idea answer not sent", extra={"event_id": event.id, "error": str(exc)})
