"""One-liner triggers: the usual reasons to start a route, each one key in a route.

  label            a label was added: GitHub `labeled`; Linear labels on create, or added in
                   an update
  command          a line of the comment, review or message starts with it (`/review`); the
                   rest of that line becomes the command's arguments. A Slack slash command
                   and a Discord application command count as their own name.
  phrase           the comment or message holds it anywhere, case-insensitively
  assigned_to_bot  the event assigned `routing.bot_user` (GitHub issue/PR assignment or review
                   request) or `routing.linear_bot_user` (Linear assignee or delegate)
  channel          the Slack/Discord channel, by id or name
  bugs_channel     in `routing.slack_bugs_channel`
  level / project  Sentry issue or alert level / project slug, name or id
  fix              a person asks for a pull-request fix: a new PR comment, inline comment or
                   changes-requested review saying the phrase (`taskyard.routing.fixes`);
                   never taskyard's own words, a bot, an edit or a draft; with
                   `on_ci_failure`, also a failed check on a PR's head (`routing.cifixes`)
Every trigger a route sets must hold. Names compare case-insensitively.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from taskyard.config.routes import RouteConfig, RoutingSettings
from taskyard.routing.cifixes import ci_fix_request, is_check_event
from taskyard.routing.facts import Facts
from taskyard.routing.fixes import FixSkip, fix_request


@dataclass(frozen=True, slots=True)
class TriggerResult:
    held: bool
    note: str  # what fired ("label agent"), or why it did not
    args: str | None = None  # a command's arguments


Trigger = Callable[[RouteConfig, Facts, RoutingSettings], TriggerResult | None]


def _folded(names: Iterable[str]) -> set[str]:
    return {n.strip().lstrip("#").casefold() for n in names}


def _listing(names: Iterable[str]) -> str:
    return ", ".join(names)


def _fail(reason: str) -> TriggerResult:
    return TriggerResult(False, reason)


def _label(route: RouteConfig, facts: Facts, settings: RoutingSettings) -> TriggerResult | None:
    if not route.label:
        return None
    wanted = _folded(route.label)
    for label in facts.added_labels:
        if label.casefold() in wanted:
            return TriggerResult(True, f"label {label} added")
    if facts.added_labels:
        return _fail(f"label {_listing(facts.added_labels)} added, not {_listing(route.label)}")
    return _fail(f"no label added (wants {_listing(route.label)})")


def find_command(text: str, commands: Iterable[str]) -> tuple[str, str] | None:
    """(command, arguments) of the first line that starts with one of the commands."""
    wanted = {c.casefold(): c for c in commands}
    for line in text.splitlines():
        word, _, rest = line.strip().partition(" ")
        if word.casefold() in wanted:
            return wanted[word.casefold()], rest.strip()
    return None


def _command(route: RouteConfig, facts: Facts, settings: RoutingSettings) -> TriggerResult | None:
    if not route.command:
        return None
    found = find_command(facts.text or "", route.command)
    if found is None:
        return _fail(f"no {_listing(route.command)} command in the text")
    command, args = found
    return TriggerResult(True, f"command {command}", args or None)


def _phrase(route: RouteConfig, facts: Facts, settings: RoutingSettings) -> TriggerResult | None:
    if not route.phrase:
        return None
    body = (facts.text or "").casefold()
    for phrase in route.phrase:
        if phrase.casefold() in body:
            return TriggerResult(True, f"phrase {phrase!r}")
    return _fail(f"the text does not mention {_listing(repr(p) for p in route.phrase)}")


_BOT_SETTING = {"github": "bot_user", "linear": "linear_bot_user"}


def _assigned(route: RouteConfig, facts: Facts, settings: RoutingSettings) -> TriggerResult | None:
    if not route.assigned_to_bot:
        return None
    setting = _BOT_SETTING.get(facts.subject.source)
    if setting is None:
        return _fail(f"assigned_to_bot does not apply to {facts.subject.source} events")
    bot = getattr(settings, setting)
    if not bot:
        return _fail(f"routing.{setting} is not configured")
    if bot.casefold() in {a.casefold() for a in facts.assigned}:
        return TriggerResult(True, f"assigned to {bot}")
    return _fail(f"not assigned to {bot}")


def _in_channels(facts: Facts, wanted: Iterable[str]) -> TriggerResult:
    names = list(wanted)
    if not facts.channels:
        return _fail("the event has no channel")
    if _folded(facts.channels) & _folded(names):
        return TriggerResult(True, f"channel {facts.channels[0]}")
    return _fail(f"channel {facts.channels[0]} is not {_listing(names)}")


def _channel(route: RouteConfig, facts: Facts, settings: RoutingSettings) -> TriggerResult | None:
    return _in_channels(facts, route.channel) if route.channel else None


def _bugs(route: RouteConfig, facts: Facts, settings: RoutingSettings) -> TriggerResult | None:
    if not route.bugs_channel:
        return None
    if not settings.slack_bugs_channel:
        return _fail("routing.slack_bugs_channel is not configured")
    return _in_channels(facts, [settings.slack_bugs_channel])


def _level(route: RouteConfig, facts: Facts, settings: RoutingSettings) -> TriggerResult | None:
    if not route.level:
        return None
    if facts.level is None:
        return _fail("the event has no level")
    if facts.level.casefold() in _folded(route.level):
        return TriggerResult(True, f"level {facts.level}")
    return _fail(f"level {facts.level} is not one of {_listing(route.level)}")


def _project(route: RouteConfig, facts: Facts, settings: RoutingSettings) -> TriggerResult | None:
    if not route.project:
        return None
    if not facts.projects:
        return _fail("the event names no project")
    if _folded(facts.projects) & _folded(route.project):
        return TriggerResult(True, f"project {facts.projects[0]}")
    return _fail(f"project {facts.projects[0]} is not one of {_listing(route.project)}")


def _fix(route: RouteConfig, facts: Facts, settings: RoutingSettings) -> TriggerResult | None:
    if route.fix is None:
        return None
    if facts.subject.source != "github":
        return _fail(f"fix does not apply to {facts.subject.source} events")
    bots = (settings.bot_user,) if settings.bot_user else ()
    if route.fix.on_ci_failure and is_check_event(facts.event_type):
        failing = ci_fix_request(facts.event_type, facts.payload, bots)
        if isinstance(failing, FixSkip):
            return _fail(failing.reason)
        return TriggerResult(True, f"fix: {failing.trigger}")
    found = fix_request(
        facts.event_type,
        facts.payload,
        route.fix.phrase,
        bots,
        on_changes_requested=route.fix.on_changes_requested,
        drafts=route.drafts,
    )
    if isinstance(found, FixSkip):
        return _fail(found.reason)
    return TriggerResult(True, f"fix: {found.trigger}")


TRIGGERS: tuple[Trigger, ...] = (
    _label,
    _command,
    _phrase,
    _assigned,
    _channel,
    _bugs,
    _level,
    _project,
    _fix,
)
