"""The auto-push graduation numbers of each repository, in each store, through `fix_stats`,
`taskyard fixes stats` (a subprocess, SQLite and PostgreSQL) and `GET /api/fixes/stats` (as
the OpenAPI document describes it): the success rate of the fixes that ran, incidents (a
safety refusal, a bug of taskyard's), the mean cost, reverted unknown (null), refusals and
failing checks counted apart."""

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

from taskyard.lifecycle import EndingKind
from taskyard.models import Decision, RouteDecision, TaskStatus
from taskyard.records import FixLimits, FixStatus
from taskyard.routing import fixstats
from taskyard.routing.fixstats import fix_stats, fixed_repos
from taskyard.store import SQLStore, Store
from taskyard.store.base import FOREVER, NewEvent
from tests.integration.api_harness import BEARER, _event, _task, app_for, conforms, doc_path
from tests.lifecycle_paths import drive

NOW = 1_700_000_000.0
API = "github:acme/api"
LOOSE = FixLimits(attempts_per_comment=100, fixes_per_pr_per_hour=100, cost_ceiling_per_pr_usd=99)
SHUT = FixLimits(attempts_per_comment=0, fixes_per_pr_per_hour=100, cost_ceiling_per_pr_usd=99)
HEAD = "c" * 40
API_STATS = {
    "repo": "acme/api",
    "window": 50,
    "fixes": 3,
    "succeeded": 1,
    "success_rate": 0.3333,
    "reverted": None,
    "incidents": 2,
    "cost_per_fix_usd": 1.0,
    "refused": 1,
    "waiting": 1,
    "ci": {"fix": 1, "rerun": 1, "refused": 0},
}


def _ran(store: Store, event_id: str, n: int, status: TaskStatus, **fields: Any) -> str:
    """A task that ended as `status` (with `fields`, like its ending)."""
    tid = f"{int(NOW * 1000):012x}{n:020x}"
    task = _task(tid, event_id, f"route-{n}", NOW + n)
    store.record_routing(
        [RouteDecision(event_id, task.route, Decision.STARTED, None, tid, NOW)], [task]
    )
    assert drive(store, tid, status, attempts=1, **fields)
    return tid


def fill(store: Store) -> None:
    """acme/api: a success, a safety refusal (a CI fix), a bug of taskyard's, a refused
    request, a waiting one, a flaky rerun; acme/web: one success."""
    eid = f"{int(NOW * 1000):012x}{0:020x}"
    event = _event(eid, "github", "github:issue_comment.created", NOW, b"{}")
    store.insert_events([NewEvent(event, eid, FOREVER)], NOW)
    ok = _ran(store, eid, 1, TaskStatus.SUCCEEDED)
    refused = _ran(store, eid, 2, TaskStatus.FAILED, ending=EndingKind.CHANGE_REFUSED)
    bug = _ran(store, eid, 3, TaskStatus.FAILED, ending=EndingKind.INTERNAL_ERROR)
    web = _ran(store, eid, 4, TaskStatus.SUCCEEDED)
    store.record_push(f"{API}#2", HEAD, "earlier", NOW)
    ci = store.request_ci_fix(f"{API}#2", HEAD, "lint", refused, NOW + 2, LOOSE)
    assert store.request_ci_fix(f"{API}#2", HEAD, "lint", "t-rerun", NOW + 3, LOOSE).fix_id is None
    fixes = {
        ok: store.request_fix(f"{API}#1", "c1", ok, NOW + 1, LOOSE).fix.id,
        refused: ci.fix_id,
        bug: store.request_fix(f"{API}#3", "c3", bug, NOW + 4, LOOSE).fix.id,
        web: store.request_fix("github:acme/web#1", "c4", web, NOW + 5, LOOSE).fix.id,
    }
    for cost, (_task_id, fix_id) in zip((1.0, 0.5, 1.5, 2.0), fixes.items(), strict=True):
        assert fix_id is not None
        assert store.finish_fix(fix_id, FixStatus.DONE, cost, NOW + 10) is not None
    assert not store.request_fix(f"{API}#1", "c5", "t-refused", NOW + 6, SHUT).admitted
    assert store.request_fix(f"{API}#1", "c6", "t-waiting", NOW + 7, LOOSE).admitted


def test_a_repositorys_numbers(store: Store) -> None:
    fill(store)
    assert fix_stats(store, "acme/api").to_json() == API_STATS
    web = fix_stats(store, "acme/web")
    assert (web.fixes, web.success_rate, web.incidents, web.cost_per_fix_usd) == (1, 1.0, 0, 2.0)
    assert fixed_repos(store) == ["acme/api", "acme/web"]
    nothing = fix_stats(store, "acme/none")
    assert (nothing.fixes, nothing.success_rate, nothing.cost_per_fix_usd) == (0, None, None)


def test_the_rates_are_over_the_newest_fixes_that_ran(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill(store)
    monkeypatch.setattr(fixstats, "WINDOW", 1)
    newest = fix_stats(store, "acme/api")  # the internal error, created last of the three
    assert (newest.fixes, newest.succeeded, newest.incidents, newest.cost_per_fix_usd) == (
        1,
        0,
        1,
        1.5,
    )


@pytest.fixture
def filled(store_url: str) -> Iterator[SQLStore]:
    store = SQLStore.open(store_url)
    store.migrate()
    fill(store)
    yield store
    store.close()


def cli(tmp_path: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "taskyard", "fixes", "stats", *args, "--database-url", url],
        cwd=tmp_path,
        env={**os.environ, "TASKYARD_HOME": str(tmp_path / "home")},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_cli_prints_each_repository(filled: SQLStore, store_url: str, tmp_path: Path) -> None:
    one = cli(tmp_path, store_url, "--repo", "acme/api", "--json")
    assert one.returncode == 0, one.stderr
    assert json.loads(one.stdout) == {"repos": [API_STATS]}
    every = cli(tmp_path, store_url, "--json")
    assert [r["repo"] for r in json.loads(every.stdout)["repos"]] == ["acme/api", "acme/web"]
    table = cli(tmp_path, store_url)
    assert table.returncode == 0, table.stderr
    assert "acme/api" in table.stdout and "33%" in table.stdout and "$1.00" in table.stdout


@pytest.fixture
def client(store: Store, tmp_path: Path) -> Iterator[TestClient]:
    fill(store)
    with TestClient(app_for(store, tmp_path), client=("127.0.0.1", 50000), headers=BEARER) as c:
        yield c


def stats_of(client: TestClient, url: str, status: int = 200) -> Any:
    answer = client.get(url)
    assert answer.status_code == status, answer.text
    conforms(doc_path(url), "GET", status, answer.json())
    return answer.json()


def test_the_api_answers_as_documented(client: TestClient) -> None:
    assert stats_of(client, "/api/fixes/stats?repo=acme/api") == {"repos": [API_STATS]}
    every = stats_of(client, "/api/fixes/stats")
    assert [r["repo"] for r in every["repos"]] == ["acme/api", "acme/web"]
    assert stats_of(client, "/api/fixes/stats?repo=acme", 400) == {
        "error": "repo must be owner/name"
    }
    assert (
        client.get("/api/fixes/stats", headers={"authorization": "Bearer wrong"}).status_code == 401
    )
