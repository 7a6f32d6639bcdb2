"""Events and dead letters in the management API.

GET  /api/events?status=&source=&type=&limit=   → {"events": [...]}, newest first
GET  /api/events/{id}                           → the event, its headers, body and routing
POST /api/events/{id}/replay                    → 202 queued again
GET  /api/dlq?status=open|replayed|all&limit=   → {"dead_letters": [...]}, newest first
GET  /api/dlq/{id}                              → the dead letter
POST /api/dlq/{id}/replay                       → 202 queued again | 409 already replayed

An unknown id is answered 404 by the API's one `NotFound` handler (`taskyard.web.api`).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from taskyard.models import DeadLetterStatus, EventStatus
from taskyard.queue.replay import replay_dead_letter, replay_event
from taskyard.store.base import EventFilter, Store
from taskyard.web import params
from taskyard.web.params import error
from taskyard.web.views import decision_json, event_json, letter_json


def event_routes(store: Store) -> list[Route]:
    async def list_events(request: Request) -> Response:
        flt = EventFilter(
            status=params.choice(request, "status", EventStatus),
            source=params.query(request, "source"),
            type=params.query(request, "type"),
            limit=params.limit(request),
        )
        found = await asyncio.to_thread(store.list_events, flt)
        return JSONResponse({"events": [event_json(e) for e in found]})

    async def show_event(request: Request) -> Response:
        event_id = params.path(request, "event_id")

        def read() -> dict[str, Any]:
            data = event_json(store.get_event(event_id), with_body=True)
            data["routing"] = [decision_json(d) for d in store.decisions_for(event_id)]
            return data

        return JSONResponse(await asyncio.to_thread(read))

    async def replay(request: Request) -> Response:
        event_id = params.path(request, "event_id")

        def run() -> dict[str, Any]:
            workflow = replay_event(store, event_id)
            status = store.get_event(event_id).status
            return {
                "event_id": event_id,
                "workflow_id": workflow,
                "queued": True,
                "status": str(status),
            }

        return JSONResponse(await asyncio.to_thread(run), 202)

    return [
        Route("/api/events", list_events, methods=["GET"]),
        Route("/api/events/{event_id}", show_event, methods=["GET"]),
        Route("/api/events/{event_id}/replay", replay, methods=["POST"]),
    ]


_LETTER_STATES = ("open", "replayed", "all")


def dead_letter_routes(store: Store) -> list[Route]:
    async def list_letters(request: Request) -> Response:
        status = params.text("status", request.query_params.get("status", "open"))
        if status not in _LETTER_STATES:
            return error(400, f"status must be one of {', '.join(_LETTER_STATES)}")
        wanted = None if status == "all" else str(DeadLetterStatus(status))
        found = await asyncio.to_thread(store.list_dead_letters, wanted, params.limit(request))
        return JSONResponse({"dead_letters": [letter_json(d) for d in found]})

    async def show_letter(request: Request) -> Response:
        letter_id = params.path(request, "letter_id")
        letter = await asyncio.to_thread(store.get_dead_letter, letter_id)
        return JSONResponse(letter_json(letter))

    async def replay(request: Request) -> Response:
        letter_id = params.path(request, "letter_id")
        workflow = await asyncio.to_thread(replay_dead_letter, store, letter_id, time.time())
        if workflow is None:
            return error(409, f"dead letter {letter_id} was already replayed")
        letter = await asyncio.to_thread(store.get_dead_letter, letter_id)
        answer = {
            "id": letter_id,
            "workflow_id": workflow,
            "queued": True,
            "status": str(letter.status),
        }
        return JSONResponse(answer, 202)

    return [
        Route("/api/dlq", list_letters, methods=["GET"]),
        Route("/api/dlq/{letter_id}", show_letter, methods=["GET"]),
        Route("/api/dlq/{letter_id}/replay", replay, methods=["POST"]),
    ]
