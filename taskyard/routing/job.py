"""Routing job: the job every stored event gets. Rules pick its routes, the actor's right to
trigger each is checked, and one task per allowed route is stored together with every
decision (started, skipped, forbidden, or ignored when nothing matched), in one transaction.
The dispatcher then hands the new tasks to the task queue.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from taskyard.config import Settings
from taskyard.config.routes import RouteConfig, reviewer_for
from taskyard.exceptions import TaskyardError
from taskyard.lifecycle import workflow_id
from taskyard.models import (
    Decision,
    Event,
    EventStatus,
    RouteDecision,
    Task,
    TaskStatus,
    new_id,
)
from taskyard.observe.metrics import log_context
from taskyard.observe.tracing import Tracing
from taskyard.queue.jobs import JobContext
from taskyard.routing import PermissionLookup, RouteMatch, may_trigger, payload_of, select_routes
from taskyard.routing.admission import admit_fix, fix_task_id
from taskyard.routing.spec import TaskSpec
from taskyard.store.base import Store

log = logging.getLogger(__name__)

APPROVALS_ROUTE = "approvals"  # the decision recorded for an event that decided a request


@dataclass(frozen=True, slots=True)
class Consumed:
    """What an interceptor made of an event it consumed, recorded as the event's decision
    (an interceptor answering with plain text decided an approval)."""

    text: str
    route: str = APPROVALS_ROUTE
    decision: Decision = Decision.APPROVAL


Interceptor = Callable[[Event, Mapping[str, Any]], Awaitable[Consumed | str | None]]
# (the event, the route's match, why its fix was refused): say it on the pull request
FixRefused = Callable[[Event, RouteMatch, str], Awaitable[None]]


class Pipeline:
    def __init__(
        self,
        settings: Settings,
        lookup: PermissionLookup | None,
        on_tasks: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
        tracing: Tracing | None = None,
        interceptors: Sequence[Interceptor] = (),
        on_fix_refused: FixRefused | None = None,
    ) -> None:
        """`on_tasks`: told (from the jobs' loop) that tasks were stored for the dispatcher.
        `on_fix_refused`: told each pull-request fix its bounds refused, once the decision is
        stored (to say why on the pull request)."""
        self.on_fix_refused = on_fix_refused
        self.settings = settings
        self.tracing = tracing or Tracing.off()
        self.lookup = lookup
        self.on_tasks = on_tasks
        self.clock = clock
        # Looked at before routing: one that returns a text consumed the event (an approval
        # decision), and the text is recorded as the event's one decision.
        self.interceptors = list(interceptors)

    async def route_event(self, ctx: JobContext) -> EventStatus:
        """The routing job of event `ctx.ref` (its logs carry its event_id; one `route` span)."""
        with (
            log_context(event_id=ctx.ref),
            self.tracing.span("route", ctx.ref, attributes={"taskyard.attempt": ctx.attempt}),
        ):
            return await self._route(ctx)

    async def _route(self, ctx: JobContext) -> EventStatus:
        event = await asyncio.to_thread(ctx.store.get_event, ctx.ref)
        for intercept in self.interceptors:
            handled = await intercept(event, payload_of(event))
            if handled is not None:
                took = handled if isinstance(handled, Consumed) else Consumed(text=handled)
                decision = RouteDecision(
                    event.id, took.route, took.decision, took.text, None, self.clock()
                )
                await asyncio.to_thread(ctx.store.record_routing, [decision], [])
                log.info(
                    "event consumed before routing",
                    extra={"event_id": event.id, "by": took.route, "what": took.text},
                )
                return EventStatus.PROCESSED
        refused: list[tuple[RouteMatch, str]] = []
        decisions, tasks = await self.decide(event, ctx.store, refused)
        stored = await asyncio.to_thread(ctx.store.record_routing, decisions, tasks)
        for match, why in refused if self.on_fix_refused else ():
            try:
                await self.on_fix_refused(event, match, why)  # type: ignore[misc]
            except TaskyardError as exc:  # the refusal stands, said or not
                log.warning("fix refusal not posted", extra={"error": str(exc)})
        if any(not t.dispatched for t in stored):
            self.on_tasks()
        log.info(
            "event routed",
            extra={
                "event_id": event.id,
                "type": event.type,
                "tasks": [t.id for t in stored],
                "decisions": {d.route: str(d.decision) for d in decisions},
                "attempt": ctx.attempt,
            },
        )
        return EventStatus.PROCESSED if stored else EventStatus.IGNORED

    async def decide(
        self,
        event: Event,
        store: Store | None = None,
        refused: list[tuple[RouteMatch, str]] | None = None,
    ) -> tuple[list[RouteDecision], list[Task]]:
        """Every route's decision and the tasks to store. With a `store`, a fix route's task
        is first admitted under its pull request's bounds (`routing.admission`)."""
        payload = payload_of(event)
        result = select_routes(event, payload, self.settings.routes, self.settings.routing)
        now = self.clock()
        decisions = [
            RouteDecision(event.id, s.route, Decision.SKIPPED, s.reason, None, now)
            for s in result.skipped
        ]
        tasks: list[Task] = []
        for match in result.matched:
            verdict = await may_trigger(match, self.lookup)
            name = match.route.name
            if not verdict.allowed:
                decisions.append(
                    RouteDecision(event.id, name, Decision.FORBIDDEN, verdict.reason, None, now)
                )
                continue
            task_id = new_id()
            if store is not None and match.route.fix is not None:
                # Issue 15: a pull-request fix is admitted (or refused, in words) first.
                task_id = fix_task_id(event.id, name)
                admitted = await asyncio.to_thread(
                    admit_fix,
                    store,
                    event,
                    match,
                    task_id,
                    now,
                    self.settings.changes,
                    self.settings.routing,
                )
                if admitted.refused is not None:
                    if refused is not None:
                        refused.append((match, admitted.refused))
                    decisions.append(
                        RouteDecision(event.id, name, Decision.SKIPPED, admitted.refused, None, now)
                    )
                    continue
                match = admitted.match
            task = self._new_task(event, match, now, task_id)
            tasks.append(task)
            decisions.append(RouteDecision(event.id, name, Decision.STARTED, None, task.id, now))
        if not decisions:
            reason = result.ignored_reason or f"no route matches {event.type}"
            decisions.append(RouteDecision(event.id, "*", Decision.IGNORED, reason, None, now))
        return decisions, tasks

    def _new_task(self, event: Event, match: RouteMatch, now: float, task_id: str) -> Task:
        route = match.route
        spec = TaskSpec(
            route=route.name,
            agent=route.agent,
            prompt=route.prompt or "default",
            context=tuple(route.context),
            repo=_repo(match) if route.repo else None,
            result_schema=dict(route.result_schema) if route.result_schema else None,
            timeout_seconds=route.timeout_seconds,
            max_tool_calls=route.max_tool_calls,
            trigger=_trigger(event, match),
            change=change_spec(route, self.settings, match.repo),
        )
        return Task(
            id=task_id,
            event_id=event.id,
            route=route.name,
            agent=route.agent,
            status=TaskStatus.QUEUED,
            priority=event.priority,
            created_at=now,
            updated_at=now,
            workflow_id=workflow_id(task_id),
            spec=spec.to_json(),
        )


def change_spec(route: RouteConfig, settings: Settings, repo: str | None) -> dict[str, Any] | None:
    """What a change route's run needs, fixed at creation like the rest of the spec: the
    route's settings, else its repository's (`changes.repositories`), else `changes:`."""
    if route.mode != "change":
        return None
    own = settings.changes.for_repository(repo)
    kinds = {name: agent.kind for name, agent in settings.agents.items()}
    reviewing = route.gates.plan_review or route.gates.review
    return {
        "gates": route.gates.enabled(),
        "reviewer": reviewer_for(route, kinds) if reviewing else None,
        "test_commands": list(route.test_commands or own.test_commands),
        "mode": route.changes_mode or own.mode or settings.changes.mode,
        "max_revisions": route.max_revisions or settings.changes.max_revisions,
    }


def _trigger(event: Event, match: RouteMatch) -> dict[str, Any] | None:
    """Who triggered the task, by every identity the event gives (approvals.duties)."""
    ids = [n for n in dict.fromkeys((match.actor.login, *match.actor.aliases)) if n]
    return {"platform": event.source, "ids": ids} if ids else None


def _repo(match: RouteMatch) -> dict[str, Any] | None:
    if not match.repo:
        return None
    return {
        "full_name": match.repo,
        "sha": match.head_sha,
        "ref": match.head_ref,
        "pr_number": match.number if match.is_pull_request else None,
        "base_sha": match.subject.base_sha,  # where its agent files come from (agentfiles.py)
        "base_ref": match.subject.base_ref,
    }
