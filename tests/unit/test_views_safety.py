"""What the API and the UI show is safe: credential headers hidden, and an agent's log read
only when it is the agent's own file in the workspace."""

from __future__ import annotations

from pathlib import Path

from taskyard.models import Event, Priority, Task, TaskStatus
from taskyard.run.taskops import log_file
from taskyard.web.views import event_json, masked_headers


def test_headers_that_may_carry_credentials_are_hidden() -> None:
    headers = {
        "Authorization": "Bearer abc",
        "Cookie": "session=1",
        "X-Api-Key": "k",
        "X-Linear-Token": "t",
        "X-GitHub-Event": "issues",
        "Content-Type": "application/json",
    }
    shown = masked_headers(headers)
    assert shown == {
        "Authorization": "(hidden)",
        "Cookie": "(hidden)",
        "X-Api-Key": "(hidden)",
        "X-Linear-Token": "(hidden)",
        "X-GitHub-Event": "issues",
        "Content-Type": "application/json",
    }
    event = Event("e1", "github", "github:issues.opened", "d1", "o/r#1", "octocat", 0.0,
                  Priority.P2, headers, b"{}", "h")  # fmt: skip
    data = event_json(event, with_body=True)
    assert data["headers"] == shown and "abc" not in str(data)


def task_in(workspace: Path) -> Task:
    return Task("t1", "e1", "r", "a", TaskStatus.RUNNING, Priority.P2, 0.0, 0.0, "task-t1",
                workspace=str(workspace))  # fmt: skip


def test_the_log_is_read_only_when_it_is_the_agents_own_file(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    (root / "outputs").mkdir(parents=True)
    log = root / "outputs" / "log.jsonl"
    assert log_file(task_in(root)) is None  # not written yet
    log.write_text("{}\n")
    assert log_file(task_in(root)) == log

    secret = tmp_path / "elsewhere.txt"
    secret.write_text("not the agent's")
    log.unlink()
    log.symlink_to(secret)
    assert log_file(task_in(root)) is None

    log.unlink()
    (root / "outputs").rmdir()
    (root / "outputs").symlink_to(tmp_path)  # the directory itself points out
    (tmp_path / "log.jsonl").write_text("{}\n")
    assert log_file(task_in(root)) is None
