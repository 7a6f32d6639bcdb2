"""Tasks and their actions in the management API.

GET  /api/tasks?status=&route=&event_id=&limit=  → {"tasks": [...]}, newest first
GET  /api/tasks/{id}                             → the task with its actions
GET  /api/tasks/{id}/actions                     → {"actions": [...]}
GET  /api/tasks/{id}/logs?offset=&limit=         → a page of the agent's log (JSON lines):
                                                   `limit` bytes (default 1 MiB, at most
                                                   4 MiB) of whole lines from byte `offset`;
                                                   headers X-Log-Offset, X-Log-Next-Offset,
                                                   X-Log-Size, X-Log-Kept and, when there is
                                                   more, Link rel="next". 409 for a log that
                                                   is not safe to open (`taskyard.run.tasklogs`)
GET  /api/tasks/{id}/logs/stream                 → the same as Server-Sent Events, followed
                                                   until the task ends (`taskyard.web.logstream`)
GET  /api/tasks/{id}/audit                       → the task's audit entries, and whether the
                                                   whole chain verifies (`views.audit_json`)
POST /api/tasks/{id}/cancel                      → 202 cancel requested | 200 cancelled
                                                   (it was awaiting approval) | 409 refused
POST /api/tasks/{id}/retry   {"rerun": false}    → 202 queued again | 409 not ended

An unknown task is answered 404 by the API's one `NotFound` handler (`taskyard.web.api`).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from taskyard.exceptions import LogRefused
from taskyard.models import Task, TaskStatus
from taskyard.run.tasklogs import PAGE_LIMIT_MAX, PAGE_MAX, LogPage, TaskLogs
from taskyard.run.taskops import cancel_task, retry_task
from taskyard.store.base import Store, TaskFilter
from taskyard.web import params
from taskyard.web.logstream import STREAM_SECONDS, LogFollower
from taskyard.web.params import error
from taskyard.web.views import action_json, audit_json, task_json

NDJSON = "application/x-ndjson"


def _last_event_id(request: Request) -> int:
    """Where a reconnecting SSE client goes on from (the id of the last event it got)."""
    given = request.headers.get("last-event-id")
    if given is None:
        return 0
    given = given.strip()
    if not given.isascii() or not given.isdigit() or len(given) > 18:
        raise params.bad("Last-Event-ID must be a byte offset (a whole number)")
    return int(given)


def _byte_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    given = request.query_params.get(name)
    if given is None:
        return default
    if (
        not given.isascii()
        or not given.isdigit()
        or len(given) > 18
        or not low <= int(given) <= high
    ):
        raise params.bad(f"{name} must be a whole number of bytes from {low} to {high}")
    return int(given)


def _page_headers(task_id: str, page: LogPage, limit: int) -> dict[str, str]:
    headers = {
        "x-log-offset": str(page.offset),
        "x-log-next-offset": str(page.next_offset),
        "x-log-size": str(page.size),
        "x-log-kept": "true" if page.kept else "false",
    }
    if page.more:
        link = f"/api/tasks/{task_id}/logs?offset={page.next_offset}&limit={limit}"
        headers["link"] = f'<{link}>; rel="next"'
    return headers


def task_routes(
    store: Store, stream_seconds: float = STREAM_SECONDS, task_logs: TaskLogs | None = None
) -> list[Route]:
    logs_of = task_logs or TaskLogs()

    async def task_of(task_id: str) -> Task:
        return await asyncio.to_thread(store.get_task, task_id)

    async def list_tasks(request: Request) -> Response:
        flt = TaskFilter(
            status=params.choice(request, "status", TaskStatus),
            route=params.query(request, "route"),
            event_id=params.query(request, "event_id"),
            limit=params.limit(request),
        )
        found = await asyncio.to_thread(store.list_tasks, flt)
        return JSONResponse({"tasks": [task_json(t) for t in found]})

    async def show_task(request: Request) -> Response:
        task_id = params.path(request, "task_id")
        task = await task_of(task_id)
        actions = await asyncio.to_thread(store.actions_of, task_id)
        return JSONResponse({**task_json(task), "actions": [action_json(a) for a in actions]})

    async def list_actions(request: Request) -> Response:
        task_id = params.path(request, "task_id")
        await task_of(task_id)  # an unknown task is a 404, not an empty list
        actions = await asyncio.to_thread(store.actions_of, task_id)
        return JSONResponse({"actions": [action_json(a) for a in actions]})

    async def logs(request: Request) -> Response:
        task = await task_of(params.path(request, "task_id"))
        offset = _byte_param(request, "offset", 0, 0, 10**18)
        limit = _byte_param(request, "limit", PAGE_MAX, 1, PAGE_LIMIT_MAX)
        try:
            page = await asyncio.to_thread(logs_of.page, task, offset, limit)
        except LogRefused as exc:
            return error(409, str(exc))
        if page is None:
            return error(404, f"task {task.id} has no log yet (status {task.status})")
        headers = _page_headers(task.id, page, limit)
        return Response(page.data, media_type=NDJSON, headers=headers)

    async def stream_logs(request: Request) -> Response:
        offset = _last_event_id(request)
        task = await task_of(params.path(request, "task_id"))
        try:  # a log that is not safe to open is refused before the stream starts
            await asyncio.to_thread(logs_of.page, task, offset, 1)
        except LogRefused as exc:
            return error(409, str(exc))
        follower = LogFollower(store, task.id, offset, max_seconds=stream_seconds, logs=logs_of)
        headers = {"cache-control": "no-cache", "x-accel-buffering": "no"}
        return StreamingResponse(follower.events(), media_type="text/event-stream", headers=headers)

    async def audit(request: Request) -> Response:
        task = await task_of(params.path(request, "task_id"))
        return JSONResponse(await asyncio.to_thread(audit_json, store, task.id))

    async def cancel(request: Request) -> Response:
        task_id = params.path(request, "task_id")
        done = await asyncio.to_thread(cancel_task, store, task_id, time.time())
        if not done.done:
            return JSONResponse({"error": done.why, "status": str(done.status)}, 409)
        answer: dict[str, Any] = {"id": task_id, "status": str(done.status)}
        if done.ended_now:
            return JSONResponse({**answer, "cancelled": True, "cancel_requested": False})
        return JSONResponse({**answer, "cancelled": False, "cancel_requested": True}, 202)

    async def retry(request: Request) -> Response:
        task_id = params.path(request, "task_id")
        body = await params.json_object(request)
        rerun = body.get("rerun", False)
        if not isinstance(rerun, bool):
            return error(400, "rerun must be true or false")
        done = await asyncio.to_thread(retry_task, store, task_id, time.time(), rerun)
        if not done.done:
            return JSONResponse({"error": done.why, "status": str(done.status)}, 409)
        answer = {
            "id": task_id,
            "workflow_id": done.workflow_id,
            "queued": True,
            "reapply": done.reapply,
            "status": str(done.status),
        }
        return JSONResponse(answer, 202)

    return [
        Route("/api/tasks", list_tasks, methods=["GET"]),
        Route("/api/tasks/{task_id}", show_task, methods=["GET"]),
        Route("/api/tasks/{task_id}/actions", list_actions, methods=["GET"]),
        Route("/api/tasks/{task_id}/logs", logs, methods=["GET"]),
        Route("/api/tasks/{task_id}/logs/stream", stream_logs, methods=["GET"]),
        Route("/api/tasks/{task_id}/audit", audit, methods=["GET"]),
        Route("/api/tasks/{task_id}/cancel", cancel, methods=["POST"]),
        Route("/api/tasks/{task_id}/retry", retry, methods=["POST"]),
    ]
