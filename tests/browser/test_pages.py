"""The web UI's pages and buttons over a seeded store (MemoryStore and SQLite), in-process:
every page renders, hostile content is shown as text, the token and the CSRF checks hold,
and each button does what the management API does (tests/integration/api_harness.py seeds
the store: events, tasks with logs, actions, approvals, dead letters)."""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from taskyard.approvals.service import Approvals
from taskyard.models import DeadLetterStatus, Event, EventStatus, Priority, TaskStatus
from taskyard.records import ActionRecord, ActionStatus, Approval, ApprovalStatus
from taskyard.store import MemoryStore, SQLStore, Store
from taskyard.store.base import FOREVER, NewEvent
from taskyard.web.ui import CSRF_COOKIE, SESSION_COOKIE, ui_routes
from tests.integration.api_harness import HOUR, Seeded, seed, settings_for
from tests.lifecycle_paths import drive

TOKEN = "ui-token-for-tests-5e2a"
LOOPBACK = ("127.0.0.1", 50000)
ORIGIN = {"origin": "http://localhost"}  # token-less, only loopback names are answered
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@dataclasses.dataclass
class World:
    store: Store
    seeded: Seeded
    home: Path
    approvals: Approvals
    hostile_event: str = ""

    def client(self, token: str | None = TOKEN, client: tuple[str, int] = LOOPBACK) -> TestClient:
        app = Starlette(routes=ui_routes(self.store, self.approvals, token))
        return TestClient(app, client=client, follow_redirects=False, base_url="http://localhost")


def _workspace_files(root: Path, secret: Path) -> None:
    """The succeeded task's context and prompt, one of them hostile, and a symbolic link
    the agent could have left pointing at a secret."""
    context, prompts = root / "context", root / "prompts"
    context.mkdir()
    prompts.mkdir()
    (context / "event.json").write_text(orjson.dumps({"title": HOSTILE, "n": 1}).decode())
    (context / "github.pr.json").write_text('{"number": 7, "title": "Fix </pre><script>"}')
    (prompts / "pr-review.md").write_text(f"# Review acme/api#7\n\n{HOSTILE}\n")
    (context / "leak.json").symlink_to(secret)


def _hostile(store: Store, s: Seeded, now: float) -> str:
    body = orjson.dumps({"comment": HOSTILE})
    event = Event(
        id="e-hostile",
        source="github",
        type="github:issue_comment.created",
        delivery_id="d-hostile",
        subject=HOSTILE,
        actor=HOSTILE,
        received_at=now - 60,
        priority=Priority.P2,
        headers={
            "x-evil": HOSTILE,
            "authorization": "Bearer HEADER-SECRET-1",
            "x-api-key": "HEADER-SECRET-2",
            "cookie": "session=HEADER-SECRET-3",
        },
        body=body,
        content_hash="0" * 64,
    )
    store.insert_events([NewEvent(event, "e-hostile", FOREVER)], now - 60)
    store.finish_event("e-hostile", EventStatus.DEAD, HOSTILE, now)
    task = s.tasks["failed"]
    drive(store, task, reason=HOSTILE, finished_at=store.get_task(task).finished_at)
    store.record_action(
        ActionRecord(
            key=f"{task}.0.k",
            task_id=task,
            index=0,
            route="triage",
            type="comment",
            params={"body": HOSTILE},
            status=ActionStatus.FAILED,
            created_at=now - 50,
            updated_at=now - 50,
            reason=HOSTILE,
            url="javascript:alert(1)",
        )
    )
    return "e-hostile"


@pytest.fixture(params=["memory", "sqlite"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    if request.param == "memory":
        store: Store = MemoryStore()
    else:
        store = SQLStore.open(f"sqlite:///{tmp_path / 'ui.db'}")
        store.migrate()
    now = time.time()
    home = tmp_path / "home"
    seeded = seed(store, home / "workspaces", now)
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-VALUE")
    succeeded = store.get_task(seeded.tasks["succeeded"])
    assert succeeded.workspace is not None
    _workspace_files(Path(succeeded.workspace), secret)
    approvals = Approvals.from_settings(settings_for(home), store)
    w = World(store, seeded, home, approvals)
    w.hostile_event = _hostile(store, seeded, now)
    yield w
    store.close()


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    with world.client(None) as c:
        yield c


def pages(w: World) -> list[str]:
    s = w.seeded
    return [
        "/",
        "/ui/events",
        "/ui/events?status=dead&source=github&limit=5",
        *[f"/ui/events/{e}" for e in s.events.values()],
        f"/ui/events/{w.hostile_event}",
        "/ui/tasks",
        "/ui/tasks?status=running",
        *[f"/ui/tasks/{t}" for t in s.tasks.values()],
        "/ui/approvals",
        "/ui/dlq",
        "/ui/dlq?status=replayed",
        "/ui/dlq?status=all",
    ]


def csrf_of(client: TestClient) -> str:
    """The CSRF token a page gave (the sign-in page, when the others ask to sign in first)."""
    for url in ("/ui/approvals", "/ui/login"):
        if CSRF_COOKIE not in client.cookies:
            client.get(url)
    return str(client.cookies[CSRF_COOKIE])


def post(client: TestClient, url: str, data: dict[str, str], **headers: str) -> Any:
    form = {"csrf": csrf_of(client), **data}
    return client.post(url, data=form, headers={**ORIGIN, **headers})


# --- pages ------------------------------------------------------------------------------------


def test_every_page_renders(world: World, client: TestClient) -> None:
    for url in pages(world):
        answer = client.get(url)
        assert answer.status_code == 200, (url, answer.text[-500:])
        assert answer.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in answer.headers["content-security-policy"]
        assert answer.headers["x-frame-options"] == "DENY"


def test_the_overview_counts_what_the_store_holds(world: World, client: TestClient) -> None:
    html = client.get("/").text
    assert _stat(html, "approvals_pending") == "2"
    assert _stat(html, "tasks_queued") == "1"
    assert _stat(html, "tasks_active") == "2"  # running + applying
    assert _stat(html, "dead_letters_open") == "1"
    assert _stat(html, "cost_today") in ("$0.7500", "$0.0000")  # 0 just after midnight UTC


def _stat(html: str, name: str) -> str:
    found = re.search(rf'data-stat="{name}">([^<]*)<', html)
    assert found is not None, name
    return found.group(1)


def test_hostile_content_is_shown_as_text(world: World, client: TestClient) -> None:
    escaped = "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;"
    for url in pages(world):
        html = client.get(url).text
        assert "<script>alert" not in html and "<img src=x" not in html, url
        assert 'href="javascript:' not in html, url  # a non-http URL is shown as text
        assert re.findall(r"<script[^>]*>", html) == ['<script src="/ui/static/ui.js" defer>']
    for url in (
        f"/ui/events/{world.hostile_event}",
        f"/ui/tasks/{world.seeded.tasks['failed']}",
        f"/ui/tasks/{world.seeded.tasks['succeeded']}",
    ):
        assert escaped in client.get(url).text or "&lt;script&gt;" in client.get(url).text, url
    task = client.get(f"/ui/tasks/{world.seeded.tasks['failed']}").text
    assert escaped in task  # the reason, the action's reason and params
    event = client.get(f"/ui/events/{world.hostile_event}").text
    assert escaped in event and "x-evil" in event


def test_headers_that_may_carry_a_credential_are_hidden(world: World, client: TestClient) -> None:
    event = client.get(f"/ui/events/{world.hostile_event}").text
    assert "HEADER-SECRET" not in event
    for name in ("authorization", "x-api-key", "cookie"):
        assert f'<th scope="row">{name}</th><td>(hidden)</td>' in event


def test_a_task_page_shows_its_files_but_no_symbolic_link(world: World, client: TestClient) -> None:
    html = client.get(f"/ui/tasks/{world.seeded.tasks['succeeded']}").text
    assert "event.json" in html and "github.pr.json" in html and "pr-review.md" in html
    assert "Fix &lt;/pre&gt;&lt;script&gt;" in html
    assert "leak.json" not in html and "TOP-SECRET-VALUE" not in html
    log = re.search(r'<ol class="log" id="log"( data-stream="[^"]*")?>(.*?)</ol>', html, re.S)
    assert log is not None and log.group(1) is None  # ended: no live stream
    assert log.group(2).count("<li>") == 3 and "&#34;n&#34;:2" in log.group(2)
    assert "Looks fine." in html  # its applied comment action, with the request it sent
    assert "POST /repos/acme/api/issues/7/labels" in html


def test_a_running_task_page_streams_from_where_it_rendered(
    world: World, client: TestClient
) -> None:
    task_id = world.seeded.tasks["running"]
    html = client.get(f"/ui/tasks/{task_id}").text
    log_path = world.seeded.logs["running"]
    complete = log_path.read_bytes().rsplit(b"\n", 1)[0] + b"\n"  # the unfinished line waits
    assert f'data-stream="/ui/tasks/{task_id}/log-stream?offset={len(complete)}"' in html


def test_a_paused_tasks_archived_workspace_is_shown(world: World, client: TestClient) -> None:
    task_id = world.seeded.tasks["succeeded"]
    workspace = Path(str(world.store.get_task(task_id).workspace))
    archive = workspace.parent / "archive"
    archive.mkdir()
    workspace.rename(archive / workspace.name)
    html = client.get(f"/ui/tasks/{task_id}").text
    assert "pr-review.md" in html and str(archive / workspace.name) in html
    assert html.count('<li><span class="kind">turn</span>') == 3


def test_the_note_of_a_task_is_shown(world: World, client: TestClient) -> None:
    task = world.store.get_task(world.seeded.tasks["succeeded"])
    notes = world.home / "tasks"
    notes.mkdir(parents=True)
    (notes / f"2024-05-01-github-acme-api-7-pr-review-{task.id[-6:]}.md").write_text(
        f"# pr-review: acme/api#7\n\n- task: `{task.id}`\n\n## Summary\nAll <good>.\n"
    )
    html = client.get(f"/ui/tasks/{task.id}").text
    assert "All &lt;good&gt;." in html


def test_unknown_records_and_bad_filters_are_errors(client: TestClient) -> None:
    for url, status, says in (
        ("/ui/events/nope", 404, "nope"),
        ("/ui/tasks/nope", 404, "nope"),
        ("/ui/tasks?status=bogus", 400, "status must be one of"),
        ("/ui/events?limit=0", 400, "limit must be"),
        ("/ui/dlq?status=closed", 400, "status must be one of open, replayed, all"),
        ("/ui/tasks/nope/log-stream", 404, "nope"),
    ):
        answer = client.get(url)
        assert answer.status_code == status, url
        assert says in answer.text, url


def test_static_files_are_served(client: TestClient) -> None:
    assert "EventSource" in client.get("/ui/static/ui.js").text
    assert client.get("/ui/static/ui.css").headers["content-type"].startswith("text/css")


# --- the log stream -----------------------------------------------------------------------------


def _events(text: str) -> list[tuple[str, str]]:
    found = []
    for block in text.strip().split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.splitlines() if not line.startswith(":")
        )
        found.append((fields.get("event", ""), fields.get("data", "")))
    return found


def test_the_log_stream_sends_the_lines_then_the_end(world: World, client: TestClient) -> None:
    task_id = world.seeded.tasks["succeeded"]
    answer = client.get(f"/ui/tasks/{task_id}/log-stream")
    assert answer.headers["content-type"].startswith("text/event-stream")
    events = _events(answer.text)
    assert [e for e, _ in events] == ["status", "log", "log", "log", "end"]
    assert orjson.loads(events[1][1]) == {"type": "turn", "n": 0}
    first = len(world.seeded.logs["succeeded"].read_text().splitlines()[0]) + 1
    later = _events(client.get(f"/ui/tasks/{task_id}/log-stream?offset={first}").text)
    assert [orjson.loads(d)["n"] for e, d in later if e == "log"] == [1, 2]
    resumed = client.get(
        f"/ui/tasks/{task_id}/log-stream?offset=0", headers={"last-event-id": str(first)}
    )
    assert len([e for e, _ in _events(resumed.text) if e == "log"]) == 2
    assert client.get(f"/ui/tasks/{task_id}/log-stream?offset=-1").status_code == 400


# --- signing in ---------------------------------------------------------------------------------


def test_with_a_token_every_page_asks_to_sign_in(world: World) -> None:
    with world.client(TOKEN, client=("203.0.113.9", 4000)) as c:
        for url in pages(world):
            answer = c.get(url)
            assert answer.status_code == 303, url
            assert answer.headers["location"] == f"/ui/login?next={quote(url)}", url
        stream = c.get(f"/ui/tasks/{world.seeded.tasks['succeeded']}/log-stream")
        assert stream.status_code == 401
        approval = world.seeded.approvals["pending"]
        refused = post(c, f"/ui/approvals/{approval}/decide", {"decision": "approve"})
        assert refused.status_code == 401
        assert world.store.get_approval(approval).status is ApprovalStatus.PENDING
        bearer = c.get("/ui/tasks", headers={"authorization": f"Bearer {TOKEN}"})
        assert bearer.status_code == 200
        wrong = c.get("/ui/tasks", headers={"authorization": "Bearer nope"})
        assert wrong.status_code == 303


def test_signing_in_sets_an_http_only_cookie(world: World) -> None:
    with world.client(TOKEN, client=("203.0.113.9", 4000)) as c:
        login = c.get("/ui/login?next=/ui/tasks")
        assert login.status_code == 200 and 'name="token"' in login.text
        wrong = post(c, "/ui/login", {"token": "guess", "next": "/ui/tasks"})
        assert wrong.status_code == 401 and "not the API token" in wrong.text
        assert SESSION_COOKIE not in c.cookies
        right = post(c, "/ui/login", {"token": TOKEN, "next": "/ui/tasks"})
        assert right.status_code == 303 and right.headers["location"] == "/ui/tasks"
        cookie = right.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
        assert TOKEN not in cookie  # the cookie holds a value derived from the token
        for url in pages(world):
            assert c.get(url).status_code == 200, url
        out = post(c, "/ui/logout", {})
        assert out.status_code == 303
        assert c.get("/ui/tasks").status_code == 303


def test_sign_in_goes_back_to_this_site_only(world: World) -> None:
    with world.client(TOKEN) as c:
        for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
            answer = post(c, "/ui/login", {"token": TOKEN, "next": target})
            assert answer.headers["location"] == "/", target


def test_without_a_token_only_loopback_is_answered(world: World) -> None:
    with world.client(None, client=("203.0.113.9", 4000)) as c:
        answer = c.get("/")
        assert answer.status_code == 403 and "loopback only" in answer.text
    with world.client(None) as c:
        assert c.get("/").status_code == 200
        assert c.get("/ui/login").headers["location"] == "/"


# --- CSRF -----------------------------------------------------------------------------------------


def test_a_form_without_the_csrf_token_or_from_elsewhere_is_refused(
    world: World, client: TestClient
) -> None:
    url = f"/ui/dlq/{world.seeded.letters['open']}/replay"
    csrf = csrf_of(client)
    cases: list[tuple[dict[str, str], dict[str, str], str]] = [
        ({}, ORIGIN, "CSRF"),
        ({"csrf": "0" * 32}, ORIGIN, "CSRF"),
        ({"csrf": csrf}, {"origin": "http://evil.example"}, "origin"),
        ({"csrf": csrf}, {"origin": "null"}, "origin"),
        ({"csrf": csrf}, {}, "origin"),
    ]
    for data, headers, says in cases:
        answer = client.post(url, data=data, headers=headers)
        assert answer.status_code == 403, (data, headers)
        assert says in answer.text
    letter = world.store.get_dead_letter(world.seeded.letters["open"])
    assert letter.status is DeadLetterStatus.OPEN
    referer = client.post(url, data={"csrf": csrf}, headers={"referer": "http://localhost/ui/dlq"})
    assert referer.status_code == 303


# --- buttons --------------------------------------------------------------------------------------


def test_approving_with_a_reason_decides_as_the_web_operator(
    world: World, client: TestClient
) -> None:
    approval = world.seeded.approvals["pending"]
    form = {"decision": "approve", "reason": "looks right", "as": "alice", "next": "/ui/approvals"}
    answer = post(client, f"/ui/approvals/{approval}/decide", form)
    assert answer.status_code == 303 and answer.headers["location"] == "/ui/approvals"
    decided = world.store.get_approval(approval)
    assert (decided.status, decided.decided_by, decided.decided_via, decided.reason) == (
        ApprovalStatus.APPROVED,
        "web:alice",
        "web",
        "looks right",
    )
    shown = client.get("/ui/approvals").text
    assert f"Approval {approval} approved by web:alice." in shown
    assert f'<tr data-approval="{approval}">' in shown
    assert f'article class="approval risk-high" id="approval-{approval}"' not in shown
    again = post(client, f"/ui/approvals/{approval}/decide", {"decision": "deny"})
    assert again.status_code == 409 and "already approved by web:alice" in again.text


def test_denying_and_refusals(world: World, client: TestClient) -> None:
    other = world.seeded.approvals["other"]
    assert post(client, f"/ui/approvals/{other}/decide", {"decision": "deny"}).status_code == 303
    assert world.store.get_approval(other).status is ApprovalStatus.DENIED
    critical = _critical_approval(world)
    refused = post(client, f"/ui/approvals/{critical}/decide", {"decision": "approve"})
    assert refused.status_code == 409
    assert "a justification is required to approve a critical risk action" in refused.text
    assert world.store.get_approval(critical).status is ApprovalStatus.PENDING
    bad = post(client, f"/ui/approvals/{critical}/decide", {"decision": "maybe"})
    assert bad.status_code == 400 and "approve or deny" in bad.text
    unknown = post(client, "/ui/approvals/nope/decide", {"decision": "approve"})
    assert unknown.status_code == 404
    long = post(
        client, f"/ui/approvals/{critical}/decide", {"decision": "deny", "reason": "x" * 5000}
    )
    assert long.status_code == 400 and "at most" in long.text
    nul = post(client, f"/ui/approvals/{critical}/decide", {"decision": "deny", "as": "a\x00b"})
    assert nul.status_code == 400


def _critical_approval(world: World) -> str:
    s = world.seeded
    approval = Approval(
        id="a-critical",
        task_id=s.tasks["awaiting"],
        action_key=f"{s.tasks['awaiting']}.9.k",
        route="merge",
        action_type="merge_pr",
        risk="critical",
        rule="merge-main",
        summary="merge acme/api#7 into main",
        details={"params": {"method": "squash"}, "justification_required": True},
        status=ApprovalStatus.PENDING,
        created_at=s.now - 10,
        expires_at=s.now + HOUR,
    )
    return world.store.create_approval(approval).id


def test_replaying_a_dead_letter_once(world: World, client: TestClient) -> None:
    letter = world.seeded.letters["open"]
    first = post(client, f"/ui/dlq/{letter}/replay", {"next": "/ui/dlq?status=all"})
    assert first.status_code == 303 and first.headers["location"] == "/ui/dlq?status=all"
    assert world.store.get_dead_letter(letter).status is DeadLetterStatus.REPLAYED
    assert f"Dead letter {letter} replayed" in client.get("/ui/dlq?status=all").text
    again = post(client, f"/ui/dlq/{letter}/replay", {})
    assert again.status_code == 409 and "already replayed" in again.text


def test_replaying_an_event(world: World, client: TestClient) -> None:
    event_id = world.seeded.events["dead"]
    answer = post(client, f"/ui/events/{event_id}/replay", {})
    assert answer.status_code == 303 and answer.headers["location"] == f"/ui/events/{event_id}"
    assert world.store.get_event(event_id).status is EventStatus.RECEIVED  # for the dispatcher
    assert post(client, "/ui/events/nope/replay", {}).status_code == 404


def test_cancelling_and_retrying_tasks(world: World, client: TestClient) -> None:
    s = world.seeded
    queued, awaiting, done = s.tasks["queued"], s.tasks["awaiting"], s.tasks["succeeded"]
    assert post(client, f"/ui/tasks/{queued}/cancel", {}).status_code == 303
    assert world.store.get_task(queued).cancel_requested
    assert post(client, f"/ui/tasks/{awaiting}/cancel", {}).status_code == 303
    assert world.store.get_task(awaiting).status is TaskStatus.CANCELLED
    ended = post(client, f"/ui/tasks/{done}/cancel", {})
    assert ended.status_code == 409 and "already ended" in ended.text
    again = post(client, f"/ui/tasks/{done}/retry", {"rerun": "1"})
    assert again.status_code == 303
    assert world.store.get_task(done).status is TaskStatus.QUEUED
    assert "queued: it runs again" in client.get(f"/ui/tasks/{done}").text
    running = post(client, f"/ui/tasks/{s.tasks['running']}/retry", {})
    assert running.status_code == 409 and "has not ended" in running.text
