"""TaskExecutor on a MemoryStore with real (tiny) command agents: the lifecycle, recovery of
an interrupted attempt, cancellation, results, notes and the route warm-up."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from taskyard.agents.process import ProcessRecord, read_stat
from taskyard.config import Settings
from taskyard.exceptions import ConfigError
from taskyard.lifecycle import Kind
from taskyard.models import Event, Priority, Task, TaskStatus, new_id
from taskyard.run.executor import TaskExecutor
from taskyard.run.taskspec import TaskSpec
from taskyard.store import MemoryStore
from taskyard.store.base import NewEvent
from tests.executor_harness import build_executor
from tests.lifecycle_paths import drive

SHARED = Path(__file__).resolve().parents[3] / "shared" / "webhooks"
GOOD = {"success": True, "actions": [], "analysis": "fine", "summary": "ok"}


def agent(script: str) -> dict[str, Any]:
    return {"kind": "command", "argv": [sys.executable, "-c", script]}


def writes(result: Any) -> str:
    return (
        "import json, os, pathlib; pathlib.Path(os.environ['OUTPUT_DIR'], 'result.json')"
        f".write_text(json.dumps({result!r}))"
    )


def make(tmp_path: Path, script: str, **runs: Any) -> tuple[TaskExecutor, MemoryStore, Settings]:
    ex, store, settings = build_executor(tmp_path, agent(script), runs=runs)
    assert isinstance(store, MemoryStore)
    return ex, store, settings


def queue_task(store: MemoryStore, spec: TaskSpec | None = None, **changes: Any) -> Task:
    body = (SHARED / "github" / "issues.opened.json").read_bytes()
    now = time.time()
    eid = new_id()
    event = Event(eid, "github", "github:issues.opened", eid, "acme/api#1", "octocat",
                  now, Priority.P2, {}, body, eid)  # fmt: skip
    store.insert_events([NewEvent(event, eid, now + 60)], now)
    task = Task(new_id(), event.id, "r", "a", TaskStatus.QUEUED, Priority.P2, now, now,
                "wf", (spec or TaskSpec("r", "a", "default")).to_json())  # fmt: skip
    store.record_routing([], [task])
    if changes:
        assert drive(store, task.id, **changes)
    return store.get_task(task.id)


async def test_a_task_runs_to_success_and_leaves_a_note(tmp_path: Path) -> None:
    ex, store, settings = make(tmp_path, writes(GOOD))
    finished: list[Task] = []
    ex.on_finished.append(finished.append)
    task = queue_task(store)
    assert await ex.run(task.id) == "succeeded"
    done = store.get_task(task.id)
    assert (done.status, done.attempts, done.result, done.worker) == (
        TaskStatus.SUCCEEDED, 1, GOOD, "worker-1"
    )  # fmt: skip
    assert done.workspace and not Path(done.workspace).exists()  # removed after success
    assert done.started_at and done.finished_at
    assert finished == [done]
    [note] = (settings.home / "tasks").glob("*-github-acme-api-1-r-*.md")
    assert "**succeeded**" in note.read_text()
    assert await ex.run(task.id) == "succeeded"  # a repeated step changes nothing
    assert store.get_task(task.id).attempts == 1


async def test_missing_result_and_invalid_result_fail(tmp_path: Path) -> None:
    ex, store, _ = make(tmp_path, "print('no result written')")
    task = queue_task(store)
    assert await ex.run(task.id) == "failed"
    assert "result" in (store.get_task(task.id).reason or "")
    ex2, store2, _ = make(tmp_path / "b", writes({"success": True, "actions": [], "x": 1}))
    task2 = queue_task(store2)
    assert await ex2.run(task2.id) == "failed"
    reason = store2.get_task(task2.id).reason or ""
    assert reason.startswith("invalid result:") and "'analysis' is a required" in reason


async def test_interrupted_attempt_is_rerun_and_its_stale_group_killed(tmp_path: Path) -> None:
    ex, store, _ = make(tmp_path, writes(GOOD), attempts=2)
    stale = subprocess.Popen(["sleep", "300"], start_new_session=True)
    stat = read_stat(stale.pid)
    assert stat is not None
    record = ProcessRecord.from_json(
        {"pid": stale.pid, "pgid": stale.pid, "start_time": stat.start_time,
         "boot_id": Path("/proc/sys/kernel/random/boot_id").read_text().strip()}
    )  # fmt: skip
    task = queue_task(
        store, status=TaskStatus.RUNNING, attempts=1, process=record.to_json(), worker="dead"
    )
    assert await ex.run(task.id) == "succeeded"
    assert store.get_task(task.id).attempts == 2
    assert stale.wait(5) is not None  # killed before the re-run


async def test_interrupted_last_attempt_ends_worker_lost(tmp_path: Path) -> None:
    ex, store, _ = make(tmp_path, writes(GOOD), attempts=2)
    task = queue_task(store, status=TaskStatus.PREPARING, attempts=2, worker="w-9")
    assert await ex.run(task.id) == "failed"
    reason = store.get_task(task.id).reason or ""
    assert reason.startswith("worker lost") and "w-9" in reason


async def test_cancel_before_start_and_while_running(tmp_path: Path) -> None:
    ex, store, _ = make(tmp_path, "import time; time.sleep(60)")
    task = queue_task(store)
    store.transition(task.id, Kind.REQUEST_CANCEL, updated_at=time.time())
    assert await ex.run(task.id) == "cancelled"
    assert store.get_task(task.id).reason == "cancelled before start"
    running = queue_task(store)
    import asyncio

    run = asyncio.create_task(ex.run(running.id))
    for _ in range(100):
        await asyncio.sleep(0.05)
        if store.get_task(running.id).status is TaskStatus.RUNNING:
            break
    store.transition(running.id, Kind.REQUEST_CANCEL, updated_at=time.time())
    assert await asyncio.wait_for(run, 10) == "cancelled"
    assert store.get_task(running.id).reason == "cancelled"


def test_warm_up_refuses_a_route_with_an_unknown_prompt(tmp_path: Path) -> None:
    ex, _, settings = make(tmp_path, writes(GOOD))
    bad = settings.routes[0].model_copy(update={"prompt": "no-such-template"})
    with pytest.raises(ConfigError, match="no prompt template 'no-such-template'"):
        ex.warm_up([bad])
    ex.warm_up(settings.routes)


async def test_an_unexpected_error_still_ends_the_task(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ex, store, _ = make(tmp_path, writes(GOOD))

    def broken(*args: object) -> Path:
        raise OSError("disk full")

    monkeypatch.setattr(ex.attempts, "render_prompt", broken)
    task = queue_task(store)
    assert await ex.run(task.id) == "failed"
    assert store.get_task(task.id).reason == "internal error: OSError: disk full"


async def test_a_context_fetcher_without_credentials_is_skipped_and_the_agent_told(
    tmp_path: Path,
) -> None:
    script = (
        "import json, os, pathlib; ctx = pathlib.Path(os.environ['CONTEXT_DIR']); "
        "missing = json.loads((ctx / 'unavailable.json').read_text()); "
        "pathlib.Path(os.environ['OUTPUT_DIR'], 'result.json').write_text(json.dumps("
        "{'success': True, 'actions': [], 'analysis': missing['github.issue'], 'summary': 'ok'}))"
    )
    ex, store, _ = make(tmp_path, script)
    task = queue_task(store, TaskSpec("r", "a", "default", context=("github.issue",)))
    assert await ex.run(task.id) == "succeeded"
    analysis = (store.get_task(task.id).result or {})["analysis"]
    assert analysis.startswith("github.issue needs TASKYARD_GITHUB_TOKEN")
