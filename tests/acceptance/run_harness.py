"""A running taskyard with routes, agents and a local git repository, for the Run tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from tests.acceptance.test_serve import SECRET, Taskyard, wait_for

SHARED = Path(__file__).resolve().parents[3] / "shared" / "webhooks"
REPO_NAME = "Codertocat/Hello-World"  # the repository of GitHub's sample payloads


def git(*args: str, cwd: Path | None = None) -> str:
    out = subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True, timeout=30
    )
    return out.stdout.strip()


def make_repository(root: Path) -> str:
    """A bare repository at root/Codertocat/Hello-World.git with two commits; returns the
    head commit (what the pull request's head sha is set to)."""
    work = root / "src"
    work.mkdir(parents=True)
    git("init", "-q", "-b", "main", cwd=work)
    git("config", "user.email", "dev@example.com", cwd=work)
    git("config", "user.name", "Dev", cwd=work)
    (work / "README.md").write_text("# Hello-World\n")
    git("add", ".", cwd=work)
    git("commit", "-q", "-m", "first", cwd=work)
    (work / "app.py").write_text("def greet(name):\n    return 'hello ' + name\n")
    git("add", ".", cwd=work)
    git("commit", "-q", "-m", "add greet", cwd=work)
    bare = root / "mirrors-src" / "Codertocat" / "Hello-World.git"
    bare.parent.mkdir(parents=True)
    git("clone", "-q", "--bare", str(work), str(bare))
    return git("rev-parse", "HEAD", cwd=work)


class RunYard(Taskyard):
    """Taskyard with a config of our own and helpers for tasks."""

    def __init__(self, home: Path, database_url: str | None, config: str) -> None:
        super().__init__(home, database_url)
        self.config.write_text(config)
        self.env["TASKYARD_LINEAR_SECRET"] = SECRET
        self.env["TASKYARD_GIT_URL_TEMPLATE"] = f"file://{home}/mirrors-src/{{owner}}/{{repo}}.git"

    def send_file(self, source: str, payload: dict[str, Any], event: str | None = None) -> str:
        path = self.home / f"payload-{uuid.uuid4().hex}.json"
        path.write_text(json.dumps(payload))
        args = ["send", source, str(path), "--url", self.url]
        if event:
            args += ["--event", event]
        result = self.cli(*args, db=False)
        status, _, body = result.stdout.strip().partition(" ")
        assert status in ("200", "202"), result.stdout + result.stderr
        return str(json.loads(body)["event_id"])

    def tasks(self, event_id: str | None = None) -> list[dict[str, Any]]:
        args = ["tasks", "list", "--json", "--limit", "500"]
        if event_id:
            args += ["--event", event_id]
        return list(json.loads(self.cli(*args).stdout))

    def task(self, task_id: str) -> dict[str, Any]:
        return dict(json.loads(self.cli("tasks", "show", task_id, "--json").stdout))

    def event(self, event_id: str) -> dict[str, Any]:
        return dict(json.loads(self.cli("events", "show", event_id, "--json").stdout))

    def wait_task_end(self, event_id: str, seconds: float = 60) -> dict[str, Any]:
        ended = ("succeeded", "failed", "timed_out", "cancelled")
        found: list[dict[str, Any]] = []

        def done() -> bool:
            found[:] = self.tasks(event_id)
            return bool(found) and all(t["status"] in ended for t in found)

        wait_for(done, seconds, f"the task of event {event_id} to end")
        assert len(found) == 1, found
        return found[0]


def pr_opened(head_sha: str) -> dict[str, Any]:
    payload = json.loads((SHARED / "github" / "pull_request.opened.json").read_text())
    payload["pull_request"]["head"]["sha"] = head_sha
    return dict(payload)


def python_agent(script: str, env: dict[str, str] | None = None) -> str:
    """A `command` agent entry running `script` with this interpreter."""
    agent: dict[str, Any] = {"kind": "command", "argv": [sys.executable, "-c", script]}
    if env:
        agent["env"] = env
    return json.dumps(agent)


def processes_with(token: str) -> list[int]:
    """Live processes (zombies aside) whose command line holds `token`, boxed ones included:
    a box's processes are in this pid namespace too, under other numbers."""
    found = []
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{name}/cmdline").read_bytes()
            state = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if token.encode() in cmdline and state != "Z":
            found.append(int(name))
    return found
