"""What every surface does with ideas (the CLI, the API, GitHub and Discord intake): submit one,
pause, resume or cancel it. The scheduler (`taskyard.ideas.scheduler`) takes it from there.

An idea's tasks hang from an event of its own (`taskyard:idea.registered`, its body the idea
as submitted), so they are tasks like any other: routed, dispatched, run and recovered by the
same machinery, and their agents see the idea in `context/event.json`.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from taskyard.idea import Idea, IdeaStatus, IdeaStep
from taskyard.models import Event, EventStatus, Priority, new_id
from taskyard.store.base import FOREVER, NewEvent, Store

IDEA_EVENT = "taskyard:idea.registered"
_PRIORITY = {"P0": Priority.P0, "P1": Priority.P1, "P2": Priority.P2, "P3": Priority.P3}


def idea_id_for(key: str) -> str:
    """The id of the idea a delivery (its key: a GitHub event id, a Discord interaction id)
    submits: the same every time, so a delivery routed twice submits one idea."""
    return hashlib.sha256(f"idea\0{key}".encode()).hexdigest()[:32]


class IdeaService:
    def __init__(
        self,
        store: Store,
        clock: Callable[[], float] = time.time,
        budget_usd: float | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.budget_usd = budget_usd  # each new idea's, unless it says its own

    def submit(
        self, shape: Mapping[str, Any], origin: Mapping[str, Any], key: str | None = None
    ) -> Idea:
        """Register an idea (`shape`: the validated fields of `taskyard.ideas.shape`;
        `origin`: where to answer). `key` makes a resubmission of the same delivery return the
        idea already registered. Blocking."""
        now = self.clock()
        idea_id = idea_id_for(key) if key else new_id()
        event = self._event(idea_id, shape, origin, now)
        self.store.insert_events([NewEvent(event, f"idea:{idea_id}", FOREVER)], now)
        budget = shape.get("budget_usd")
        idea = Idea(
            id=idea_id,
            status=IdeaStatus.REGISTERED,
            shape=dict(shape),
            origin=dict(origin),
            event_id=event.id,
            created_at=now,
            updated_at=now,
            budget_usd=float(budget) if isinstance(budget, int | float) else self.budget_usd,
        )
        return self.store.create_idea(idea, {"goal": idea.goal, "origin": dict(origin)})

    def pause(self, idea_id: str, who: str, why: str | None = None) -> Idea:
        return self._step(idea_id, IdeaStep.PAUSE, "paused", who, why)

    def resume(self, idea_id: str, who: str) -> Idea:
        return self._step(idea_id, IdeaStep.RESUME, "resumed", who, None)

    def cancel(self, idea_id: str, who: str, why: str | None = None) -> Idea:
        return self._step(idea_id, IdeaStep.CANCEL, "cancelled", who, why)

    def _step(self, idea_id: str, step: IdeaStep, kind: str, who: str, why: str | None) -> Idea:
        """The step, or ValueError saying why the idea cannot take it (NotFound: no idea)."""
        data = {"by": who, **({"why": why} if why else {})}
        fields = {"reason": why or f"{kind} by {who}"}
        done = self.store.idea_transition(idea_id, step, kind, data, self.clock(), **fields)
        if done is None:
            status = self.store.get_idea(idea_id).status
            raise ValueError(f"idea {idea_id} is {status}: it cannot be {kind}")
        return done

    def _event(
        self, idea_id: str, shape: Mapping[str, Any], origin: Mapping[str, Any], now: float
    ) -> Event:
        body = json.dumps({"idea_id": idea_id, **shape, "origin": dict(origin)}).encode()
        return Event(
            id=new_id(),
            source="taskyard",
            type=IDEA_EVENT,
            delivery_id=f"idea:{idea_id}",
            subject=f"idea {idea_id}",
            actor=str(origin.get("actor")) if origin.get("actor") else None,
            received_at=now,
            priority=_PRIORITY.get(str(shape.get("priority") or "P2"), Priority.P2),
            headers={},
            body=body,
            content_hash=hashlib.sha256(body).hexdigest(),
            status=EventStatus.RECEIVED,
        )
