"""A store seeded with one of everything the management API shows, and the app serving it."""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import uvicorn

from taskyard.approvals.service import Approvals
from taskyard.config import Settings
from taskyard.intake.app import IntakeApp
from taskyard.lifecycle import EndingKind
from taskyard.models import (
    DeadLetter,
    DeadLetterStatus,
    Decision,
    Event,
    EventStatus,
    Priority,
    RouteDecision,
    Task,
    TaskStatus,
)
from taskyard.observe.metrics import Metrics
from taskyard.records import ActionRecord, ActionStatus, Approval, ApprovalStatus
from taskyard.store.base import FOREVER, NewEvent, Store
from taskyard.web.app import build_app
from taskyard.web.openapi import openapi_document
from taskyard.web.throttle import AuthThrottle
from tests.lifecycle_paths import drive

TOKEN = "api-token-for-tests-7d1f"
BEARER = {"authorization": f"Bearer {TOKEN}"}
HOUR = 3600.0
DAY = 86_400.0


@dataclass
class Seeded:
    """Ids of what `seed` stored, by the role each plays in the tests."""

    now: float
    events: dict[str, str] = field(default_factory=dict)
    tasks: dict[str, str] = field(default_factory=dict)
    letters: dict[str, str] = field(default_factory=dict)
    approvals: dict[str, str] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)


def settings_for(home: Path, **data: Any) -> Settings:
    return Settings.model_validate({"home": home, **data})


def app_for(
    store: Store,
    home: Path,
    token: str | None = TOKEN,
    approvals_on: bool = True,
    stream_seconds: float = 300.0,
    throttle: AuthThrottle | None = None,
) -> Any:
    """The whole HTTP app (`build_app`) over `store`, as `taskyard serve` builds it."""
    settings = settings_for(home)
    metrics = Metrics()
    approvals = Approvals.from_settings(settings, store) if approvals_on else None
    intake = IntakeApp(settings, None, metrics)
    return build_app(
        store, metrics, intake, approvals, token, stream_seconds=stream_seconds, throttle=throttle
    )


def _event(eid: str, source: str, type_: str, at: float, body: bytes) -> Event:
    return Event(
        id=eid,
        source=source,
        type=type_,
        delivery_id=f"d-{eid}",
        subject=f"acme/api#{eid[-2:]}",
        actor="octocat",
        received_at=at,
        priority=Priority.P1 if source == "sentry" else Priority.P2,
        headers={"x-github-event": "pull_request"} if source == "github" else {},
        body=body,
        content_hash=hashlib.sha256(body).hexdigest(),
    )


def _task(tid: str, event_id: str, route: str, created: float) -> Task:
    return Task(
        id=tid,
        event_id=event_id,
        route=route,
        agent="codex",
        status=TaskStatus.QUEUED,
        priority=Priority.P2,
        created_at=created,
        updated_at=created,
        workflow_id=f"task-{tid}",
        spec={"route": route},
    )


def _seed_events(store: Store, s: Seeded) -> None:
    now = s.now
    rows = [
        ("processed", "github", "github:pull_request.opened", now - 2 * HOUR, b'{"n": 1}'),
        ("ignored", "slack", "slack:message.channels", now - HOUR, b'{"text": "hi"}'),
        ("dead", "sentry", "sentry:issue.created", now - 30 * 60, b'{"level": "error"}'),
        ("binary", "github", "github:issues.opened", now - 10 * 60, b"\xff\xfe not utf-8"),
        ("old", "linear", "linear:Issue.create", now - 3 * DAY, b'{"old": true}'),
    ]
    for i, (name, source, type_, at, body) in enumerate(rows):
        eid = f"{int(at * 1000):012x}{i:020x}"
        s.events[name] = eid
        store.insert_events([NewEvent(_event(eid, source, type_, at, body), eid, FOREVER)], at)
    for name, status in (
        ("processed", EventStatus.PROCESSED),
        ("ignored", EventStatus.IGNORED),
        ("dead", EventStatus.DEAD),
        ("old", EventStatus.PROCESSED),
    ):
        store.finish_event(s.events[name], status, "boom" if name == "dead" else None, now)
    s.letters["open"] = "l-open"
    s.letters["replayed"] = "l-replayed"
    for lid, at in (("l-open", now - 20 * 60), ("l-replayed", now - 25 * 60)):
        store.add_dead_letter(
            DeadLetter(lid, "route", s.events["dead"], "boom", 3, at, DeadLetterStatus.OPEN)
        )
    store.mark_dead_letter_replayed("l-replayed", now - 24 * 60)


def _log(root: Path, tid: str, lines: list[str], tail: str = "") -> Path:
    outputs = root / f"task-{tid}" / "outputs"
    outputs.mkdir(parents=True)
    path = outputs / "log.jsonl"
    path.write_text("".join(line + "\n" for line in lines) + tail)
    return outputs.parent


# name → (route, status, started ago, finished ago, cost, reason, created ago)
_TASKS: dict[str, tuple[str, TaskStatus, float | None, float | None, float | None, str | None]] = {
    "succeeded": ("pr-review", TaskStatus.SUCCEEDED, 600, 540, 0.5, None),
    "failed": ("triage", TaskStatus.FAILED, 300, 100, 0.25, "agent error"),
    "actions_failed": ("labels", TaskStatus.FAILED, 900, 880, None, "actions: 1 of 2 failed"),
    "running": ("bugs", TaskStatus.RUNNING, 30, None, None, None),
    "queued": ("slow", TaskStatus.QUEUED, None, None, None, None),
    "awaiting": ("merge", TaskStatus.AWAITING_APPROVAL, 400, None, None, None),
    "applying": ("apply", TaskStatus.APPLYING, 200, None, None, None),
    "old": ("pr-review", TaskStatus.SUCCEEDED, 3 * DAY + 100, 3 * DAY, 1.0, None),
}


def _seed_tasks(store: Store, s: Seeded, root: Path) -> None:
    now = s.now
    for i, (name, (route, status, started, finished, cost, reason)) in enumerate(_TASKS.items()):
        event_id = s.events["old" if name == "old" else "processed"]
        tid = f"{int((now - HOUR) * 1000):012x}{i:020x}"
        s.tasks[name] = tid
        task = _task(tid, event_id, route, now - HOUR + i)
        store.record_routing(
            [RouteDecision(event_id, route, Decision.STARTED, None, tid, now - HOUR)], [task]
        )
        changes: dict[str, Any] = {"attempts": 1}
        if reason is not None:
            changes["reason"] = reason
        if started is not None:
            changes["started_at"] = now - started
        if finished is not None:
            changes["finished_at"] = now - finished
        if cost is not None:
            changes["cost_usd"] = cost
        if name == "actions_failed":
            changes["result"] = {"success": True, "actions": [{"type": "add_labels"}]}
            changes["ending"] = EndingKind.ACTIONS_FAILED
        if name in ("succeeded", "running"):
            lines = [orjson.dumps({"type": "turn", "n": n}).decode() for n in range(3)]
            workspace = _log(root, tid, lines, tail='{"type": "unfin' if name == "running" else "")
            changes["workspace"] = str(workspace)
            s.logs[name] = workspace / "outputs" / "log.jsonl"
        assert drive(store, tid, status, **changes)
    for index, kind in enumerate(("add_labels", "comment")):
        store.record_action(
            ActionRecord(
                key=f"{s.tasks['succeeded']}.{index}.k",
                task_id=s.tasks["succeeded"],
                index=index,
                route="pr-review",
                type=kind,
                params={"labels": ["bug"]} if kind == "add_labels" else {"body": "Looks fine."},
                status=ActionStatus.APPLIED,
                created_at=now - 545,
                updated_at=now - 541,
                requests=[{"method": "POST", "path": "/repos/acme/api/issues/7/labels"}],
                sent=1,
                url="https://github.com/acme/api/issues/7",
            )
        )


def _seed_approvals(store: Store, s: Seeded) -> None:
    for name, status in (("pending", ApprovalStatus.PENDING), ("other", ApprovalStatus.PENDING)):
        aid = f"a-{name}"
        s.approvals[name] = aid
        store.create_approval(
            Approval(
                id=aid,
                task_id=s.tasks["awaiting"],
                action_key=f"{s.tasks['awaiting']}.{len(s.approvals)}.k",
                route="merge",
                action_type="merge_pr",
                risk="high",
                rule="merge-main",
                summary="merge acme/api#7 into main",
                details={"params": {"number": 7}},
                status=status,
                created_at=s.now - 300 + len(s.approvals),
                expires_at=s.now + HOUR,
            )
        )


def seed(store: Store, root: Path, now: float) -> Seeded:
    s = Seeded(now)
    _seed_events(store, s)
    _seed_tasks(store, s, root)
    _seed_approvals(store, s)
    _seed_audit(store, s)
    return s


def _seed_audit(store: Store, s: Seeded) -> None:
    """A few audit entries: the succeeded task's, another task's and one of no task."""
    done = s.tasks["succeeded"]
    store.append_audit("gate", done, "taskyard", {"gate": "tests", "ok": True}, s.now - 50)
    store.append_audit("push", None, "taskyard", {"refs": ["main"]}, s.now - 40)
    store.append_audit("verdict", done, "reviewer:codex", {"verdict": "pass"}, s.now - 30)
    store.append_audit("refusal", s.tasks["failed"], "taskyard", {"why": "no"}, s.now - 20)


# --- the OpenAPI document as a judge of answers ------------------------------------------------


DOC = openapi_document()


def doc_path(url: str) -> str:
    """The documented path template a concrete URL is an instance of."""
    path = url.split("?")[0]
    if path in DOC["paths"]:
        return path
    parts = path.split("/")
    templates: list[str] = list(DOC["paths"])
    for template in templates:
        pieces = template.split("/")
        if len(pieces) == len(parts) and all(
            t == p or t.startswith("{") for t, p in zip(pieces, parts, strict=True)
        ):
            return template
    raise AssertionError(f"{url} is not documented")


def response_schema(path: str, method: str, status: int, media: str) -> dict[str, Any]:
    """The documented schema of one answer, with the document's components beside it."""
    responses = DOC["paths"][path][method.lower()]["responses"]
    assert str(status) in responses, f"{method} {path} does not document {status}"
    content = responses[str(status)]["content"]
    assert media in content, f"{method} {path} {status} does not document {media}"
    return {**content[media]["schema"], "components": DOC["components"]}


def conforms(
    path: str, method: str, status: int, body: Any, media: str = "application/json"
) -> None:
    schema = response_schema(path, method, status, media)
    jsonschema.validate(body, schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


# --- a real server ----------------------------------------------------------------------------


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """`app` served by uvicorn on a free loopback port, in a thread; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        lifespan="off",
        ws="none",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
