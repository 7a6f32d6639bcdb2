"""Which routes one event starts: `select_routes` (pure, no I/O).

A route listens to an event when one of its `on` globs matches the normalised type. It then
starts unless, in this order: the event is a draft pull request and the route does not take
drafts; a one-liner trigger it sets does not hold; a `when` filter does not hold. The first
failing check is the route's skip reason. An event no route starts is ignored, with a reason:
"no route matches <type>" when nothing listens, else every listening route's skip reason.
Who may trigger a matched route is decided afterwards by `who.may_trigger` (it may need I/O).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from taskyard.config.routes import RouteConfig, RoutingSettings
from taskyard.models import Event
from taskyard.routing.facts import Actor, Facts, Subject, facts_of
from taskyard.routing.filters import failed_filter
from taskyard.routing.triggers import TRIGGERS, TriggerResult

DRAFT = "draft pull request"


@dataclass(frozen=True, slots=True)
class RouteMatch:
    """A route this event starts, with what the task needs to know about the event."""

    route: RouteConfig
    event_id: str
    event_type: str
    subject: Subject
    actor: Actor
    triggered_by: str  # "label agent", "command /review", … or "event type"
    command_args: str | None = None  # the rest of the line after a command

    @property
    def name(self) -> str:
        return self.route.name

    # The subject and actor facts the task spec needs, flat.
    @property
    def repo(self) -> str | None:
        return self.subject.repo

    @property
    def number(self) -> int | None:
        return self.subject.number

    @property
    def is_pull_request(self) -> bool:
        return self.subject.pull_request

    @property
    def head_sha(self) -> str | None:
        return self.subject.head_sha

    @property
    def head_ref(self) -> str | None:
        return self.subject.head_ref

    @property
    def login(self) -> str | None:
        return self.actor.login

    @property
    def author_association(self) -> str | None:
        return self.actor.association


@dataclass(frozen=True, slots=True)
class Skip:
    """A route that listens to the event's type but does not start, and why."""

    route: str
    reason: str


@dataclass(frozen=True, slots=True)
class RoutingDecision:
    matched: tuple[RouteMatch, ...]
    skipped: tuple[Skip, ...]
    ignored_reason: str | None  # set exactly when nothing matched


def select_routes(
    event: Event,
    payload: Any,
    routes: Sequence[RouteConfig],
    settings: RoutingSettings,
) -> RoutingDecision:
    listening = [route for route in routes if route.listens_to(event.type)]
    if not listening:
        return RoutingDecision((), (), f"no route matches {event.type}")
    facts = facts_of(event, payload, settings)
    matched: list[RouteMatch] = []
    skipped: list[Skip] = []
    for route in listening:
        outcome = _check(route, facts, payload, settings)
        if isinstance(outcome, str):
            skipped.append(Skip(route.name, outcome))
        else:
            matched.append(_match(route, event, facts, outcome))
    ignored = None if matched else "; ".join(f"{s.route}: {s.reason}" for s in skipped)
    return RoutingDecision(tuple(matched), tuple(skipped), ignored)


def _check(
    route: RouteConfig, facts: Facts, payload: Any, settings: RoutingSettings
) -> str | list[TriggerResult]:
    """The reason the route does not start, or the triggers that held."""
    if facts.draft and not route.drafts:
        return DRAFT
    held: list[TriggerResult] = []
    for trigger in TRIGGERS:
        result = trigger(route, facts, settings)
        if result is None:
            continue
        if not result.held:
            return result.note
        held.append(result)
    for flt in route.when:
        reason = failed_filter(flt, payload)
        if reason is not None:
            return reason
    return held


def _match(route: RouteConfig, event: Event, facts: Facts, held: list[TriggerResult]) -> RouteMatch:
    return RouteMatch(
        route=route,
        event_id=event.id,
        event_type=event.type,
        subject=facts.subject,
        actor=facts.actor,
        triggered_by=", ".join(t.note for t in held) or "event type",
        command_args=next((t.args for t in held if t.args), None),
    )
