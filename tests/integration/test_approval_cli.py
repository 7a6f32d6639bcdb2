"""`taskyard approvals status` finds a task's requests by the approval, the task or the
workflow the task runs under; `taskyard approvals resubmit` asks again for an expired request
and makes its task wait, or, refused, leaves no request behind."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from taskyard.cli.main import app
from taskyard.lifecycle import Kind, workflow_id
from taskyard.models import Priority, Task, TaskStatus
from taskyard.records import Approval, ApprovalStatus, Decision
from taskyard.store import SQLStore
from tests.lifecycle_paths import drive

DAY = 86_400.0


class Cli:
    def __init__(self, tmp_path: Path) -> None:
        self.home = tmp_path
        self.url = f"sqlite:///{tmp_path / 'cli.db'}"
        self.store = SQLStore.open(self.url)
        self.store.migrate()
        self.runner = CliRunner()

    def __call__(self, *args: str) -> tuple[int, str]:
        done = self.runner.invoke(
            app, [*args, "--database-url", self.url], env={"TASKYARD_HOME": str(self.home)}
        )
        return done.exit_code, " ".join(done.output.split())

    def json(self, *args: str) -> Any:
        code, out = self(*args, "--json")
        assert code == 0, out
        return orjson.loads(out)


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    made = Cli(tmp_path)
    yield made
    made.store.close()


def waiting(cli: Cli, now: float, expires_in: float = DAY) -> Approval:
    """Task t1 waiting for request a1."""
    task = Task(
        id="t1",
        event_id="e1",
        route="pr-review",
        agent="codex",
        status=TaskStatus.QUEUED,
        priority=Priority.P2,
        created_at=now,
        updated_at=now,
        workflow_id=workflow_id("t1"),
    )
    cli.store.record_routing([], [task])
    assert drive(cli.store, "t1", TaskStatus.AWAITING_APPROVAL)
    request = Approval(
        id="a1",
        task_id="t1",
        action_key="t1.0.aa",
        route="pr-review",
        action_type="merge_pr",
        risk="high",
        rule="merge-main",
        summary="merge acme/api#7 into main",
        details={},
        status=ApprovalStatus.PENDING,
        created_at=now,
        expires_at=now + expires_in,
        remind_at=now + expires_in / 2,
    )
    return cli.store.create_approval(request)


def test_status_by_approval_task_or_current_workflow(cli: Cli) -> None:
    now = time.time()
    waiting(cli, now)
    assert [a["id"] for a in cli.json("approvals", "status", "a1")] == ["a1"]
    assert [a["id"] for a in cli.json("approvals", "status", "t1")] == ["a1"]
    assert [a["id"] for a in cli.json("approvals", "status", "task-t1")] == ["a1"]
    resumed = workflow_id("t1", Kind.RESUME)
    cli.store.decide_approval("a1", Decision.DENY, "cli:ana", "cli", "no", now + 1, resumed)
    [shown] = cli.json("approvals", "status", resumed)
    assert (shown["id"], shown["status"]) == ("a1", "denied")
    code, out = cli("approvals", "status", "t1-apply-00000000")
    assert code == 1
    assert "no approval, task or workflow t1-apply-00000000 with approval requests" in out


def test_resubmit_makes_the_task_wait_for_a_new_request(cli: Cli) -> None:
    now = time.time()
    waiting(cli, now - 2 * DAY)
    cli.store.expire_approvals(now - DAY, lambda tid: workflow_id(tid, Kind.RESUME))
    assert drive(cli.store, "t1", TaskStatus.EXPIRED)
    asked = cli.json("approvals", "resubmit", "a1")
    assert asked["id"] != "a1" and asked["status"] == "pending"
    new = cli.store.get_approval(asked["id"])
    assert new.expires_at - new.created_at == DAY
    assert new.remind_at is not None and new.remind_at - new.created_at == DAY / 2
    assert new.created_at >= now and new.decided_at is None
    task = cli.store.get_task("t1")
    assert (task.status, task.reason, task.finished_at, task.ending) == (
        TaskStatus.AWAITING_APPROVAL,
        f"waiting for approval {new.id} (resubmitted)",
        None,
        None,
    )
    code, out = cli("approvals", "resubmit", new.id)
    assert code == 1
    assert f"approval {new.id} is pending; only an expired request is resubmitted" in out


def test_a_resubmit_for_a_task_no_longer_waiting_leaves_no_request(cli: Cli) -> None:
    now = time.time()
    waiting(cli, now - 2 * DAY)
    cli.store.expire_approvals(now - DAY, lambda tid: workflow_id(tid, Kind.RESUME))
    assert drive(cli.store, "t1", TaskStatus.SUCCEEDED)
    code, out = cli("approvals", "resubmit", "a1")
    assert code == 1 and "task t1 is no longer waiting for this action" in out
    assert [a.id for a in cli.store.list_approvals(None, include_archived=True)] == ["a1"]
    assert cli.store.get_task("t1").status is TaskStatus.SUCCEEDED
    code, out = cli("approvals", "resubmit", "nope")
    assert code == 1 and "no approval nope" in out
