"""The web UI's idea pages (`taskyard.web.ui` serves them, behind its sign-in and CSRF checks):

    GET  /ui/ideas                          ideas, newest first (filter by status)
    GET  /ui/ideas/{id}                     one idea: its plan's tasks drawn as a graph (SVG
                                            laid out by `taskyard.web.dag`), cost, plan
                                            versions, the tail of its event log
    POST /ui/ideas/{id}/pause|resume|cancel what its buttons do (then 303 back)

Pages read what `taskyard ideas show` and `GET /api/ideas/{id}` read
(`taskyard.ideas.overview`), and the buttons take the steps those take (`IdeaService`).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from taskyard.idea import IdeaStatus
from taskyard.ideas.controls import CONTROLS, controls_open, take_control
from taskyard.ideas.overview import idea_overview
from taskyard.ideas.views import idea_json
from taskyard.web import params
from taskyard.web.dag import BOX_H, BOX_W, layout

if TYPE_CHECKING:
    from taskyard.web.ui import WebUI

WHO = "web:operator"


class IdeaPages:
    def __init__(self, ui: WebUI) -> None:
        self.ui = ui

    async def ideas(self, request: Request) -> Response:
        status = params.choice(request, "status", IdeaStatus, empty_is_absent=True)
        limit = params.limit(request)
        found = await asyncio.to_thread(self.ui.store.list_ideas, status, limit)
        return self.ui.page(
            request,
            "ideas.html.j2",
            ideas=[idea_json(i) for i in found],
            status=status,
            limit=limit,
            statuses=[str(s) for s in IdeaStatus],
        )

    async def idea(self, request: Request) -> Response:
        idea_id = params.path(request, "idea_id")
        overview = await asyncio.to_thread(idea_overview, self.ui.store, idea_id)
        return self.ui.page(
            request,
            "idea.html.j2",
            **overview,
            dag=layout(overview["tasks"]),
            box={"w": BOX_W, "h": BOX_H},
            steps=controls_open(IdeaStatus(overview["idea"]["status"])),
        )

    async def step(self, request: Request) -> Response:
        form = await self.ui.form(request)
        idea_id = params.path(request, "idea_id")
        control = request.path_params["control"]
        if control not in CONTROLS:
            raise HTTPException(404, f"no such step; use one of {', '.join(CONTROLS)}")
        why = form.get("reason", "").strip() or None
        try:
            done = await asyncio.to_thread(take_control, self.ui.store, control, idea_id, WHO, why)
        except ValueError as exc:
            raise HTTPException(409, str(exc)) from None
        said = f"Idea {idea_id} is {done.status}."
        return self.ui.done(request, form, f"/ui/ideas/{idea_id}", said)

    def routes(self) -> list[BaseRoute]:
        g = self.ui.guard
        return [
            Route("/ui/ideas", g(self.ideas), methods=["GET"]),
            Route("/ui/ideas/{idea_id}", g(self.idea), methods=["GET"]),
            Route("/ui/ideas/{idea_id}/{control}", g(self.step), methods=["POST"]),
        ]
