"""The management API under /api, on MemoryStore, SQLite and PostgreSQL: every endpoint, its
errors, the bearer token, and that each answer is the one its OpenAPI document describes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from starlette.testclient import TestClient

from taskyard.models import TaskStatus
from taskyard.store import Store
from taskyard.web.api import api_app
from taskyard.web.logstream import LogFollower
from tests.integration.api_harness import (
    BEARER,
    DAY,
    DOC,
    HOUR,
    TOKEN,
    Seeded,
    app_for,
    conforms,
    doc_path,
    seed,
    serving,
)
from tests.lifecycle_paths import drive

LOOPBACK = ("127.0.0.1", 50000)


@pytest.fixture
def seeded(store: Store, tmp_path: Path) -> Seeded:
    return seed(store, tmp_path / "workspaces", time.time())


@pytest.fixture
def client(store: Store, seeded: Seeded, tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(app_for(store, tmp_path), client=LOOPBACK, headers=BEARER) as c:
        yield c


def get(client: TestClient, url: str, status: int) -> Any:
    """GET the URL, check the status and that the answer is the documented one."""
    answer = client.get(url)
    assert answer.status_code == status, answer.text
    conforms(doc_path(url), "GET", status, answer.json())
    return answer.json()


def post(client: TestClient, url: str, status: int, json: Any = None) -> Any:
    answer = client.post(url, json=json)
    assert answer.status_code == status, answer.text
    conforms(doc_path(url), "POST", status, answer.json())
    return answer.json()


# --- the token ----------------------------------------------------------------------------


def _concrete(path: str) -> str:
    return path.replace("{decision}", "approve").replace("{", "").replace("}", "")


def documented() -> list[tuple[str, str]]:
    return [(m.upper(), p) for p, ops in DOC["paths"].items() for m in ops]


@pytest.mark.parametrize(("method", "path"), documented())
def test_every_documented_endpoint_answers_401_without_the_token(
    method: str, path: str, tmp_path: Path
) -> None:
    from taskyard.store import MemoryStore

    with TestClient(app_for(MemoryStore(), tmp_path), client=LOOPBACK) as c:
        for headers in (
            {},
            {"authorization": "Bearer not-the-token"},
            {"authorization": TOKEN},  # no scheme
            {"authorization": f"Basic {TOKEN}"},
            {"authorization": "Bearer "},
        ):
            answer = c.request(method, _concrete(path), headers=headers)
            assert answer.status_code == 401, (method, path, headers)
            assert answer.json() == {"error": "a valid bearer token is required"}
            assert answer.headers["www-authenticate"].startswith("Bearer")
            conforms(path, method, 401, answer.json())


def test_unknown_api_paths_answer_401_without_the_token_and_404_with_it(tmp_path: Path) -> None:
    from taskyard.store import MemoryStore

    with TestClient(app_for(MemoryStore(), tmp_path), client=LOOPBACK) as c:
        assert c.get("/api/nothing-here").status_code == 401
        assert c.get("/api").status_code == 401
        found = c.get("/api/nothing-here", headers=BEARER)
        assert found.status_code == 404 and found.json() == {"error": "Not Found"}
        wrong = c.put("/api/tasks", headers=BEARER)
        assert wrong.status_code == 405 and "GET" in wrong.headers["allow"]
        assert c.get("/healthz").status_code == 200  # outside /api: no token needed


def test_without_a_token_the_api_is_open_on_loopback_only(tmp_path: Path) -> None:
    from taskyard.store import MemoryStore

    app = app_for(MemoryStore(), tmp_path, token=None)
    for local in (("127.0.0.1", 1), ("::1", 1), ("127.0.0.5", 1), ("::ffff:127.0.0.1", 1)):
        with TestClient(app, client=local, base_url="http://127.0.0.1:8080") as c:
            assert c.get("/api/tasks").status_code == 200, local
            # DNS rebinding: another site's name pointed at 127.0.0.1
            rebound = c.get("/api/tasks", headers={"host": "evil.example:8080"})
            assert rebound.status_code == 403, local
    for remote in (("10.1.2.3", 1), ("192.168.0.7", 1), ("testclient", 1)):
        with TestClient(app, client=remote) as c:
            refused = c.get("/api/tasks")
            assert refused.status_code == 403, remote
            assert "loopback only" in refused.json()["error"]
    empty = app_for(MemoryStore(), tmp_path, token="")  # an empty token is no token
    with TestClient(empty, client=("10.1.2.3", 1)) as c:
        assert c.get("/api/tasks", headers={"authorization": "Bearer "}).status_code == 403


def test_the_document_describes_exactly_the_routes_served(tmp_path: Path) -> None:
    from taskyard.store import MemoryStore

    app = api_app(MemoryStore(), None, TOKEN)
    with TestClient(app, client=LOOPBACK, headers=BEARER) as c:
        served_doc = c.get("/api/openapi.json").json()
    assert served_doc == orjson.loads(orjson.dumps(DOC))
    served = {
        (method, route.path)
        for route in app.routes
        for method in (route.methods or set()) - {"HEAD"}
    }
    assert served == set(documented())
    assert DOC["openapi"].startswith("3.1")
    assert DOC["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer"}
    for path, ops in DOC["paths"].items():
        for method, op in ops.items():
            assert "401" in op["responses"], (method, path)
            declared = {p["name"] for p in op["parameters"] if p["in"] == "path"}
            assert declared == {part[1:-1] for part in path.split("/") if part[:1] == "{"}


# --- events -------------------------------------------------------------------------------


def test_events_list_newest_first_and_filtered(client: TestClient, seeded: Seeded) -> None:
    e = seeded.events
    listed = get(client, "/api/events", 200)
    assert [x["id"] for x in listed["events"]] == [
        e["binary"],
        e["dead"],
        e["ignored"],
        e["processed"],
        e["old"],
    ]
    assert listed["events"][0]["size"] == len(b"\xff\xfe not utf-8")
    ids = [x["id"] for x in get(client, "/api/events?status=processed", 200)["events"]]
    assert ids == [e["processed"], e["old"]]
    only = get(client, "/api/events?source=github&type=github:issues.opened", 200)
    assert [x["id"] for x in only["events"]] == [e["binary"]]
    assert len(get(client, "/api/events?limit=2", 200)["events"]) == 2
    assert get(client, "/api/events?source=", 200)["events"]  # empty: no filter


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("status=nope", "status must be one of received, queued"),
        ("status=", "status must be one of"),
        ("limit=0", "limit must be a whole number from 1 to 1000"),
        ("limit=1001", "limit must be a whole number from 1 to 1000"),
        ("limit=ten", "limit must be a whole number"),
        ("limit=", "limit must be a whole number"),
        ("source=git%00hub", "source must not contain a NUL character"),
    ],
)
def test_bad_event_filters_are_400(client: TestClient, query: str, message: str) -> None:
    answer = client.get(f"/api/events?{query}")
    assert answer.status_code == 400
    assert message in answer.json()["error"]
    conforms("/api/events", "GET", 400, answer.json())


def test_event_show_has_headers_body_and_routing(client: TestClient, seeded: Seeded) -> None:
    e = seeded.events
    shown = get(client, f"/api/events/{e['processed']}", 200)
    assert shown["body"] == '{"n": 1}' and shown["headers"] == {"x-github-event": "pull_request"}
    assert shown["status"] == "processed"
    assert {r["route"] for r in shown["routing"]} == {
        "pr-review",
        "triage",
        "labels",
        "bugs",
        "slow",
        "merge",
        "apply",
    }
    assert {r["decision"] for r in shown["routing"]} == {"started"}
    binary = get(client, f"/api/events/{e['binary']}", 200)
    assert "body" not in binary and binary["body_base64"] == "//4gbm90IHV0Zi04"
    missing = client.get("/api/events/no-such-event")
    assert missing.status_code == 404 and missing.json() == {"error": "no event no-such-event"}
    assert client.get("/api/events/a%00b").status_code == 400


def test_event_replay_queues_it_again(client: TestClient, store: Store, seeded: Seeded) -> None:
    event_id = seeded.events["dead"]
    done = post(client, f"/api/events/{event_id}/replay", 202)
    assert done["event_id"] == event_id and done["queued"] is True
    assert done["status"] == "received" and done["workflow_id"].startswith(f"{event_id}:replay:")
    dispatched = {d.event_id: d.workflow_id for d in store.events_to_dispatch(10)}
    assert dispatched[event_id] == done["workflow_id"]
    missing = client.post("/api/events/nope/replay")
    assert missing.status_code == 404 and missing.json() == {"error": "no event nope"}


# --- dead letters -------------------------------------------------------------------------


def test_dead_letters_list_show_and_replay_once(client: TestClient, seeded: Seeded) -> None:
    assert [d["id"] for d in get(client, "/api/dlq", 200)["dead_letters"]] == ["l-open"]
    replayed = get(client, "/api/dlq?status=replayed", 200)["dead_letters"]
    assert [(d["id"], d["status"]) for d in replayed] == [("l-replayed", "replayed")]
    every = get(client, "/api/dlq?status=all&limit=5", 200)["dead_letters"]
    assert [d["id"] for d in every] == ["l-open", "l-replayed"]
    assert every[0]["event_id"] == seeded.events["dead"] and every[0]["error"] == "boom"
    bad = client.get("/api/dlq?status=closed")
    assert bad.status_code == 400
    assert bad.json() == {"error": "status must be one of open, replayed, all"}
    assert get(client, "/api/dlq/l-open", 200)["attempts"] == 3
    assert client.get("/api/dlq/nope").json() == {"error": "no dead letter nope"}
    done = post(client, "/api/dlq/l-open/replay", 202)
    assert (done["id"], done["queued"], done["status"]) == ("l-open", True, "replayed")
    again = post(client, "/api/dlq/l-open/replay", 409)
    assert again == {"error": "dead letter l-open was already replayed"}
    assert client.post("/api/dlq/nope/replay").status_code == 404


# --- tasks --------------------------------------------------------------------------------


def test_tasks_list_filtered(client: TestClient, seeded: Seeded) -> None:
    t = seeded.tasks
    listed = get(client, "/api/tasks", 200)["tasks"]
    assert [x["id"] for x in listed] == [
        t["old"],
        t["applying"],
        t["awaiting"],
        t["queued"],
        t["running"],
        t["actions_failed"],
        t["failed"],
        t["succeeded"],
    ]
    failed = get(client, "/api/tasks?status=failed", 200)["tasks"]
    assert {x["id"] for x in failed} == {t["failed"], t["actions_failed"]}
    endings = {x["id"]: x["ending"] for x in failed}  # how each ended, apart from its reason
    assert endings[t["actions_failed"]] == "actions_failed"
    by_route = get(client, "/api/tasks?route=pr-review&limit=1", 200)["tasks"]
    assert [x["id"] for x in by_route] == [t["old"]]
    of_event = get(client, "/api/tasks?event_id=" + seeded.events["old"], 200)["tasks"]
    assert [x["id"] for x in of_event] == [t["old"]]
    bad = client.get("/api/tasks?status=done")
    assert bad.status_code == 400 and "status must be one of queued" in bad.json()["error"]


def test_task_show_has_its_actions(client: TestClient, seeded: Seeded) -> None:
    tid = seeded.tasks["succeeded"]
    shown = get(client, f"/api/tasks/{tid}", 200)
    assert (shown["status"], shown["cost"], shown["duration_seconds"]) == ("succeeded", 0.5, 60.0)
    assert shown["workspace_exists"] is True
    assert [(a["index"], a["type"], a["status"]) for a in shown["actions"]] == [
        (0, "add_labels", "applied"),
        (1, "comment", "applied"),
    ]
    actions = get(client, f"/api/tasks/{tid}/actions", 200)["actions"]
    assert actions == shown["actions"]
    assert actions[0]["requests"] == [{"method": "POST", "path": "/repos/acme/api/issues/7/labels"}]
    assert get(client, f"/api/tasks/{seeded.tasks['queued']}/actions", 200) == {"actions": []}
    for path in ("/api/tasks/nope", "/api/tasks/nope/actions", "/api/tasks/nope/logs"):
        assert client.get(path).json() == {"error": "no task nope"}


def test_task_log_text(client: TestClient, seeded: Seeded) -> None:
    tid = seeded.tasks["succeeded"]
    answer = client.get(f"/api/tasks/{tid}/logs")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/x-ndjson")
    assert [orjson.loads(line)["n"] for line in answer.text.splitlines()] == [0, 1, 2]
    none = client.get(f"/api/tasks/{seeded.tasks['queued']}/logs")
    assert none.status_code == 404
    assert none.json() == {"error": f"task {seeded.tasks['queued']} has no log yet (status queued)"}


def _events(raw: str) -> list[dict[str, str]]:
    found = []
    for block in raw.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if line and line[0] != ":")
        if fields:
            found.append(fields)
    return found


def test_the_stream_of_an_ended_task_sends_its_log_and_ends(
    client: TestClient, seeded: Seeded
) -> None:
    tid = seeded.tasks["succeeded"]
    answer = client.get(f"/api/tasks/{tid}/logs/stream")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/event-stream")
    events = _events(answer.text)
    assert [e["event"] for e in events] == ["status", "log", "log", "log", "end"]
    assert events[0]["retry"] == "1000"
    assert [orjson.loads(e["data"])["n"] for e in events[1:4]] == [0, 1, 2]
    size = seeded.logs["succeeded"].stat().st_size
    assert events[3]["id"] == str(size)
    assert orjson.loads(events[-1]["data"]) == {"status": "succeeded", "reason": None}
    line = len(b'{"type":"turn","n":0}\n')
    resumed = _events(
        client.get(f"/api/tasks/{tid}/logs/stream", headers={"last-event-id": str(line)}).text
    )
    assert [orjson.loads(e["data"])["n"] for e in resumed if e["event"] == "log"] == [1, 2]
    bad = client.get(f"/api/tasks/{tid}/logs/stream", headers={"last-event-id": "soon"})
    assert bad.status_code == 400 and "Last-Event-ID" in bad.json()["error"]
    assert client.get("/api/tasks/nope/logs/stream").status_code == 404


def _blocks(lines: Iterator[str]) -> Iterator[dict[str, str]]:
    """SSE events as they arrive (comment lines skipped)."""
    block: dict[str, str] = {}
    for line in lines:
        if not line:
            if block:
                yield block
            block = {}
        elif not line.startswith(":"):
            key, _, value = line.partition(": ")
            block[key] = value


def test_the_stream_follows_a_running_task_until_it_ends(
    store: Store, seeded: Seeded, tmp_path: Path
) -> None:
    tid = seeded.tasks["running"]
    log = seeded.logs["running"]
    with (
        serving(app_for(store, tmp_path)) as url,
        httpx.Client(base_url=url, headers=BEARER) as c,
        c.stream("GET", f"/api/tasks/{tid}/logs/stream", timeout=20) as answer,
    ):
        assert answer.status_code == 200
        events = _blocks(answer.iter_lines())
        first = [next(events) for _ in range(4)]  # its status and its three complete lines
        assert [e["event"] for e in first] == ["status", "log", "log", "log"]
        assert orjson.loads(first[0]["data"])["status"] == "running"
        with log.open("a") as f:  # the agent finishes its line and writes another
            f.write('ished"}\n{"type": "done"}\n')
        drive(store, tid, TaskStatus.SUCCEEDED, finished_at=time.time())
        rest = list(events)
    assert [e["event"] for e in rest] == ["log", "log", "status", "end"]
    assert rest[0]["data"] == '{"type": "unfinished"}'
    assert rest[1]["data"] == '{"type": "done"}' and rest[1]["id"] == str(log.stat().st_size)
    assert orjson.loads(rest[-1]["data"])["status"] == "succeeded"


async def test_a_stream_stops_after_its_time_and_an_unfinished_line_waits(
    store: Store, seeded: Seeded
) -> None:
    follower = LogFollower(store, seeded.tasks["running"], poll=0.01, max_seconds=0.2)
    sent = [chunk async for chunk in follower.events()]
    events = _events(b"".join(sent).decode())
    assert [e["event"] for e in events] == ["status", "log", "log", "log"]  # no end: it runs on
    assert follower.offset == len(seeded.logs["running"].read_bytes()) - len(b'{"type": "unfin')


def test_cancel(client: TestClient, store: Store, seeded: Seeded) -> None:
    t = seeded.tasks
    asked = post(client, f"/api/tasks/{t['running']}/cancel", 202)
    assert asked == {
        "id": t["running"],
        "status": "running",
        "cancelled": False,
        "cancel_requested": True,
    }
    assert store.get_task(t["running"]).cancel_requested
    ended = post(client, f"/api/tasks/{t['awaiting']}/cancel", 200)
    assert (ended["status"], ended["cancelled"]) == ("cancelled", True)
    assert store.get_task(t["awaiting"]).reason == "cancelled while awaiting approval"
    busy = post(client, f"/api/tasks/{t['applying']}/cancel", 409)
    assert busy == {
        "error": f"task {t['applying']} is applying its actions and cannot be cancelled now",
        "status": "applying",
    }
    done = post(client, f"/api/tasks/{t['succeeded']}/cancel", 409)
    assert done["error"] == f"task {t['succeeded']} has already ended (succeeded)"
    assert client.post("/api/tasks/nope/cancel").json() == {"error": "no task nope"}


def test_retry(client: TestClient, store: Store, seeded: Seeded) -> None:
    t = seeded.tasks
    again = post(client, f"/api/tasks/{t['failed']}/retry", 202)
    assert (again["queued"], again["reapply"], again["status"]) == (True, False, "queued")
    assert store.get_task(t["failed"]).workflow_id == again["workflow_id"]
    reapply = post(client, f"/api/tasks/{t['actions_failed']}/retry", 202)
    assert (reapply["reapply"], reapply["status"]) == (True, "applying")
    running = post(client, f"/api/tasks/{t['running']}/retry", 409)
    assert running == {"error": f"task {t['running']} has not ended (running)", "status": "running"}
    rerun = post(client, f"/api/tasks/{t['actions_failed']}/retry", 409, json={"rerun": True})
    assert rerun["status"] == "applying"  # it was queued again above and has not ended
    for body, message in (
        (b"[1]", "the body must be a JSON object"),
        (b"{", "the body must be JSON"),
        (b'{"rerun": "yes"}', "rerun must be true or false"),
    ):
        bad = client.post(f"/api/tasks/{t['succeeded']}/retry", content=body)
        assert bad.status_code == 400 and bad.json() == {"error": message}
    assert client.post("/api/tasks/nope/retry").json() == {"error": "no task nope"}


def test_retry_with_rerun_runs_the_agent_again(client: TestClient, seeded: Seeded) -> None:
    tid = seeded.tasks["actions_failed"]
    rerun = post(client, f"/api/tasks/{tid}/retry", 202, json={"rerun": True})
    assert (rerun["reapply"], rerun["status"]) == (False, "queued")


# --- approvals ----------------------------------------------------------------------------


def test_approvals_list_show_and_decide(client: TestClient, seeded: Seeded) -> None:
    a = seeded.approvals
    listed = get(client, "/api/approvals?status=pending", 200)["approvals"]
    assert [x["id"] for x in listed] == [a["other"], a["pending"]]
    assert len(get(client, "/api/approvals?status=&limit=1", 200)["approvals"]) == 1
    of_task = get(client, "/api/approvals?task_id=" + seeded.tasks["awaiting"], 200)
    assert len(of_task["approvals"]) == 2
    bad = client.get("/api/approvals?status=maybe")
    assert bad.status_code == 400 and "status must be one of pending" in bad.json()["error"]
    body = {"reason": "Looked at the diff.", "as": "bob"}
    done = post(client, f"/api/approvals/{a['pending']}/approve", 200, json=body)
    assert done == {
        "id": a["pending"],
        "accepted": True,
        "status": "approved",
        "why": None,
        "task_resumed": False,  # the other request is still pending
    }
    again = post(client, f"/api/approvals/{a['pending']}/deny", 409, json={})
    assert again["why"] == "already approved by web:bob (web)"
    shown = get(client, f"/api/approvals/{a['pending']}", 200)
    assert [(x["actor"], x["accepted"]) for x in shown["attempts"]] == [
        ("web:bob", True),
        ("web:operator", False),
    ]
    assert client.post(f"/api/approvals/{a['other']}/maybe").status_code == 404
    assert client.get("/api/approvals/nope").json() == {"error": "no approval nope"}
    assert client.post("/api/approvals/nope/approve").status_code == 404
    for bad_body, message in (
        ({"reason": 5}, "reason must be a string"),
        ({"as": ["x"]}, "as must be a string"),
        ({"reason": "a\x00b"}, "reason must not contain a NUL character"),
        ({"as": "b\x00b"}, "as must not contain a NUL character"),
    ):
        refused = client.post(f"/api/approvals/{a['other']}/deny", json=bad_body)
        assert refused.status_code == 400 and refused.json() == {"error": message}


def test_decisions_are_refused_while_approvals_are_off(
    store: Store, seeded: Seeded, tmp_path: Path
) -> None:
    app = app_for(store, tmp_path, approvals_on=False)
    with TestClient(app, client=LOOPBACK, headers=BEARER) as c:
        off = c.post(f"/api/approvals/{seeded.approvals['pending']}/approve")
        assert off.status_code == 409
        assert off.json() == {"error": "approvals are turned off (approvals.enabled: false)"}
        conforms("/api/approvals/{approval_id}/{decision}", "POST", 409, off.json())


# --- stats --------------------------------------------------------------------------------


@pytest.fixture
def stats_client(store: Store, tmp_path: Path) -> Iterator[tuple[TestClient, Seeded]]:
    now = 1_700_000_000.0 - 1_700_000_000.0 % DAY + 12 * HOUR  # midday: "today" is known
    s = seed(store, tmp_path / "workspaces", now)
    app = api_app(store, None, TOKEN, clock=lambda: now)
    with TestClient(app, client=LOOPBACK, headers=BEARER) as c:
        yield c, s


def test_stats_of_the_last_day(stats_client: tuple[TestClient, Seeded]) -> None:
    client, _ = stats_client
    stats = get(client, "/api/stats", 200)
    assert stats["window"]["seconds"] == DAY
    assert stats["throughput"] == {
        "events_received": 4,
        "events_per_hour": round(4 / 24, 3),
        "tasks_finished": 3,
        "tasks_per_hour": 0.125,
    }
    assert stats["tasks"] == {
        "finished": 3,
        "succeeded": 1,
        "success_rate": 0.3333,
        "by_status": {"succeeded": 1, "failed": 2, "timed_out": 0, "cancelled": 0, "expired": 0},
        "duration_seconds": {"count": 3, "p50": 60.0, "p95": 200.0},  # of 20, 60 and 200
    }
    assert stats["cost"] == {
        "total_usd": 0.75,
        "tasks_with_cost": 2,
        "per_task_usd": 0.375,
        "today_usd": 0.75,
        "by_route": [
            {
                "route": "labels",
                "finished": 1,
                "succeeded": 0,
                "success_rate": 0.0,
                "cost_usd": 0.0,
                "cost_per_task_usd": None,
            },
            {
                "route": "pr-review",
                "finished": 1,
                "succeeded": 1,
                "success_rate": 1.0,
                "cost_usd": 0.5,
                "cost_per_task_usd": 0.5,
            },
            {
                "route": "triage",
                "finished": 1,
                "succeeded": 0,
                "success_rate": 0.0,
                "cost_usd": 0.25,
                "cost_per_task_usd": 0.25,
            },
        ],
    }
    queue = stats["queue"]
    assert queue["events"] == {
        "received": 1,
        "queued": 0,
        "processing": 0,
        "processed": 2,
        "ignored": 1,
        "dead": 1,
    }
    assert queue["tasks"]["succeeded"] == 2 and queue["tasks"]["running"] == 1
    assert (queue["events_pending"], queue["tasks_queued"], queue["tasks_active"]) == (1, 1, 2)
    assert (queue["tasks_awaiting_approval"], queue["dead_letters_open"]) == (1, 1)


def test_stats_of_other_windows(stats_client: tuple[TestClient, Seeded]) -> None:
    client, seeded = stats_client
    week = get(client, "/api/stats?window=7d", 200)
    assert (week["throughput"]["events_received"], week["tasks"]["finished"]) == (5, 4)
    assert week["tasks"]["duration_seconds"] == {"count": 4, "p50": 60.0, "p95": 200.0}
    assert week["cost"]["total_usd"] == 1.75 and week["cost"]["today_usd"] == 0.75
    review = next(r for r in week["cost"]["by_route"] if r["route"] == "pr-review")
    assert (review["finished"], review["cost_usd"], review["cost_per_task_usd"]) == (2, 1.5, 0.75)
    recent = get(client, f"/api/stats?since={seeded.now - 1000:.0f}", 200)
    assert (recent["throughput"]["events_received"], recent["tasks"]["finished"]) == (1, 3)
    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seeded.now - 1.5 * HOUR))
    assert get(client, f"/api/stats?since={iso}", 200)["throughput"]["events_received"] == 3
    quiet = get(client, "/api/stats?window=1s", 200)
    assert quiet["tasks"]["success_rate"] is None
    assert quiet["tasks"]["duration_seconds"] == {"count": 0, "p50": None, "p95": None}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("window=0h", "window must be a whole number above 0 and a unit"),
        ("window=3w", "window must be a whole number above 0 and a unit"),
        ("window=", "window must be"),
        ("window=1d&since=0", "give window or since, not both"),
        ("since=yesterday", "since must be an RFC 3339 time or seconds since the epoch"),
        ("since=2999-01-01T00:00:00Z", "since must be in the past"),
    ],
)
def test_bad_stats_windows_are_400(
    stats_client: tuple[TestClient, Seeded], query: str, message: str
) -> None:
    client, _ = stats_client
    answer = client.get(f"/api/stats?{query}")
    assert answer.status_code == 400 and message in answer.json()["error"]
