"""The management API under `/api`: JSON, behind a bearer token (`api_token` in the config or
`TASKYARD_API_TOKEN`). Its OpenAPI document is `GET /api/openapi.json` (`taskyard.web.openapi`).

With a token configured, every `/api` request without `Authorization: Bearer <token>` is
answered 401, whatever its path. Wrong tokens are throttled per client
(`taskyard.web.throttle`, shared with the UI): past a few, 429 with `Retry-After`. Without a
token the API is open, and `taskyard serve` listens on loopback only
(`taskyard.service.server`); as a second guard the API then answers 403 to any client that is
not on loopback, to a request relayed for another address, and to one whose Host is not a
loopback name (a web page of another site whose name was pointed at 127.0.0.1: DNS
rebinding; `taskyard.web.params`).

Events and dead letters: `taskyard.web.api_events`; tasks, actions and logs:
`taskyard.web.api_tasks`; stats: `taskyard.web.api_stats`. Approvals (what the UI's pending
list calls):

    GET  /api/approvals?status=pending&task_id=…&limit=  → {"approvals": [...]}
    GET  /api/approvals/{id}                           → the request, with its decision attempts
    POST /api/approvals/{id}/approve  {"reason", "as"} → 200 decided | 409 refused (why)
    POST /api/approvals/{id}/deny     {"reason", "as"}
    POST /api/approvals/{id}/more-info {"question", "as"}

A decision made here is `web:<as>` (default `web:operator`): whoever holds the API token
holds the operator's role.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import logging
import time
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from taskyard.approvals.policies import Identity
from taskyard.approvals.service import Approvals
from taskyard.exceptions import NotFound
from taskyard.records import ApprovalStatus, Decision, approval_json, decided_json
from taskyard.run.tasklogs import TaskLogs
from taskyard.store.base import Store
from taskyard.web import params
from taskyard.web.api_events import dead_letter_routes, event_routes
from taskyard.web.api_fixes import fix_routes
from taskyard.web.api_ideas import idea_routes
from taskyard.web.api_stats import stats_routes
from taskyard.web.api_tasks import task_routes
from taskyard.web.logstream import STREAM_SECONDS
from taskyard.web.openapi import openapi_document
from taskyard.web.params import error
from taskyard.web.throttle import AuthThrottle

log = logging.getLogger(__name__)
_DECISIONS = {"approve": Decision.APPROVE, "deny": Decision.DENY, "more-info": Decision.MORE_INFO}
UNAUTHORISED = "a valid bearer token is required"
THROTTLED = "too many wrong tokens from this client; wait before trying again"
LOOPBACK_ONLY = (
    "the management API has no token (TASKYARD_API_TOKEN), so it answers on loopback only"
)


def approval_routes(store: Store, approvals: Approvals | None) -> list[Route]:
    async def list_approvals(request: Request) -> Response:
        wanted = params.choice(request, "status", ApprovalStatus, empty_is_absent=True)
        task_id = params.query(request, "task_id")
        found = await asyncio.to_thread(
            store.list_approvals, wanted, task_id, params.limit(request, default=100)
        )
        return JSONResponse({"approvals": [approval_json(a) for a in found]})

    async def show_approval(request: Request) -> Response:
        approval_id = params.path(request, "approval_id")
        approval = await asyncio.to_thread(store.get_approval, approval_id)
        attempts = await asyncio.to_thread(store.decision_attempts, approval_id)
        data = approval_json(approval)
        data["attempts"] = [
            {**dataclasses.asdict(t), "decision": str(t.decision)} for t in attempts
        ]
        return JSONResponse(data)

    async def decide(request: Request) -> Response:
        if approvals is None:
            return error(409, "approvals are turned off (approvals.enabled: false)")
        decision = _DECISIONS.get(request.path_params["decision"])
        if decision is None:
            return error(404, f"no such decision; use one of {', '.join(_DECISIONS)}")
        approval_id = params.path(request, "approval_id")
        body: dict[str, Any] = await params.json_object(request)
        reason = body.get("question" if decision is Decision.MORE_INFO else "reason")
        if reason is not None and not isinstance(reason, str):
            return error(400, "reason must be a string")
        who = body.get("as") or "operator"
        if not isinstance(who, str):
            return error(400, "as must be a string")
        params.text("as", who)
        if reason is not None:
            params.text("reason", reason)
        outcome = await approvals.decide_and_tell(
            approval_id, decision, Identity("web", who), reason
        )
        data = decided_json(outcome)
        return JSONResponse(data, 200 if outcome.accepted else 409)

    return [
        Route("/api/approvals", list_approvals, methods=["GET"]),
        Route("/api/approvals/{approval_id}", show_approval, methods=["GET"]),
        Route("/api/approvals/{approval_id}/{decision}", decide, methods=["POST"]),
    ]


def _bearer(scope: Scope) -> bytes:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, token = value.partition(b" ")
            return token.strip() if scheme.lower() == b"bearer" else b""
    return b""


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error(exc.status_code, exc.detail, dict(exc.headers or {}))


async def _not_found(request: Request, exc: Exception) -> Response:
    """Every handler lets the store's `NotFound` (no such event, task, approval, …) rise: it
    is answered here, 404 with the store's message."""
    return error(404, str(exc))


class ManagementAPI:
    """The ASGI app answering every path under `/api`. `stream_seconds`: how long one log
    stream lasts before its client reconnects."""

    def __init__(
        self,
        store: Store,
        approvals: Approvals | None,
        token: str | None,
        clock: Callable[[], float] = time.time,
        stream_seconds: float = STREAM_SECONDS,
        task_logs: TaskLogs | None = None,
        throttle: AuthThrottle | None = None,
    ) -> None:
        document = openapi_document()
        self.throttle = throttle or AuthThrottle()

        async def openapi(request: Request) -> Response:
            return JSONResponse(document)

        self.routes = [
            *event_routes(store),
            *dead_letter_routes(store),
            *task_routes(store, stream_seconds, task_logs),
            *approval_routes(store, approvals),
            *stats_routes(store, clock),
            *fix_routes(store),
            *idea_routes(store, clock),
            Route("/api/openapi.json", openapi, methods=["GET"]),
        ]
        handlers = {HTTPException: _http_error, NotFound: _not_found}
        self._app = Starlette(routes=self.routes, exception_handlers=handlers)
        self._app.router.redirect_slashes = False  # `/api/tasks/` is no task, not the list
        self._token = token.encode() if token else None  # an empty token is no token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refusal = self._refusal(scope)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self._app(scope, receive, send)

    def _refusal(self, scope: Scope) -> Response | None:
        if self._token is None:
            return None if params.client_is_loopback(scope) else error(403, LOOPBACK_ONLY)
        given, client = _bearer(scope), self.throttle.client(scope)
        wait = self.throttle.retry_after(client) if given else None
        if wait is not None:  # not even looked at
            return error(429, THROTTLED, {"retry-after": str(wait)})
        if hmac.compare_digest(given, self._token):
            self.throttle.succeeded(client)
            return None
        if given:  # an attempt, not a request that forgot its token
            self.throttle.failed(client)
        return error(401, UNAUTHORISED, {"www-authenticate": 'Bearer realm="taskyard"'})


api_app = ManagementAPI
