"""The HTTP surface: webhooks (the hot path, routed first), health, readiness, metrics, the
management API (`taskyard.web.api`) and the web UI (`taskyard.web.ui`, at `/`)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from taskyard.approvals.service import Approvals
from taskyard.exceptions import StoreError
from taskyard.intake.app import IntakeApp
from taskyard.observe.metrics import Metrics
from taskyard.run.tasklogs import TaskLogs
from taskyard.store.base import Store
from taskyard.web.api import api_app
from taskyard.web.logstream import STREAM_SECONDS
from taskyard.web.throttle import AuthThrottle
from taskyard.web.ui import ui_routes

log = logging.getLogger(__name__)


def build_app(
    store: Store,
    metrics: Metrics,
    intake: IntakeApp,
    approvals: Approvals | None = None,
    api_token: str | None = None,
    stream_seconds: float = STREAM_SECONDS,
    task_logs: TaskLogs | None = None,
    throttle: AuthThrottle | None = None,
) -> Any:
    """The app. `task_logs`: where tasks' logs are kept and which secrets are hidden when they
    are shown (`TaskLogs.from_settings`; default: workspace logs only, nothing more hidden).
    The API and the UI share one throttle of wrong tokens (`throttle`, default a new one)."""
    throttle = throttle or AuthThrottle()

    async def healthz(request: Request) -> Response:
        return JSONResponse({"ok": True})

    async def readyz(request: Request) -> Response:
        try:
            # Within a second: a load balancer's probe should not wait out the pool's timeout.
            await asyncio.wait_for(asyncio.to_thread(store.ping), timeout=1.0)
        except (StoreError, TimeoutError) as exc:
            log.warning("not ready", extra={"error": str(exc) or "store timed out"})
            return JSONResponse({"ready": False, "error": "store unavailable"}, 503)
        return JSONResponse({"ready": True})

    async def metrics_endpoint(request: Request) -> Response:
        data = await asyncio.to_thread(generate_latest, metrics.registry)
        return Response(data, media_type=CONTENT_TYPE_LATEST)

    rest = Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics_endpoint),
            *ui_routes(store, approvals, api_token, None, task_logs, throttle),
        ]
    )
    api = api_app(
        store,
        approvals,
        api_token,
        stream_seconds=stream_seconds,
        task_logs=task_logs,
        throttle=throttle,
    )

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and path.startswith("/webhooks/"):
            await intake(scope, receive, send)
        elif scope["type"] == "http" and (path == "/api" or path.startswith("/api/")):
            await api(scope, receive, send)
        else:
            await rest(scope, receive, send)

    return app
