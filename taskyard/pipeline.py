"""Routing: the job every stored event gets.

This is the routing step's entry point. The "Run" issue turns events into tasks here (rules,
who-may-trigger, context); until then an event is recorded as processed with no route.
"""

from __future__ import annotations

import asyncio
import logging

from taskyard.queue.jobs import JobContext

log = logging.getLogger(__name__)


async def route_event(ctx: JobContext) -> None:
    event = await asyncio.to_thread(ctx.store.get_event, ctx.ref)
    log.info(
        "event routed",
        extra={"event_id": event.id, "type": event.type, "routes": 0, "attempt": ctx.attempt},
    )
