"""Cancel, retry and the log file of a task (`taskyard.run.taskops`), which the CLI and the API
share, on each store; and the CLI still printing the JSON it printed before they moved."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from taskyard.cli.main import app
from taskyard.exceptions import NotFound
from taskyard.models import TaskStatus
from taskyard.run.taskops import cancel_task, log_file, retry_task
from taskyard.store import SQLStore, Store
from taskyard.web.views import task_json
from tests.integration.api_harness import Seeded, seed


@pytest.fixture
def seeded(store: Store, tmp_path: Path) -> Seeded:
    return seed(store, tmp_path / "workspaces", time.time())


def test_cancel_by_state(store: Store, seeded: Seeded) -> None:
    t, now = seeded.tasks, time.time()
    queued = cancel_task(store, t["queued"], now)
    assert (queued.done, queued.ended_now, queued.status) == (True, False, TaskStatus.QUEUED)
    assert store.get_task(t["queued"]).cancel_requested
    waiting = cancel_task(store, t["awaiting"], now)
    assert (waiting.done, waiting.ended_now, waiting.status) == (True, True, TaskStatus.CANCELLED)
    assert store.get_task(t["awaiting"]).finished_at == now
    applying = cancel_task(store, t["applying"], now)
    assert not applying.done and "is applying its actions" in str(applying.why)
    ended = cancel_task(store, t["failed"], now)
    assert not ended.done and ended.why == f"task {t['failed']} has already ended (failed)"
    with pytest.raises(NotFound):
        cancel_task(store, "nope", now)


def test_retry_reapplies_failed_actions_unless_rerun(store: Store, seeded: Seeded) -> None:
    t, now = seeded.tasks, time.time()
    reapply = retry_task(store, t["actions_failed"], now)
    assert (reapply.done, reapply.reapply, reapply.status) == (True, True, TaskStatus.APPLYING)
    assert store.get_task(t["actions_failed"]).workflow_id == reapply.workflow_id
    rerun = retry_task(store, t["failed"], now, rerun=True)
    assert (rerun.done, rerun.reapply, rerun.status) == (True, False, TaskStatus.QUEUED)
    busy = retry_task(store, t["running"], now)
    assert not busy.done and busy.why == f"task {t['running']} has not ended (running)"
    with pytest.raises(NotFound):
        retry_task(store, "nope", now)


def test_log_file(store: Store, seeded: Seeded) -> None:
    assert log_file(store.get_task(seeded.tasks["succeeded"])) == seeded.logs["succeeded"]
    assert log_file(store.get_task(seeded.tasks["queued"])) is None


def test_the_cli_prints_the_shared_shapes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    store = SQLStore.open(url)
    store.migrate()
    s = seed(store, tmp_path / "workspaces", time.time())
    runner = CliRunner()

    def cli(*args: str) -> tuple[int, str]:
        done = runner.invoke(
            app, [*args, "--database-url", url], env={"TASKYARD_HOME": str(tmp_path)}
        )
        return done.exit_code, done.output

    code, shown = cli("tasks", "show", s.tasks["succeeded"], "--json")
    assert code == 0
    data = orjson.loads(shown)
    expected = task_json(store.get_task(s.tasks["succeeded"]))
    assert {key: data[key] for key in expected} == expected
    assert [a["type"] for a in data["actions"]] == ["add_labels", "comment"]
    code, out = cli("tasks", "cancel", s.tasks["awaiting"], "--json")
    assert (code, orjson.loads(out)) == (0, {"id": s.tasks["awaiting"], "cancelled": True})
    code, out = cli("tasks", "cancel", s.tasks["applying"])
    assert code == 1 and "see `taskyard tasks show`" in " ".join(out.split())
    code, out = cli("tasks", "retry", s.tasks["actions_failed"], "--json")
    retried = orjson.loads(out)
    assert code == 0 and (retried["queued"], retried["reapply"]) == (True, True)
    code, out = cli("tasks", "retry", s.tasks["running"])
    assert code == 1 and "has not ended (running)" in out
    code, out = cli("events", "show", s.events["processed"], "--json")
    assert code == 0 and len(orjson.loads(out)["routing"]) == 7
    store.close()
