"""How a task's actions and cost are shown to people, in `taskyard tasks show` and the UI's
task page: taskyard's own reports by their kind (not as "#-1", "#-2"), and the cost as money
(not `0.0012000000000000001`); the JSON keeps the index and the raw number."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from taskyard.cli.main import app
from taskyard.models import Decision, Priority, RouteDecision, Task, TaskStatus
from taskyard.records import ActionRecord, ActionStatus
from taskyard.store import SQLStore
from tests.integration.api_harness import BEARER, app_for
from tests.lifecycle_paths import drive

COST = 0.0012000000000000001
SHOWN = [  # index → what people see
    (-1, "report: started"),
    (0, "#0"),
    (1000, "tool call"),
    (-2, "report: outcome"),
]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'display.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def task_id(db_url: str) -> Iterator[str]:
    store = SQLStore.open(db_url)
    store.migrate()
    now = time.time()
    task = Task("t-display", "e-1", "triage", "claude", TaskStatus.QUEUED, Priority.P2, now,
                now, "task-t-display")  # fmt: skip
    store.record_routing([RouteDecision("e-1", "triage", Decision.STARTED, None, task.id, now)],
                         [task])  # fmt: skip
    usage = {"input_tokens": 200, "output_tokens": 40, "cost_usd": COST}
    drive(store, task.id, TaskStatus.SUCCEEDED, cost_usd=COST, usage=usage)
    for index, _ in SHOWN:
        store.record_action(
            ActionRecord(
                key=f"k{index}",
                task_id=task.id,
                index=index,
                route="triage",
                type="comment",
                params={"body": "hi"},
                status=ActionStatus.DRY_RUN,
                created_at=now,
                updated_at=now,
            )
        )
    store.close()
    yield task.id


def test_tasks_show_names_reports_by_kind_and_cost_as_money(
    db_url: str, task_id: str, tmp_path: Path
) -> None:
    runner = CliRunner()
    args = ["tasks", "show", task_id, "--database-url", db_url]
    done = runner.invoke(app, args, env={"TASKYARD_HOME": str(tmp_path)})
    assert done.exit_code == 0, done.output
    lines = done.output.splitlines()
    assert "cost: $0.0012" in lines and "0.0012000000000000001" not in done.output
    assert "'cost_usd': '$0.0012'" in done.output  # in the usage line too
    shown = [line.strip().split(" comment:")[0] for line in lines if " comment: " in line]
    assert sorted(shown) == sorted(kind for _, kind in SHOWN)
    assert "#-1" not in done.output and "#-2" not in done.output
    as_json = runner.invoke(app, [*args, "--json"], env={"TASKYARD_HOME": str(tmp_path)})
    data = orjson.loads(as_json.output)
    assert data["cost"] == COST
    assert {(a["index"], a["kind"]) for a in data["actions"]} == set(SHOWN)


def test_the_task_page_names_reports_by_kind(db_url: str, task_id: str, tmp_path: Path) -> None:
    store = SQLStore.open(db_url)
    try:
        with TestClient(app_for(store, tmp_path)) as client:
            page = client.get(f"/ui/tasks/{task_id}", headers=BEARER)
    finally:
        store.close()
    assert page.status_code == 200
    for _, kind in SHOWN:
        assert f"<td>{kind}</td>" in page.text
    assert "<td>-1</td>" not in page.text and "$0.0012" in page.text


def test_a_change_task_shows_its_gates_and_subtasks(db_url: str, tmp_path: Path) -> None:
    """`tasks show` and the task page say which gates ran and how; a subtask links back."""
    from taskyard.run.subtasks import SubtaskLimits, create_subtask

    store = SQLStore.open(db_url)
    try:
        store.migrate()
        now = time.time()
        task = Task("t-change", "e-2", "pr-fix", "codex", TaskStatus.QUEUED, Priority.P2, now,
                    now, "task-t-change")  # fmt: skip
        store.record_routing([], [task])
        drive(store, task.id, TaskStatus.RUNNING)
        gates = []
        for gate, outcome in (
            ("plan", "skipped"),
            ("implement", "entered"),
            ("implement", "passed"),
        ):
            gates.append({"gate": gate, "round": 1, "outcome": outcome, "at": now})
            assert store.enter_gate(task.id, list(gates), "taskyard", {}, now) is not None
        child = create_subtask(store, task, "docs", "write docs", "codex", SubtaskLimits(), now)
        with TestClient(app_for(store, tmp_path)) as client:
            page = client.get(f"/ui/tasks/{task.id}", headers=BEARER).text
            child_page = client.get(f"/ui/tasks/{child.id}", headers=BEARER).text
    finally:
        store.close()
    assert 'data-gate="plan" data-gate-outcome="skipped"' in page
    assert 'data-gate="implement" data-gate-outcome="passed"' in page
    assert 'data-gate-outcome="entered"' not in page
    assert f'data-subtask="{child.id}"' in page
    assert f'href="/ui/tasks/{task.id}" data-task-parent' in child_page
    done = CliRunner().invoke(
        app, ["tasks", "show", task.id, "--database-url", db_url],
        env={"TASKYARD_HOME": str(tmp_path)},
    )  # fmt: skip
    assert "gates: plan #1 skipped → implement #1 passed" in done.output
