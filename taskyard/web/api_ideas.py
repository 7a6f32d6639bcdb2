"""Ideas under `/api/ideas` (`taskyard.ideas`):

    POST /api/ideas  {goal, constraints, success_metrics, priority, repo, labels, risk,
                      budget_usd}  → 201 the idea | 422 {"error", "problems": [...]}

A body that is not a JSON object is 400; one that is not a valid idea is 422 with every
problem in plain words ("goal is missing").

    GET  /api/ideas?status=&limit=               → {"ideas": [...]}, newest first
    GET  /api/ideas/{id}                         → the idea, its tasks and what each waits
                                                   on, its cost, plans and event log tail
                                                   (`taskyard.ideas.overview`)
    POST /api/ideas/{id}/pause|resume|cancel  {"reason"}  → 200 the idea | 409 it cannot"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from taskyard.idea import IdeaStatus
from taskyard.ideas.controls import CONTROLS, take_control
from taskyard.ideas.overview import idea_overview
from taskyard.ideas.service import IdeaService
from taskyard.ideas.shape import parse
from taskyard.ideas.views import idea_json
from taskyard.store.base import Store
from taskyard.web import params

NOT_AN_IDEA = "the body is not a valid idea"


def idea_routes(store: Store, clock: Callable[[], float] = time.time) -> list[Route]:
    service = IdeaService(store, clock)

    async def submit_idea(request: Request) -> Response:
        shape, problems = parse(await params.json_object(request))
        if shape is None:
            return JSONResponse({"error": NOT_AN_IDEA, "problems": problems}, 422)
        submitted = shape.submitted()
        idea = await asyncio.to_thread(service.submit, submitted, {"platform": "api"})
        return JSONResponse(idea_json(idea), 201)

    async def ideas(request: Request) -> Response:
        """One route for the path, so that a 405's `Allow` names both its methods."""
        if request.method == "POST":
            return await submit_idea(request)
        return await list_ideas(store, request)

    return [Route("/api/ideas", ideas, methods=["GET", "POST"]), *idea_view_routes(store)]


WHO = "web:operator"  # who pauses, resumes or cancels through the API (as for approvals)


async def list_ideas(store: Store, request: Request) -> Response:
    status = params.choice(request, "status", IdeaStatus, empty_is_absent=True)
    limit = params.limit(request, default=100)
    found = await asyncio.to_thread(store.list_ideas, status, limit)
    return JSONResponse({"ideas": [idea_json(i) for i in found]})


def idea_view_routes(store: Store) -> list[Route]:
    """`GET /api/ideas/{id}` (`taskyard.ideas.overview`) and
    `POST /api/ideas/{id}/pause|resume|cancel` (`{"reason"}` optional; 409 when the idea
    cannot take the step, saying why)."""

    async def show_idea(request: Request) -> Response:
        idea_id = params.path(request, "idea_id")
        return JSONResponse(await asyncio.to_thread(idea_overview, store, idea_id))

    async def control(request: Request) -> Response:
        idea_id = params.path(request, "idea_id")
        name = request.url.path.rsplit("/", 1)[-1]
        why = params.optional_text(await params.json_object(request), "reason")
        try:
            idea = await asyncio.to_thread(take_control, store, name, idea_id, WHO, why)
        except ValueError as exc:
            return params.error(409, str(exc))
        return JSONResponse(idea_json(idea))

    return [
        Route("/api/ideas/{idea_id}", show_idea, methods=["GET"]),
        *(Route(f"/api/ideas/{{idea_id}}/{name}", control, methods=["POST"]) for name in CONTROLS),
    ]
