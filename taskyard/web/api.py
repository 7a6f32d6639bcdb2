"""The management API under `/api`, behind a bearer token (`TASKYARD_API_TOKEN`).

Approvals (what the UI's pending list calls):

    GET  /api/approvals?status=pending&task_id=…      → {"approvals": [...]}
    GET  /api/approvals/{id}                           → the request, with its decision attempts
    POST /api/approvals/{id}/approve  {"reason", "as"} → 200 decided | 409 refused (why)
    POST /api/approvals/{id}/deny     {"reason", "as"}
    POST /api/approvals/{id}/more-info {"question", "as"}

Without a configured token the API answers 404 saying how to turn it on; a missing or wrong
token is 401. A decision made here is `web:<as>` (default `web:operator`): whoever holds the
API token holds the operator's role.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from taskyard.approvals.policies import Identity
from taskyard.approvals.records import ApprovalStatus, Decision, approval_json
from taskyard.approvals.service import Approvals
from taskyard.exceptions import NotFound
from taskyard.store.base import Store

log = logging.getLogger(__name__)
Endpoint = Callable[[Request], Awaitable[Response]]
_DECISIONS = {"approve": Decision.APPROVE, "deny": Decision.DENY, "more-info": Decision.MORE_INFO}


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status)


def api_routes(store: Store, approvals: Approvals | None, token: str | None) -> list[Route]:
    def guarded(endpoint: Endpoint) -> Endpoint:
        async def check(request: Request) -> Response:
            if token is None:
                return _error(404, "the management API is off: set TASKYARD_API_TOKEN")
            given = request.headers.get("authorization", "")
            scheme, _, value = given.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                value.encode(), token.encode()
            ):
                return _error(401, "a valid bearer token is required")
            return await endpoint(request)

        return check

    async def list_approvals(request: Request) -> Response:
        status = request.query_params.get("status")
        try:
            wanted = ApprovalStatus(status) if status else None
        except ValueError:
            known = ", ".join(s.value for s in ApprovalStatus)
            return _error(400, f"status must be one of {known}")
        found = await asyncio.to_thread(
            store.list_approvals, wanted, request.query_params.get("task_id")
        )
        return JSONResponse({"approvals": [approval_json(a) for a in found]})

    async def show_approval(request: Request) -> Response:
        approval_id = request.path_params["approval_id"]
        try:
            approval = await asyncio.to_thread(store.get_approval, approval_id)
        except NotFound as exc:
            return _error(404, str(exc))
        attempts = await asyncio.to_thread(store.decision_attempts, approval_id)
        data = approval_json(approval)
        data["attempts"] = [
            {**dataclasses.asdict(t), "decision": str(t.decision)} for t in attempts
        ]
        return JSONResponse(data)

    async def decide(request: Request) -> Response:
        if approvals is None:
            return _error(409, "approvals are turned off (approvals.enabled: false)")
        decision = _DECISIONS.get(request.path_params["decision"])
        if decision is None:
            return _error(404, f"no such decision; use one of {', '.join(_DECISIONS)}")
        try:
            body: Any = await request.json() if await request.body() else {}
        except ValueError:
            return _error(400, "the body must be JSON")
        if not isinstance(body, dict):
            return _error(400, "the body must be a JSON object")
        reason = body.get("question" if decision is Decision.MORE_INFO else "reason")
        if reason is not None and not isinstance(reason, str):
            return _error(400, "reason must be a string")
        who = body.get("as") or "operator"
        if not isinstance(who, str):
            return _error(400, "as must be a string")
        try:
            outcome = await approvals.decisions.decide(
                request.path_params["approval_id"], decision, Identity("web", who), reason
            )
        except NotFound as exc:
            return _error(404, str(exc))
        if outcome.accepted:  # the decision stands even if a channel cannot be told
            try:
                await approvals.tell_apart(outcome)
            except Exception:
                log.exception(
                    "approval outcome not told", extra={"approval_id": outcome.approval.id}
                )
        data = {
            "id": outcome.approval.id,
            "accepted": outcome.accepted,
            "status": str(outcome.approval.status),
            "why": outcome.why,
            "task_resumed": outcome.resumed,
        }
        return JSONResponse(data, 200 if outcome.accepted else 409)

    return [
        Route("/api/approvals", guarded(list_approvals), methods=["GET"]),
        Route("/api/approvals/{approval_id}", guarded(show_approval), methods=["GET"]),
        Route(
            "/api/approvals/{approval_id}/{decision}",
            guarded(decide),
            methods=["POST"],
        ),
    ]
