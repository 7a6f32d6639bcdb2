"""What a new user meets first, with the real `taskyard` CLI as subprocesses:

- the README's "try it" recipe (examples/try-it/) ends in a succeeded task with no token, no
  model account and no network: three dry-run actions, the label names unresolved;
- `serve` says "listening on http://…" and the UI's URL once it answers, and warns about
  routes whose agent cannot run;
- `serve` on a port already in use stops at once with a clear error, before it claims an
  executor id or opens the database.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
TRY_IT = REPO / "examples" / "try-it"
SECRET = "change-me"

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a new user: no platform token, no model key."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("TASKYARD_", "OPENAI_"))}
    keep = {k: v for k, v in keep.items() if not k.startswith("ANTHROPIC_")}
    return {**keep, "TASKYARD_HOME": str(home), **extra}


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "taskyard", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


class Serving:
    def __init__(self, home: Path, env: dict[str, str], *args: str) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = home / "serve.log"
        home.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "taskyard", "serve", "--port", str(self.port), *args],
                cwd=REPO,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.wait(lambda: "listening on" in self.text(), 60, "listening on")

    def text(self) -> str:
        if self.proc.poll() is not None:
            raise AssertionError(f"serve exited: {self.log.read_text()[-3000:]}")
        return self.log.read_text(errors="replace")

    def messages(self) -> list[dict[str, Any]]:
        lines = self.log.read_text(errors="replace").splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    @staticmethod
    def wait(check: Any, seconds: float, what: str) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture
def try_it(tmp_path: Path) -> Iterator[tuple[Serving, dict[str, str]]]:
    env = _env(tmp_path / "home", TASKYARD_LINEAR_SECRET=SECRET, TASKYARD_LOG_FORMAT="json")
    serving = Serving(tmp_path / "home", env, "--config", str(TRY_IT / "taskyard.yaml"))
    yield serving, env
    serving.stop()


def test_the_try_it_recipe_ends_in_a_succeeded_task_offline(
    try_it: tuple[Serving, dict[str, str]],
) -> None:
    serving, env = try_it
    sent = _cli(env, "send", "linear", "examples/try-it/issue.create.json", "--url", serving.url)
    assert sent.returncode == 0 and sent.stdout.startswith("202 "), sent.stdout + sent.stderr

    def ended() -> bool:
        tasks = json.loads(_cli(env, "tasks", "list", "--json").stdout)
        return bool(tasks) and tasks[0]["status"] not in ("queued", "preparing", "running")

    Serving.wait(ended, 60, "the task to end")
    (task,) = json.loads(_cli(env, "tasks", "list", "--json").stdout)
    assert (task["route"], task["status"], task["reason"]) == ("linear-triage", "succeeded", None)
    shown = json.loads(_cli(env, "tasks", "show", task["id"], "--json").stdout)
    acts = {a["index"]: a for a in shown["actions"] if a["index"] >= 0}
    assert [(acts[i]["type"], acts[i]["status"]) for i in sorted(acts)] == [
        ("add_labels", "dry_run"),
        ("set_priority", "dry_run"),
        ("comment", "dry_run"),
    ]
    labels = acts[0]["requests"][0]["body"]["variables"]["input"]
    assert labels == {"addedLabelIds": ["<label:Bug>", "<label:Backend>"]}
    assert shown["result"]["analysis"]["complexity"] == 3  # the design's object analysis


def test_serve_says_where_it_answers_once_it_does(try_it: tuple[Serving, dict[str, str]]) -> None:
    serving, _ = try_it
    said = [m["message"] for m in serving.messages()]
    listening = f"listening on {serving.url}"
    assert listening in said and f"UI at {serving.url}/" in " ".join(said)
    assert said.index(listening) > said.index("taskyard running")
    assert httpx.get(f"{serving.url}/healthz").status_code == 200


def test_serve_warns_about_routes_whose_agent_cannot_run(tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    env = _env(tmp_path / "home", TASKYARD_GITHUB_SECRET=SECRET, TASKYARD_LOG_FORMAT="json")
    env["PATH"] = f"{empty}:/usr/bin:/bin"  # no codex, no claude
    serving = Serving(tmp_path / "home", env)
    try:
        warnings = [m["message"] for m in serving.messages() if m["level"] == "WARNING"]
    finally:
        serving.stop()
    for route in ("linear-triage", "slack-bug-analysis", "pr-review", "sentry-triage"):
        assert any(w.startswith(f"route {route}: ") for w in warnings), (route, warnings)
    assert all("taskyard doctor" in w for w in warnings if w.startswith("route "))


def test_serve_on_a_taken_port_stops_before_starting_anything(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = _env(home, TASKYARD_GITHUB_SECRET=SECRET)
        started = time.monotonic()
        done = _cli(env, "serve", "--port", str(port))
    assert done.returncode != 0
    said = " ".join(done.stderr.split())
    assert f"error: cannot listen on 127.0.0.1:{port}: Address already in use" in said, said
    assert "choose one with --port" in said
    assert time.monotonic() - started < 30
    assert not (home / "executors").exists()  # no executor id claimed
    assert not (home / "taskyard.db").exists()  # no store opened, no worker registered


REHEARSAL = """
agents:
  stand-in:
    kind: command
    argv:
      - sh
      - -c
      - |
        cat > "$OUTPUT_DIR/result.json" <<'JSON'
        {"success": true,
         "actions": [
           {"type": "add_labels", "params": {"labels": ["Bug"]}, "reasoning": "a bug"},
           {"type": "remove_labels", "params": {"labels": ["Needs triage"]}, "reasoning": "done"}
         ],
         "analysis": "triaged", "summary": "triaged"}
        JSON
routes:
  - {name: linear-triage, on: ["linear:Issue.create"], agent: stand-in, prompt: linear-triage}
approvals:
  in_dry_run: true
  sweep_seconds: 0.2
queue:
  polling_interval_sec: 0.1
"""


def _task_when(env: dict[str, str], done: Any) -> dict[str, Any]:
    found: list[dict[str, Any]] = []

    def check() -> bool:
        found[:] = json.loads(_cli(env, "tasks", "list", "--json").stdout)
        return bool(found) and done(found[0])

    Serving.wait(check, 60, "the task")
    return found[0]


def test_approvals_are_rehearsed_in_dry_run_on_the_cli(tmp_path: Path) -> None:
    """`approvals.in_dry_run: true`: a gated action of a dry-run task raises a request (the
    CLI and the web see it; no platform channel is asked), the task waits, and the CLI's
    approval ends it `succeeded` with the action recorded as planned, nothing sent."""
    config = tmp_path / "rehearse.yaml"
    config.write_text(REHEARSAL)
    env = _env(tmp_path / "home", TASKYARD_LINEAR_SECRET=SECRET, TASKYARD_LOG_FORMAT="json")
    serving = Serving(tmp_path / "home", env, "--config", str(config))
    try:
        sent = _cli(env, "send", "linear", str(TRY_IT / "issue.create.json"), "--url", serving.url)
        assert sent.stdout.startswith("202 "), sent.stdout + sent.stderr
        task = _task_when(env, lambda t: t["status"] == "awaiting_approval")
        (pending,) = json.loads(_cli(env, "approvals", "list-pending", "--json").stdout)
        assert (pending["task_id"], pending["action_type"]) == (task["id"], "remove_labels")
        assert pending["details"]["dry_run"] is True and pending["channels"] == {}
        page = httpx.get(f"{serving.url}/ui/approvals", timeout=10).text  # the web sees it
        assert f'data-approval="{pending["id"]}"' in page and "data-dry-run" in page
        approved = _cli(env, "approvals", "approve", pending["id"], "--as", "ana")
        assert approved.returncode == 0, approved.stdout + approved.stderr
        task = _task_when(env, lambda t: t["status"] not in ("awaiting_approval", "applying"))
    finally:
        serving.stop()
    assert (task["status"], task["reason"]) == ("succeeded", None)
    shown = json.loads(_cli(env, "tasks", "show", task["id"], "--json").stdout)
    acts = {a["index"]: a for a in shown["actions"]}
    assert (acts[0]["status"], acts[0]["reason"]) == ("dry_run", None)  # low risk: no request
    gated = acts[1]
    assert (gated["type"], gated["status"], gated["sent"]) == ("remove_labels", "dry_run", 0)
    assert gated["reason"].startswith("approved by cli:ana (medium: remove-labels)")
    assert gated["reason"].endswith("dry run: nothing sent")
    body = gated["requests"][0]["body"]["variables"]["input"]
    assert body == {"removedLabelIds": ["<label:Needs triage>"]}


def test_without_rehearsal_a_gated_dry_run_action_raises_no_request(tmp_path: Path) -> None:
    config = tmp_path / "plain.yaml"
    config.write_text(REHEARSAL.replace("in_dry_run: true", "in_dry_run: false"))
    env = _env(tmp_path / "home", TASKYARD_LINEAR_SECRET=SECRET, TASKYARD_LOG_FORMAT="json")
    serving = Serving(tmp_path / "home", env, "--config", str(config))
    try:
        _cli(env, "send", "linear", str(TRY_IT / "issue.create.json"), "--url", serving.url)
        task = _task_when(env, lambda t: t["status"] == "succeeded")
    finally:
        serving.stop()
    assert json.loads(_cli(env, "approvals", "list-pending", "--json").stdout) == []
    shown = json.loads(_cli(env, "tasks", "show", task["id"], "--json").stdout)
    gated = next(a for a in shown["actions"] if a["index"] == 1)
    assert gated["reason"] == "would need approval (medium: remove-labels)"
