"""The operator's web UI: server-rendered pages (jinja2, `taskyard/templates/ui/`) with one small
script (`taskyard/web/static/ui.js`) for the live log. No build step.

    GET  /                              overview: counts, queue depth, rates, cost today
    GET  /ui/events, /ui/events/{id}    events; one event with its headers, body and routing
    GET  /ui/tasks,  /ui/tasks/{id}     tasks; one task: context, prompts, the agent's events
                                        (live while it runs), result, every action's outcome,
                                        its audit entries and whether the chain verifies
    GET  /ui/tasks/{id}/log-stream      the agent's log as Server-Sent Events (`LogFollower`)
    GET  /ui/approvals                  pending requests (approve / deny with a reason)
    GET  /ui/dlq                        dead letters (replay)
    GET  /ui/ideas,  /ui/ideas/{id}     ideas; one idea with its plan drawn (`web.ui_ideas`)
    POST /ui/approvals/{id}/decide, /ui/events/{id}/replay, /ui/dlq/{id}/replay,
         /ui/tasks/{id}/cancel, /ui/tasks/{id}/retry      what the buttons do (then 303 back)
    GET/POST /ui/login, POST /ui/logout

Pages read the store directly, and the buttons call what the management API calls, so both
behave alike. With an API token configured every page asks for it: the login form sets an
HttpOnly cookie signed with a key derived from it, good for 12 hours from sign-in (or send
`Authorization: Bearer <token>`). Without a token the UI answers loopback clients only,
asking for a loopback name (`Host`; see `params.client_is_loopback`). Every form carries a
CSRF token that must match a cookie, and a POST must come from the UI's own origin. Task
files are shown from the task's workspace (what the agent was given: no platform secret is in
them), opened only as `taskyard.run.tasklogs` opens a log: never through a link, never a file
with several links or another owner. The agent's log comes from `TaskLogs` (redacted; the
copy kept with the task once the workspace is gone). Wrong tokens (the sign-in form, a bearer
header) are throttled per client like the API's (`taskyard.web.throttle`): 429 with
`Retry-After`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from jinja2 import Environment, PackageLoader, StrictUndefined
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from taskyard.approvals.policies import Identity
from taskyard.approvals.service import Approvals
from taskyard.exceptions import LogRefused, NotFound, StoreError
from taskyard.models import DeadLetterStatus, EventStatus, TaskStatus
from taskyard.queue.replay import replay_dead_letter, replay_event
from taskyard.records import ApprovalStatus, Decision, approval_json
from taskyard.run.budget import waiting_reason
from taskyard.run.results import analysis_text
from taskyard.run.tasklogs import TaskLogs
from taskyard.run.taskops import cancel_task, retry_task
from taskyard.store.base import EventFilter, Store, TaskFilter
from taskyard.web import params
from taskyard.web.api_stats import stats_json
from taskyard.web.logstream import LogFollower
from taskyard.web.taskfiles import FILE_MAX, pretty, pretty_json, task_files
from taskyard.web.throttle import AuthThrottle
from taskyard.web.ui_ideas import IdeaPages
from taskyard.web.views import (
    action_json,
    audit_json,
    brief_json,
    decision_json,
    event_json,
    letter_json,
    masked_headers,
    task_json,
)

log = logging.getLogger(__name__)
Handler = Callable[[Request], Awaitable[Response]]

SESSION_COOKIE = "taskyard_session"
CSRF_COOKIE = "taskyard_csrf"
FLASH_COOKIE = "taskyard_flash"
SESSION_SECONDS = 12 * 3600
FORM_MAX = 64 * 1024
TEXT_MAX = 4000  # a reason or a name typed in a form
STATIC = Path(__file__).resolve().parent / "static"
_CSRF = re.compile(r"[0-9a-f]{32}")
_LETTER_STATES = ("open", "replayed", "all")
_DECISIONS = {"approve": Decision.APPROVE, "deny": Decision.DENY}
HEADERS = {
    "content-security-policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; object-src 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}
LOOPBACK_ONLY = "taskyard has no API token (TASKYARD_API_TOKEN), so its UI answers on loopback only"


def _http_url(value: Any) -> str | None:
    """`value` if it is an http(s) URL, the only kind a page links to (no `javascript:`)."""
    if not isinstance(value, str):
        return None
    return value if urlsplit(value).scheme in ("http", "https") else None


def templates() -> Environment:
    env = Environment(
        loader=PackageLoader("taskyard", "templates/ui"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pretty"] = pretty
    env.filters["http_url"] = _http_url
    env.filters["analysis"] = analysis_text
    env.filters["brief"] = brief_json
    return env


def _local_path(target: str | None, default: str) -> str:
    """Where to go back to: a path of this site only (no `//host`, no scheme)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return default
    return default if any(ord(c) < 0x20 for c in target) else target


# --- the UI -------------------------------------------------------------------------------


class WebUI:
    def __init__(
        self,
        store: Store,
        approvals: Approvals | None,
        api_token: str | None,
        notes_dir: Path | None = None,
        task_logs: TaskLogs | None = None,
        throttle: AuthThrottle | None = None,
    ) -> None:
        self.store = store
        self.logs = task_logs or TaskLogs()
        self.throttle = throttle or AuthThrottle()
        self.approvals = approvals
        self.token = api_token.encode() if api_token else None  # an empty token is no token
        # The cookie holds a value derived from the token, not the token itself.
        derived = hmac.new(self.token or b"", b"taskyard web ui session", hashlib.sha256)
        self.session = derived.hexdigest().encode() if self.token else None
        self.notes_dir = notes_dir
        self.env = templates()

    # --- plumbing --------------------------------------------------------------------------

    def page(self, request: Request, name: str, code: int = 200, **data: Any) -> Response:
        csrf = request.cookies.get(CSRF_COOKIE, "")
        fresh = not _CSRF.fullmatch(csrf)
        if fresh:
            csrf = secrets.token_hex(16)
        flash = unquote(request.cookies.get(FLASH_COOKIE, ""))[:TEXT_MAX]
        kind, _, message = flash.partition(":")
        html = self.env.get_template(name).render(
            csrf=csrf,
            flash={"kind": kind, "message": message} if message else None,
            signed_in=self.session is not None and self._signed_in(request),
            here=request.url.path,
            **data,
        )
        response = HTMLResponse(html, code, headers=HEADERS)
        if fresh:
            self._cookie(request, response, CSRF_COOKIE, csrf, None)
        if flash:
            response.delete_cookie(FLASH_COOKIE, path="/")
        return response

    def problem(self, request: Request, status: int, message: str) -> Response:
        came = urlsplit(request.headers.get("referer", ""))
        back = _local_path(came.path if came.netloc == request.url.netloc else None, "/")
        return self.page(
            request, "problem.html.j2", status, status=status, message=message, back=back
        )

    @staticmethod
    def _cookie(
        request: Request, response: Response, name: str, value: str, max_age: int | None
    ) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path="/",
            httponly=True,
            samesite="strict",
            secure=_https(request),
        )

    def done(self, request: Request, form: dict[str, str], default: str, message: str) -> Response:
        """After a button: back to the page it was on, which shows `message` once."""
        target = _local_path(form.get("next"), default)
        response = RedirectResponse(target, 303, headers=HEADERS)
        self._cookie(request, response, FLASH_COOKIE, quote(f"ok:{message}"[:TEXT_MAX]), 60)
        return response

    def _signed_in(self, request: Request) -> bool:
        assert self.token is not None and self.session is not None
        cookie = request.cookies.get(SESSION_COOKIE, "")
        scheme, _, bearer = request.headers.get("authorization", "").partition(" ")
        given = bearer.strip().encode() if scheme.lower() == "bearer" else b""
        return self._session_valid(cookie) or hmac.compare_digest(given, self.token)

    def _session_value(self, issued: int) -> str:
        """The sign-in cookie: when it was issued, signed with a key derived from the token."""
        assert self.session is not None
        mac = hmac.new(self.session, b"%d" % issued, hashlib.sha256).hexdigest()
        return f"{issued}.{mac}"

    def _session_valid(self, cookie: str) -> bool:
        """A cookie this server signed, at most SESSION_SECONDS ago (a copied cookie does
        not stay good for ever; before, the cookie was one fixed value)."""
        issued, _, _ = cookie.partition(".")
        if not (issued.isascii() and issued.isdigit()) or len(issued) > 12:
            return False
        age = time.time() - int(issued)
        if not -60 <= age <= SESSION_SECONDS:
            return False
        return hmac.compare_digest(cookie.encode(), self._session_value(int(issued)).encode())

    def _throttled(self, request: Request) -> Response | None:
        """429 while this client must wait after too many wrong tokens."""
        wait = self.throttle.retry_after(self.throttle.client(request.scope))
        if wait is None:
            return None
        message = f"too many wrong tokens from this address: try again in {wait} s"
        response = self.problem(request, 429, message)
        response.headers["retry-after"] = str(wait)
        return response

    def _refusal(self, request: Request) -> Response | None:
        if self.session is None:
            if params.client_is_loopback(request.scope):
                return None
            return self.problem(request, 403, LOOPBACK_ONLY)
        scheme, _, bearer = request.headers.get("authorization", "").partition(" ")
        attempt = scheme.lower() == "bearer" and bool(bearer.strip())
        throttled = self._throttled(request) if attempt else None
        if throttled is not None:
            return throttled
        if self._signed_in(request):
            if attempt:
                self.throttle.succeeded(self.throttle.client(request.scope))
            return None
        if attempt:
            self.throttle.failed(self.throttle.client(request.scope))
        if request.method == "GET" and not request.url.path.endswith("/log-stream"):
            wanted = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/ui/login?next={quote(wanted)}", 303, headers=HEADERS)
        return self.problem(request, 401, "sign in with the API token first")

    def guard(self, endpoint: Handler, signed_in: bool = True) -> Handler:
        """The endpoint behind the token (unless `signed_in` is False), its errors as pages."""

        async def guarded(request: Request) -> Response:
            refused = self._refusal(request) if signed_in else None
            if refused is not None:
                return refused
            try:
                return await endpoint(request)
            except HTTPException as exc:  # refused here, or a bad parameter (web.params)
                return self.problem(request, exc.status_code, str(exc.detail))
            except NotFound as exc:
                return self.problem(request, 404, str(exc))
            except StoreError as exc:
                log.error("web ui: store failed", extra={"path": request.url.path})
                return self.problem(request, 503, f"the store is not answering: {exc}")

        return guarded

    async def form(self, request: Request) -> dict[str, str]:
        """A POSTed form, checked: from this site (Origin or Referer), carrying the CSRF token
        of the cookie. Each field once; a NUL or an over-long value is refused."""
        origin = request.headers.get("origin") or request.headers.get("referer")
        if not origin or urlsplit(origin).netloc != request.headers.get("host"):
            raise HTTPException(403, "a form must be sent from taskyard's own pages (origin check)")
        raw = await request.body()
        if len(raw) > FORM_MAX:
            raise HTTPException(413, f"the form is over {FORM_MAX} bytes")
        try:
            fields = parse_qs(raw.decode(), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            raise HTTPException(400, "the form is not UTF-8") from None
        form = {k: v[-1] for k, v in fields.items()}
        cookie = request.cookies.get(CSRF_COOKIE, "")
        given = form.get("csrf", "").encode()
        if not _CSRF.fullmatch(cookie) or not hmac.compare_digest(given, cookie.encode()):
            raise HTTPException(403, "the form's CSRF token is missing or stale: reload the page")
        for key, value in form.items():
            if "\x00" in value or len(value) > TEXT_MAX:
                raise HTTPException(
                    400, f"{key} must be at most {TEXT_MAX} characters, without NUL"
                )
        return form

    # --- pages -----------------------------------------------------------------------------

    async def overview(self, request: Request) -> Response:
        now = time.time()

        def read() -> dict[str, Any]:
            since, midnight = now - 86_400, now - now % 86_400
            stats = stats_json(
                self.store.window_stats(since, now),
                self.store.window_stats(midnight, now, ()),
                self.store.count_events(),
                self.store.count_tasks(),
                self.store.count_dead_letters(),
                since,
                now,
            )
            pending = self.store.list_approvals(ApprovalStatus.PENDING, limit=1000)
            recent = self.store.list_tasks(TaskFilter(limit=10))
            return {"stats": stats, "pending": len(pending), "tasks": list(map(task_json, recent))}

        return self.page(request, "overview.html.j2", **await asyncio.to_thread(read))

    async def events(self, request: Request) -> Response:
        flt = EventFilter(
            status=params.choice(request, "status", EventStatus, empty_is_absent=True),
            source=params.query(request, "source"),
            type=params.query(request, "type"),
            limit=params.limit(request),
        )
        found = await asyncio.to_thread(self.store.list_events, flt)
        return self.page(
            request,
            "events.html.j2",
            events=[event_json(e) for e in found],
            filters=flt,
            statuses=[str(s) for s in EventStatus],
        )

    async def event(self, request: Request) -> Response:
        event_id = params.path(request, "event_id")

        def read() -> dict[str, Any]:
            data = event_json(self.store.get_event(event_id), with_body=True)
            data["headers"] = masked_headers(data["headers"])
            body = data.get("body")
            if isinstance(body, str) and len(body) <= FILE_MAX:
                data["body"] = pretty_json(body) or body
            tasks = self.store.list_tasks(TaskFilter(event_id=event_id, limit=100))
            return {
                "event": data,
                "body_max": FILE_MAX,
                "routing": [decision_json(d) for d in self.store.decisions_for(event_id)],
                "tasks": [task_json(t) for t in tasks],
            }

        return self.page(request, "event.html.j2", **await asyncio.to_thread(read))

    async def tasks(self, request: Request) -> Response:
        flt = TaskFilter(
            status=params.choice(request, "status", TaskStatus, empty_is_absent=True),
            route=params.query(request, "route"),
            event_id=params.query(request, "event_id"),
            limit=params.limit(request),
        )
        found = await asyncio.to_thread(self.store.list_tasks, flt)
        return self.page(
            request,
            "tasks.html.j2",
            tasks=[task_json(t) for t in found],
            filters=flt,
            statuses=[str(s) for s in TaskStatus],
        )

    async def task(self, request: Request) -> Response:
        task_id = params.path(request, "task_id")

        def read() -> dict[str, Any]:
            task = self.store.get_task(task_id)
            approvals = self.store.list_approvals(None, task_id, 100)
            return {
                "task": {**task_json(task), "waiting_reason": waiting_reason(task)},
                "terminal": task.status.terminal,
                "actions": [action_json(a) for a in self.store.actions_of(task_id)],
                "approvals": [approval_json(a) for a in approvals],
                "audit": audit_json(self.store, task_id),
                "subtasks": [task_json(t) for t in self.store.subtasks_of(task_id)],
                **task_files(task, self.notes_dir, self.logs),
            }

        return self.page(request, "task.html.j2", **await asyncio.to_thread(read))

    async def log_stream(self, request: Request) -> Response:
        task = await asyncio.to_thread(self.store.get_task, params.path(request, "task_id"))
        given = request.headers.get("last-event-id") or request.query_params.get("offset", "0")
        if not given.isascii() or not given.isdigit() or len(given) > 18:
            raise HTTPException(400, "offset (or Last-Event-ID) must be a byte offset in the log")
        try:  # a log that is not safe to open is refused before the stream starts
            await asyncio.to_thread(self.logs.page, task, int(given), 1)
        except LogRefused as exc:
            raise HTTPException(409, str(exc)) from None
        follower = LogFollower(self.store, task.id, int(given), logs=self.logs)
        headers = {**HEADERS, "x-accel-buffering": "no"}
        return StreamingResponse(follower.events(), media_type="text/event-stream", headers=headers)

    async def approvals_page(self, request: Request) -> Response:
        def read() -> dict[str, Any]:
            pending = self.store.list_approvals(ApprovalStatus.PENDING, limit=200)
            recent = [a for a in self.store.list_approvals(None, limit=60) if a.status.decided]
            return {
                "pending": [approval_json(a) for a in reversed(pending)],  # oldest first
                "decided": [approval_json(a) for a in recent[:20]],
                "enabled": self.approvals is not None,
            }

        return self.page(request, "approvals.html.j2", **await asyncio.to_thread(read))

    async def dead_letters(self, request: Request) -> Response:
        status = params.text("status", request.query_params.get("status") or "open")
        if status not in _LETTER_STATES:
            raise HTTPException(400, f"status must be one of {', '.join(_LETTER_STATES)}")
        wanted = None if status == "all" else str(DeadLetterStatus(status))
        found = await asyncio.to_thread(
            self.store.list_dead_letters, wanted, params.limit(request, default=100)
        )
        letters = [letter_json(d) for d in found]
        return self.page(
            request, "dlq.html.j2", letters=letters, status=status, states=_LETTER_STATES
        )

    # --- buttons ---------------------------------------------------------------------------

    async def decide(self, request: Request) -> Response:
        form = await self.form(request)
        approval_id = params.path(request, "approval_id")
        decision = _DECISIONS.get(form.get("decision", ""))
        if decision is None:
            raise HTTPException(400, "decision must be approve or deny")
        if self.approvals is None:
            raise HTTPException(409, "approvals are turned off (approvals.enabled: false)")
        reason = form.get("reason", "").strip() or None
        who = form.get("as", "").strip() or "operator"
        outcome = await self.approvals.decide_and_tell(
            approval_id, decision, Identity("web", who), reason
        )
        if not outcome.accepted:
            raise HTTPException(409, f"approval {approval_id} was not decided: {outcome.why}")
        said = f"Approval {approval_id} {outcome.approval.status} by web:{who}."
        if outcome.resumed:
            said += f" Task {outcome.approval.task_id} resumes."
        return self.done(request, form, "/ui/approvals", said)

    async def replay_event(self, request: Request) -> Response:
        form = await self.form(request)
        event_id = params.path(request, "event_id")
        workflow = await asyncio.to_thread(replay_event, self.store, event_id)
        return self.done(
            request, form, f"/ui/events/{event_id}", f"Event {event_id} queued again ({workflow})."
        )

    async def replay_letter(self, request: Request) -> Response:
        form = await self.form(request)
        letter_id = params.path(request, "letter_id")
        workflow = await asyncio.to_thread(replay_dead_letter, self.store, letter_id, time.time())
        if workflow is None:
            raise HTTPException(409, f"dead letter {letter_id} was already replayed")
        return self.done(
            request, form, "/ui/dlq", f"Dead letter {letter_id} replayed ({workflow})."
        )

    async def cancel(self, request: Request) -> Response:
        form = await self.form(request)
        task_id = params.path(request, "task_id")
        done = await asyncio.to_thread(cancel_task, self.store, task_id, time.time())
        if not done.done:
            raise HTTPException(409, str(done.why))
        said = "cancelled" if done.ended_now else "asked to stop: its worker ends it"
        return self.done(request, form, f"/ui/tasks/{task_id}", f"Task {task_id} {said}.")

    async def retry(self, request: Request) -> Response:
        form = await self.form(request)
        task_id = params.path(request, "task_id")
        rerun = form.get("rerun") == "1"
        done = await asyncio.to_thread(retry_task, self.store, task_id, time.time(), rerun)
        if not done.done:
            raise HTTPException(409, str(done.why))
        how = "its actions are applied again" if done.reapply else "it runs again"
        return self.done(request, form, f"/ui/tasks/{task_id}", f"Task {task_id} queued: {how}.")

    # --- signing in ------------------------------------------------------------------------

    async def login_page(self, request: Request) -> Response:
        target = _local_path(request.query_params.get("next"), "/")
        if self.session is None or self._signed_in(request):
            return RedirectResponse(target, 303, headers=HEADERS)
        return self.page(request, "login.html.j2", next=target, wrong=False)

    async def login(self, request: Request) -> Response:
        form = await self.form(request)
        target = _local_path(form.get("next"), "/")
        if self.token is None or self.session is None:
            return RedirectResponse(target, 303, headers=HEADERS)
        throttled = self._throttled(request)
        if throttled is not None:  # the token is not even looked at
            return throttled
        client = self.throttle.client(request.scope)
        if not hmac.compare_digest(form.get("token", "").strip().encode(), self.token):
            self.throttle.failed(client)
            log.warning("web ui: sign-in refused", extra={"client": client})
            return self.page(request, "login.html.j2", 401, next=target, wrong=True)
        self.throttle.succeeded(client)
        response = RedirectResponse(target, 303, headers=HEADERS)
        session = self._session_value(int(time.time()))
        self._cookie(request, response, SESSION_COOKIE, session, SESSION_SECONDS)
        return response

    async def logout(self, request: Request) -> Response:
        await self.form(request)
        response = RedirectResponse("/ui/login" if self.session else "/", 303, headers=HEADERS)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    def routes(self) -> list[BaseRoute]:
        g = self.guard
        return [
            Route("/", g(self.overview), methods=["GET"]),
            Route("/ui/events", g(self.events), methods=["GET"]),
            Route("/ui/events/{event_id}", g(self.event), methods=["GET"]),
            Route("/ui/events/{event_id}/replay", g(self.replay_event), methods=["POST"]),
            Route("/ui/tasks", g(self.tasks), methods=["GET"]),
            Route("/ui/tasks/{task_id}", g(self.task), methods=["GET"]),
            Route("/ui/tasks/{task_id}/log-stream", g(self.log_stream), methods=["GET"]),
            Route("/ui/tasks/{task_id}/cancel", g(self.cancel), methods=["POST"]),
            Route("/ui/tasks/{task_id}/retry", g(self.retry), methods=["POST"]),
            Route("/ui/approvals", g(self.approvals_page), methods=["GET"]),
            Route("/ui/approvals/{approval_id}/decide", g(self.decide), methods=["POST"]),
            Route("/ui/dlq", g(self.dead_letters), methods=["GET"]),
            Route("/ui/dlq/{letter_id}/replay", g(self.replay_letter), methods=["POST"]),
            *IdeaPages(self).routes(),
            Route("/ui/login", g(self.login_page, False), methods=["GET"]),
            Route("/ui/login", g(self.login, False), methods=["POST"]),
            Route("/ui/logout", g(self.logout, False), methods=["POST"]),
            Mount("/ui/static", app=StaticFiles(directory=STATIC), name="ui-static"),
        ]


def _https(request: Request) -> bool:
    """Whether the browser reached us over TLS: directly, or through a proxy that says so
    (`X-Forwarded-Proto`, `Forwarded: proto=`). Believing a client that lies here is
    harmless: a Secure cookie is only sent back over https."""
    if request.url.scheme == "https":
        return True
    proto = request.headers.get("x-forwarded-proto", "").split(",")[-1].strip().lower()
    forwarded = request.headers.get("forwarded", "").lower()
    return proto == "https" or bool(re.search(r"\bproto\s*=\s*\"?https\b", forwarded))


def ui_routes(
    store: Store,
    approvals: Approvals | None,
    api_token: str | None,
    notes_dir: Path | None = None,
    task_logs: TaskLogs | None = None,
    throttle: AuthThrottle | None = None,
) -> list[BaseRoute]:
    """The UI's routes, to put beside the others of the app. `notes_dir`: where the tasks'
    notes are (default `$TASKYARD_HOME/tasks`, known from the approvals' settings)."""
    if notes_dir is None and approvals is not None and approvals.settings is not None:
        notes_dir = approvals.settings.home / "tasks"
    return WebUI(store, approvals, api_token, notes_dir, task_logs, throttle).routes()
