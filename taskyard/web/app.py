"""The HTTP surface: webhooks (the hot path, routed first), health, readiness, metrics, the
management API (`taskyard.web.api`) and the web UI (`taskyard.web.ui`, at `/`)."""

from __future__ import annotations

import asyncio
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from taskyard.approvals.service import Approvals
from taskyard.exceptions import StoreError
from taskyard.intake.app import IntakeApp
from taskyard.observe import Metrics
from taskyard.store.base import Store
from taskyard.web.api import api_app
from taskyard.web.logstream import STREAM_SECONDS
from taskyard.web.ui import ui_routes


def build_app(
    store: Store,
    metrics: Metrics,
    intake: IntakeApp,
    approvals: Approvals | None = None,
    api_token: str | None = None,
    stream_seconds: float = STREAM_SECONDS,
) -> Any:
    async def healthz(request: Request) -> Response:
        return JSONResponse({"ok": True})

    async def readyz(request: Request) -> Response:
        try:
            await asyncio.wait_for(asyncio.to_thread(store.ping), timeout=5.0)
        except (StoreError, TimeoutError) as exc:
            return JSONResponse({"ready": False, "error": str(exc) or "store timed out"}, 503)
        return JSONResponse({"ready": True})

    async def metrics_endpoint(request: Request) -> Response:
        data = await asyncio.to_thread(generate_latest, metrics.registry)
        return Response(data, media_type=CONTENT_TYPE_LATEST)

    rest = Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics_endpoint),
            *ui_routes(store, approvals, api_token),
        ]
    )
    api = api_app(store, approvals, api_token, stream_seconds=stream_seconds)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and path.startswith("/webhooks/"):
            await intake(scope, receive, send)
        elif scope["type"] == "http" and (path == "/api" or path.startswith("/api/")):
            await api(scope, receive, send)
        else:
            await rest(scope, receive, send)

    return app
