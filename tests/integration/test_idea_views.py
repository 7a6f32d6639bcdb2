"""Reading and steering ideas from the management API and the CLI, on SQLite and PostgreSQL:
`/api/ideas` (list, overview, pause/resume/cancel; answers as the OpenAPI document says) and
`taskyard ideas list|show|pause|resume|cancel` as a subprocess, over a diamond idea
(A → B, A → C, B + C → D) built through the store's API with real tasks behind it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from taskyard.idea import IdeaStatus, IdeaTask
from taskyard.models import TaskStatus
from taskyard.store import SQLStore
from tests.integration.api_harness import BEARER, app_for, conforms, doc_path
from tests.integration.idea_harness import mixed_diamond, running_idea, schedule
from tests.unit.test_cli_imports import HEAVY, PROBE

LOOPBACK = ("127.0.0.1", 50000)
IDEA = "idea-diamond"


@pytest.fixture
def store(store_url: str) -> Iterator[SQLStore]:
    sql = SQLStore.open(store_url)
    sql.migrate()
    mixed_diamond(sql, IDEA)
    yield sql
    sql.close()


@pytest.fixture
def client(store: SQLStore, tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(app_for(store, tmp_path), client=LOOPBACK, headers=BEARER) as c:
        yield c


def call(client: TestClient, method: str, url: str, status: int, body: Any = None) -> Any:
    answer = client.request(method, url, json=body)
    assert answer.status_code == status, answer.text
    conforms(doc_path(url), method, status, answer.json())
    return answer.json()


# --- the API ----------------------------------------------------------------------------------


def test_the_overview_shows_each_task_s_state_and_what_it_waits_on(client: TestClient) -> None:
    seen = call(client, "GET", f"/api/ideas/{IDEA}", 200)
    assert seen["idea"]["id"] == IDEA and seen["idea"]["status"] == "running"
    tasks = {t["key"]: t for t in seen["tasks"]}
    assert {k: t["status"] for k, t in tasks.items()} == {
        "A": "succeeded", "B": "running", "C": "failed", "D": "blocked"
    }  # fmt: skip
    assert tasks["D"]["waits_on"] == ["B", "C"] and tasks["D"]["task_id"] is None
    assert tasks["B"]["waits_on"] == [] and tasks["B"]["depends_on"] == ["A"]
    assert tasks["A"]["branch"] == f"taskyard/idea-{IDEA}/A" and tasks["A"]["cost_usd"] == 0.5
    assert seen["cost_usd"] == 0.75
    assert [(p["version"], p["accepted"], p["tasks"]) for p in seen["plans"]] == [
        (0, False, 0),
        (1, True, 4),
    ]
    assert seen["plans"][0]["errors"] == ["task D depends on missing E"]
    kinds = [e["kind"] for e in seen["events"]]
    assert kinds == ["registered", "planning", "plan_rejected", "plan_ready", "running"]
    assert [e["seq"] for e in seen["events"]] == [1, 2, 3, 4, 5]


def test_a_task_waits_until_its_dependencies_succeed(store: SQLStore, client: TestClient) -> None:
    idea = running_idea(store, "idea-two")
    schedule(store, idea, "A", TaskStatus.RUNNING)
    tasks = {t["key"]: t for t in call(client, "GET", "/api/ideas/idea-two", 200)["tasks"]}
    assert tasks["B"]["status"] == "pending" and tasks["B"]["waits_on"] == ["A"]
    assert tasks["D"]["status"] == "pending" and tasks["D"]["waits_on"] == ["B", "C"]


def test_the_event_log_tail_is_the_last_fifty(store: SQLStore, client: TestClient) -> None:
    for n in range(60):
        store.note_idea(IDEA, "taskyard.execution", "tick", {"n": n}, 1_700_000_100.0 + n)
    events = call(client, "GET", f"/api/ideas/{IDEA}", 200)["events"]
    assert [e["seq"] for e in events] == list(range(16, 66))
    assert events[-1]["data"] == {"n": 59}


def test_the_list_is_newest_first_and_filtered(store: SQLStore, client: TestClient) -> None:
    running_idea(store, "idea-later", at=1_800_000_000.0)
    ids = [i["id"] for i in call(client, "GET", "/api/ideas", 200)["ideas"]]
    assert ids == ["idea-later", IDEA]
    assert call(client, "GET", "/api/ideas?status=completed", 200) == {"ideas": []}
    assert len(call(client, "GET", "/api/ideas?limit=1", 200)["ideas"]) == 1
    call(client, "GET", "/api/ideas?status=asleep", 400)


def test_pause_resume_and_cancel_answer_409_when_the_idea_cannot(
    store: SQLStore, client: TestClient
) -> None:
    refused = call(client, "POST", f"/api/ideas/{IDEA}/resume", 409)
    assert refused["error"] == f"idea {IDEA} is running: it cannot be resumed"
    paused = call(client, "POST", f"/api/ideas/{IDEA}/pause", 200, {"reason": "budget"})
    assert (paused["status"], paused["reason"]) == ("paused", "budget")
    call(client, "POST", f"/api/ideas/{IDEA}/pause", 409)
    assert call(client, "POST", f"/api/ideas/{IDEA}/resume", 200)["status"] == "running"
    done = call(client, "POST", f"/api/ideas/{IDEA}/cancel", 200)
    assert done["status"] == "cancelled" and done["reason"] == "cancelled by web:operator"
    call(client, "POST", f"/api/ideas/{IDEA}/pause", 409)
    events = store.idea_events(IDEA)
    assert [e.kind for e in events][-3:] == ["paused", "resumed", "cancelled"]
    assert events[-3].data == {"by": "web:operator", "why": "budget"}


def test_unknown_ideas_and_bad_bodies(client: TestClient) -> None:
    assert call(client, "GET", "/api/ideas/nope", 404)["error"] == "no idea nope"
    call(client, "POST", "/api/ideas/nope/pause", 404)
    call(client, "POST", f"/api/ideas/{IDEA}/pause", 400, {"reason": 7})
    call(client, "POST", f"/api/ideas/{IDEA}/cancel", 400, ["not", "an", "object"])


# --- the CLI ----------------------------------------------------------------------------------


def ideas(tmp_path: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "taskyard", "ideas", *args, "--database-url", url],
        cwd=tmp_path,
        env={**os.environ, "TASKYARD_HOME": str(tmp_path / "home"), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_list_and_show(store: SQLStore, store_url: str, tmp_path: Path) -> None:
    listed = ideas(tmp_path, store_url, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [i["id"] for i in json.loads(listed.stdout)] == [IDEA]
    table = ideas(tmp_path, store_url, "list", "--status", "running")
    assert table.returncode == 0 and IDEA in table.stdout and "saved searches" in table.stdout
    shown = ideas(tmp_path, store_url, "show", IDEA, "--json")
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert [t["status"] for t in data["tasks"]] == ["succeeded", "running", "failed", "blocked"]
    text = ideas(tmp_path, store_url, "show", IDEA)
    assert text.returncode == 0, text.stderr
    d_line = next(line for line in text.stdout.splitlines() if line.strip().startswith("D "))
    assert "blocked" in d_line and "B, C" in d_line
    assert "cost: $0.75" in text.stdout and "task D depends on missing E" in text.stdout
    missing = ideas(tmp_path, store_url, "show", "nope")
    assert missing.returncode == 1 and "no idea nope" in missing.stderr


def test_cli_shows_a_plan_s_text_as_it_is(store: SQLStore, store_url: str, tmp_path: Path) -> None:
    title = "[/bold] [red]not markup[/red]"
    store.set_idea_tasks(IDEA, [IdeaTask(IDEA, "E", title, (), 1, {})])
    text = ideas(tmp_path, store_url, "show", IDEA)
    assert text.returncode == 0, text.stderr
    assert title in text.stdout


def test_cli_pause_resume_cancel(store: SQLStore, store_url: str, tmp_path: Path) -> None:
    refused = ideas(tmp_path, store_url, "resume", IDEA)
    assert refused.returncode == 1 and "it cannot be resumed" in refused.stderr
    paused = ideas(tmp_path, store_url, "pause", IDEA, "--reason", "waiting for review")
    assert paused.returncode == 0, paused.stderr
    idea = store.get_idea(IDEA)
    assert idea.status is IdeaStatus.PAUSED and idea.reason == "waiting for review"
    assert ideas(tmp_path, store_url, "resume", IDEA).returncode == 0
    assert ideas(tmp_path, store_url, "cancel", IDEA).returncode == 0
    assert store.get_idea(IDEA).status is IdeaStatus.CANCELLED
    assert store.idea_events(IDEA)[-1].data == {"by": "cli"}
    again = ideas(tmp_path, store_url, "cancel", IDEA)
    assert again.returncode == 1 and "is cancelled: it cannot be cancelled" in again.stderr


@pytest.mark.parametrize("argv", [["ideas", "list"], ["ideas", "show", "nope"]], ids=" ".join)
def test_reading_ideas_imports_no_server_parts(tmp_path: Path, argv: list[str]) -> None:
    code = f"HEAVY = {HEAVY!r}\n{PROBE}"
    env = {"TASKYARD_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", code, *argv],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["heavy"] == [] and seen["exit"] in (0, 1), seen
