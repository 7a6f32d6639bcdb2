"""Replays: run an event's job again, by hand (`events replay`, `dlq replay`) or once, 24 h after
it was dead-lettered. A replay only marks the event for the dispatcher under a new workflow id,
so it works whether or not a server is running, and the running dispatcher picks it up."""

from __future__ import annotations

from taskyard.models import new_id
from taskyard.store.base import Store


def replay_event(store: Store, event_id: str) -> str:
    """Queue the event's job again; return the new workflow id. NotFound for an unknown id."""
    workflow_id = _replay_id(event_id)
    store.requeue_event(event_id, workflow_id)
    return workflow_id


def _replay_id(event_id: str) -> str:
    return f"{event_id}:replay:{new_id()[-12:]}"


def replay_dead_letter(store: Store, letter_id: str, now: float) -> str | None:
    """Replay a dead letter once: the caller that closes it queues it. None if already done."""
    letter = store.get_dead_letter(letter_id)
    workflow_id = _replay_id(letter.ref)
    if not store.mark_dead_letter_replayed(letter.id, now, requeue_as=workflow_id):
        return None
    return workflow_id
