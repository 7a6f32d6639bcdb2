"""The HTTP surface: webhooks (the hot path, routed first), health, readiness, metrics, the
management API (`taskyard.web.api`) and the web UI (`taskyard.web.ui`, at `/`)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from taskyard.approvals.service import Approvals
from taskyard.config import Settings
from taskyard.exceptions import StoreError
from taskyard.intake.app import IntakeApp
from taskyard.intake.guard import Bounds, guarded_protocol
from taskyard.intake.shared import SharedIntakeState
from taskyard.intake.writer import EventWriter
from taskyard.observe.metrics import Metrics
from taskyard.observe.tracing import Tracing
from taskyard.run.tasklogs import TaskLogs
from taskyard.store.base import Store
from taskyard.web.api import api_app
from taskyard.web.logstream import STREAM_SECONDS
from taskyard.web.throttle import AuthThrottle
from taskyard.web.ui import ui_routes

log = logging.getLogger(__name__)


def api_token(settings: Settings) -> str | None:
    """The management API's bearer token; None when unset or empty."""
    return (settings.api_token.get_secret_value() if settings.api_token else "") or None


def site(
    settings: Settings,
    store: Store,
    metrics: Metrics,
    writer: EventWriter | None,
    approvals: Approvals | None,
    verify_only: bool = False,
    shared: SharedIntakeState | None = None,
    tracing: Tracing | None = None,
) -> tuple[Any, IntakeApp]:
    """The app `serve` answers with, and so does every intake process (decisions made there
    go through the database; the dispatching process picks the resumed tasks up): the app
    and its intake (which says the sources it takes)."""
    intake = IntakeApp(
        settings, writer, metrics, verify_only=verify_only, shared=shared, tracing=tracing
    )
    app = build_app(
        store,
        metrics,
        intake,
        approvals,
        api_token(settings),
        task_logs=TaskLogs.from_settings(settings),  # kept logs, and secrets hidden when shown
        throttle=AuthThrottle.for_intake(settings.intake),  # clients told apart as at intake
    )
    return app, intake


def server_config(app: Any, settings: Settings, metrics: Metrics, **where: Any) -> uvicorn.Config:
    """uvicorn's config for `site`'s app (`where`: host and port, when not given sockets)."""
    return uvicorn.Config(
        app,
        **where,
        access_log=False,
        log_config=None,
        lifespan="off",
        proxy_headers=False,  # X-Forwarded-For is read by intake's and the API's own rule
        http=guarded_protocol(  # header, time and connection bounds
            Bounds.from_config(settings.intake),
            lambda why: metrics.received("connection", why),
        ),
        timeout_graceful_shutdown=5,
    )


def probe_routes(metrics: Metrics) -> list[Route]:
    """`/healthz` and `/metrics` (this process's registry): every process that answers HTTP
    answers these, the API's and a worker's alike."""

    async def healthz(request: Request) -> Response:
        return JSONResponse({"ok": True})

    async def scrape(request: Request) -> Response:
        data = await asyncio.to_thread(generate_latest, metrics.registry)
        return Response(data, media_type=CONTENT_TYPE_LATEST)

    return [Route("/healthz", healthz), Route("/metrics", scrape)]


def metrics_app(metrics: Metrics) -> Any:
    """`/metrics` and `/healthz` alone, for a process without the API (a worker)."""
    return Starlette(routes=probe_routes(metrics))


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

    async def readyz(request: Request) -> Response:
        try:
            # Within a second: a load balancer's probe should not wait out the pool's timeout.
            await asyncio.wait_for(asyncio.to_thread(store.ping), timeout=1.0)
        except (StoreError, TimeoutError) as exc:
            log.warning("not ready", extra={"error": str(exc) or "store timed out"})
            return JSONResponse({"ready": False, "error": "store unavailable"}, 503)
        return JSONResponse({"ready": True})

    rest = Starlette(
        routes=[
            *probe_routes(metrics),
            Route("/readyz", readyz),
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
