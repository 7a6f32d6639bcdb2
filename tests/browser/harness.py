"""The world of the browser tests: the recording GitHub server and a real `taskyard serve`
(SQLite, an API token) with two `command` agents.

- `merge` (on `github:pull_request.opened`): the agent proposes a squash merge of the pull
  request. The shipped risk rules make a merge into `master` critical, so it waits for a
  person, whose approval needs a reason; once approved, taskyard sends the merge to GitHub.
- `slow` (on `github:issues.opened`): the agent prints a line, waits for the file
  `gate-1-<task id>` in the yard's gate directory (`Yard.open_gate`; outside the home, which
  the agent's sandbox hides, and readable in the box by `runs.sandbox_read_only`), prints a
  second line, waits for `gate-2-<task id>`, prints a third and ends: the test decides when
  each line appears.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from taskyard.store import SQLStore
from taskyard.store.base import TaskFilter

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "webhooks" / "github"
SECRET = "browser-webhook-secret"
API_TOKEN = "tyapi-BROWSER-token-that-never-leaks-7"
GITHUB_TOKEN = "ghp_BROWSERtokenTHATmustNEVERleak0123"
PR_REPO = "Codertocat/Hello-World"
MERGE = ("PUT", f"/repos/{PR_REPO}/pulls/2/merge")

GATED = r"""
import json, os, pathlib
print(json.dumps({"type": "message", "text": "read the pull request: the checks pass"}), flush=True)
pathlib.Path(os.environ["OUTPUT_DIR"], "result.json").write_text(json.dumps({
    "success": True,
    "actions": [{"type": "merge_pr", "params": {"method": "squash"},
                 "reasoning": "small change, reviewed, checks green"}],
    "analysis": "The pull request changes one line.",
    "summary": "Ready to merge.",
}))
"""

SLOW = r"""
import json, os, pathlib, sys, time
gates = pathlib.Path(os.environ["GATE_DIR"])

def wait(gate):
    name = f"{gate}-{os.environ['TASK_ID']}"
    deadline = time.monotonic() + 90
    while not (gates / name).exists():
        if time.monotonic() > deadline:
            sys.exit(f"{name} never came")
        time.sleep(0.05)

print(json.dumps({"type": "message", "text": "first line: looking at the issue"}), flush=True)
wait("gate-1")
print(json.dumps({"type": "message", "text": "second line: <b>found it</b>"}), flush=True)
wait("gate-2")
print("a plain third line", flush=True)
pathlib.Path(os.environ["OUTPUT_DIR"], "result.json").write_text(json.dumps({
    "success": True, "actions": [], "analysis": "Nothing to do.", "summary": "Looked.",
}))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def config(github_url: str, gates: Path) -> dict[str, Any]:
    """The yard's settings. The slow agent waits for gate files the test creates in `gates`,
    outside `$TASKYARD_HOME` (which the agent's sandbox hides): the operator lets agents read
    that directory (`runs.sandbox_read_only`)."""

    def agent(script: str) -> dict[str, Any]:
        return {"kind": "command", "argv": [sys.executable, "-c", script]}

    return {
        "queue": {"polling_interval_sec": 0.05},
        "runs": {
            "timeout_seconds": 100,
            "kill_grace_seconds": 1,
            "keep_workspaces": True,
            "sandbox_read_only": [str(gates)],
        },
        "agents": {"gated": agent(GATED), "slow": {**agent(SLOW), "env": {"GATE_DIR": str(gates)}}},
        "routes": [
            {"name": "merge", "on": ["github:pull_request.opened"], "agent": "gated"},
            {"name": "slow", "on": ["github:issues.opened"], "agent": "slow"},
        ],
        "platforms": {"github": {"base_url": github_url}, "backoff_seconds": 0.05},
        "actions": {"allow": {"merge": ["merge_pr"], "slow": ["comment"]}},
        "approvals": {"sweep_seconds": 0.5},
        "log_level": "INFO",
    }


class Yard:
    """One `taskyard serve` (which serves the UI) on its own home."""

    def __init__(self, home: Path, github_url: str) -> None:
        self.home = home
        self.port = _free_port()
        self.gates = home.parent / f"{home.name}-gates"
        self.gates.mkdir(exist_ok=True)
        self.config = home / "taskyard.yaml"
        self.config.write_text(json.dumps(config(github_url, self.gates), indent=1))
        self.proc: subprocess.Popen[bytes] | None = None
        self.env = {
            **os.environ,
            "TASKYARD_HOME": str(home),
            "TASKYARD_GITHUB_SECRET": SECRET,
            "TASKYARD_GITHUB_TOKEN": GITHUB_TOKEN,
            "TASKYARD_API_TOKEN": API_TOKEN,
            "PYTHONPATH": str(REPO),
        }

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        cmd = [sys.executable, "-m", "taskyard", "serve"]
        cmd += ["--port", str(self.port), "--config", str(self.config)]
        with (self.home / "serve.log").open("ab") as out:
            self.proc = subprocess.Popen(cmd, env=self.env, stdout=out, stderr=out, cwd=REPO)
        wait_for(self._healthy, 30, "taskyard serve to start")

    def _healthy(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError("serve exited: " + (self.home / "serve.log").read_text()[-3000:])
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None

    def deliver(self, event: str, payload: dict[str, Any]) -> str:
        """Post a GitHub delivery signed as GitHub signs it; returns the event id."""
        body = json.dumps(payload).encode()
        signature = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        headers = {
            "content-type": "application/json",
            "x-github-event": event,
            "x-github-delivery": str(uuid.uuid4()),
            "x-hub-signature-256": f"sha256={signature}",
        }
        answer = httpx.post(f"{self.url}/webhooks/github", content=body, headers=headers)
        assert answer.status_code == 202, answer.text
        return str(answer.json()["event_id"])

    @contextmanager
    def store(self) -> Iterator[SQLStore]:
        store = SQLStore.open(f"sqlite:///{self.home / 'taskyard.db'}")
        try:
            yield store
        finally:
            store.close()

    def task_of(self, event_id: str, status: str, seconds: float = 60) -> str:
        """The id of the event's one task, once it is `status`."""
        found: list[str] = []

        def reached() -> bool:
            with self.store() as store:
                tasks = store.list_tasks(TaskFilter(event_id=event_id, limit=5))
            assert len(tasks) <= 1, tasks
            if tasks and tasks[0].status.terminal and str(tasks[0].status) != status:
                raise AssertionError(f"the task ended {tasks[0].status}: {tasks[0].reason}")
            if tasks and str(tasks[0].status) == status:
                found.append(tasks[0].id)
            return bool(found)

        wait_for(reached, seconds, f"the task of event {event_id} to be {status}")
        return found[0]

    def open_gate(self, gate: str, task_id: str) -> None:
        (self.gates / f"{gate}-{task_id}").touch()

    def log_text(self, task_id: str) -> str:
        with self.store() as store:
            workspace = store.get_task(task_id).workspace
        path = Path(workspace or "/nonexistent") / "outputs" / "log.jsonl"
        return path.read_text() if path.exists() else ""


_DELIVERIES = itertools.count()


def _delivery(name: str, subject: str) -> dict[str, Any]:
    """GitHub's sample delivery `name`, each one its own (GitHub's differ at least in their
    time): the same body again within the dedup window would be a replay, a duplicate."""
    payload = dict(json.loads((SHARED / name).read_text()))
    payload[subject]["updated_at"] = f"2026-01-01T00:00:{next(_DELIVERIES):02d}Z"
    return payload


def pull_request() -> dict[str, Any]:
    return _delivery("pull_request.opened.json", "pull_request")


def issue() -> dict[str, Any]:
    return _delivery("issues.opened.json", "issue")
