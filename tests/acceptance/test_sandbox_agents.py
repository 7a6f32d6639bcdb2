"""The real `codex` and `claude` inside taskyard's sandbox, driven by `taskyard serve` against the
scripted model server, trying to get out.

The scripted model has the agent run one shell command per turn: read the server's
`/proc/<pid>/environ`, `taskyard.db`, another task's workspace; write outside its workspace;
connect to PostgreSQL's 127.0.0.1:5432 and to an HTTP server that is not on the allowlist,
directly and through the egress proxy. Each must fail — read from the tool outputs the CLI
sent back to the model on its next turn, and checked from outside (no file written, no
request received). A last command writes in the workspace (the box is not merely broken), and
the run reaching its final turn proves the model server is still reached. Every attack is a
failed tool call, counted in the task's usage (`tool_errors`); one call succeeded, so the
task succeeds.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from taskyard.devtools.model_script import as_script
from taskyard.devtools.model_server import ModelServer, RecordedRequest
from tests.acceptance.run_harness import SHARED, RunYard
from tests.acceptance.test_serve import SECRET
from tests.agent_binaries import agent_binary

pytestmark = pytest.mark.slow

RESULT = {"success": True, "actions": [], "analysis": "probed the box", "summary": "done"}
DECOY_SECRET = "decoy-task-secret-4f1b"
CONFIG = """
queue:
  polling_interval_sec: 0.05
runs:
  sandbox: bwrap
  timeout_seconds: 120
  kill_grace_seconds: 1
  keep_workspaces: true
agents:
  codex: {{kind: codex, binary: "{codex}", model: gpt-5.5}}
  claude: {{kind: claude, binary: "{claude}", model: claude-sonnet-4-5, max_turns: 40,
            address_space_bytes: 4294967296}}
routes:
  - name: probe
    on: ["github:issues.opened"]
    agent: {kind}
    who: {{min_permission: none}}
log_level: INFO
"""


class Decoy(BaseHTTPRequestHandler):
    """An HTTP server that is not on the allowlist: it counts what reaches it."""

    hits: list[str] = []

    def do_GET(self) -> None:
        Decoy.hits.append(self.path)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"DECOY REACHED")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def decoy() -> Iterator[int]:
    Decoy.hits = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Decoy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@dataclass(frozen=True)
class Attack:
    name: str
    command: str
    refusal: str  # a regular expression the failed command's output matches
    # False: the box may let it "succeed" in a private copy (its own /tmp): what counts is
    # that nothing shows outside, checked there.
    refused_inside: bool = True


def attacks(yard: RunYard, server_pid: int, decoy_port: int) -> list[Attack]:
    home = yard.home
    other = home / "workspaces" / "task-decoy" / "workspace" / "notes.txt"
    proxied = f'--noproxy "" -x "$http_proxy" http://127.0.0.1:{decoy_port}/via-proxy'
    missing = "No such file or directory"
    return [
        Attack("server environ", f"cat /proc/{server_pid}/environ", missing),
        Attack("database", f"head -c 64 {home}/taskyard.db", missing),
        Attack("other task", f"cat {other}", missing),
        Attack("write home", f"touch {home}/pwned-by-agent", "", refused_inside=False),
        Attack("write task dir", 'touch "$CONTEXT_DIR/pwned-by-agent"', "Read-only file system"),
        Attack("write system", "touch /usr/pwned-by-agent", "Read-only file system|denied"),
        Attack("postgres", "exec 3<>/dev/tcp/127.0.0.1/5432", "Connection refused"),
        Attack("decoy", f"exec 3<>/dev/tcp/127.0.0.1/{decoy_port}", "Connection refused"),
        Attack("decoy via proxy", f"curl -sS --fail --max-time 5 {proxied}", "403|Forbidden"),
    ]


def script(steps: list[Attack]) -> dict[str, Any]:
    turns: list[dict[str, Any]] = [{"shell": step.command} for step in steps]
    turns += [{"shell": "echo inside > inside.txt && cat inside.txt"}, {"final": RESULT}]
    return {"scripts": [{"name": "probe", "turns": turns}]}


@dataclass(frozen=True)
class ToolRun:
    command: str
    output: str
    failed: bool


_CODEX_EXIT = re.compile(r"Process exited with code (\d+)")


def codex_runs(body: dict[str, Any]) -> list[ToolRun]:
    """The shell calls of a Responses API request and their outputs."""
    items = [i for i in body.get("input", []) if isinstance(i, dict)]
    calls = {
        i["call_id"]: json.loads(i["arguments"])["cmd"]
        for i in items
        if i.get("type") == "function_call"
    }
    runs = []
    for item in items:
        if item.get("type") == "function_call_output":
            output = str(item.get("output"))
            code = _CODEX_EXIT.search(output)
            failed = code is None or code.group(1) != "0"
            runs.append(ToolRun(calls[item["call_id"]], output, failed))
    return runs


def claude_runs(body: dict[str, Any]) -> list[ToolRun]:
    """The Bash calls of a Messages API request and their results."""
    blocks = [
        b
        for m in body.get("messages", [])
        if isinstance(m.get("content"), list)
        for b in m["content"]
        if isinstance(b, dict)
    ]
    calls = {b["id"]: b["input"].get("command") for b in blocks if b.get("type") == "tool_use"}
    runs = []
    for block in blocks:
        if block.get("type") == "tool_result" and block["tool_use_id"] in calls:
            content = block.get("content")
            if isinstance(content, list):
                content = " ".join(str(c.get("text")) for c in content if isinstance(c, dict))
            runs.append(
                ToolRun(calls[block["tool_use_id"]], str(content), bool(block.get("is_error")))
            )
    return runs


def tool_runs(kind: str, requests: list[RecordedRequest]) -> list[ToolRun]:
    """What the CLI sent back to the model, from its last request (the whole conversation)."""
    body = requests[-1].body
    assert isinstance(body, dict)
    return codex_runs(body) if kind == "codex" else claude_runs(body)


@pytest.fixture(
    params=[("codex", "sqlite"), ("claude", "sqlite"), ("codex", "postgres")],
    ids=["codex-sqlite", "claude-sqlite", "codex-postgres"],
)
def setup(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    model_server: Callable[[Any], ModelServer],
    decoy: int,
) -> Iterator[tuple[str, RunYard, ModelServer]]:
    kind, db = request.param
    url = request.getfixturevalue("pg_url") if db == "postgres" else None
    server = model_server({"scripts": [{"turns": [{"final": "not yet"}]}]})
    config = CONFIG.format(codex=agent_binary("codex"), claude=agent_binary("claude"), kind=kind)
    yard = RunYard(tmp_path, url, config)
    yard.env.update(
        OPENAI_BASE_URL=f"{server.url}/v1",
        OPENAI_API_KEY="sk-test-openai",
        ANTHROPIC_BASE_URL=server.url,
        ANTHROPIC_API_KEY="sk-test-anthropic",
    )
    other = tmp_path / "workspaces" / "task-decoy" / "workspace"
    other.mkdir(parents=True)
    (other / "notes.txt").write_text(DECOY_SECRET)
    yard.start()
    yield kind, yard, server
    yard.stop()


def test_the_agent_cannot_get_out_of_its_box(
    setup: tuple[str, RunYard, ModelServer], decoy: int
) -> None:
    kind, yard, server = setup
    assert yard.proc is not None
    steps = attacks(yard, yard.proc.pid, decoy)
    server.script = as_script(script(steps))  # the server's pid is known now
    payload = json.loads((SHARED / "github" / "issues.opened.json").read_text())

    task = yard.wait_task_end(yard.send_file("github", payload, "issues"), 150)

    # the model server was reached to the end: every turn, then the final answer
    assert task["status"] == "succeeded", task["reason"]
    assert task["result"] == RESULT
    runs = tool_runs(kind, server.turn_requests())
    assert [r.command for r in runs] == [s.command for s in steps] + [
        "echo inside > inside.txt && cat inside.txt"
    ]
    for step, run in zip(steps, runs, strict=False):
        if step.refused_inside:
            assert run.failed, f"{step.name} was not refused: {run.output}"
            assert re.search(step.refusal, run.output), f"{step.name}: {run.output}"
    assert not runs[-1].failed and "inside" in runs[-1].output  # the workspace is writable
    outputs = "\n".join(r.output for r in runs)
    for secret in (SECRET, DECOY_SECRET, "SQLite format"):
        assert secret not in outputs
    # and from the outside: nothing written, nothing reached
    assert not (yard.home / "pwned-by-agent").exists()
    kept = Path(task["workspace"])
    assert (kept / "workspace" / "inside.txt").read_text() == "inside\n"
    assert not (kept / "context" / "pwned-by-agent").exists()
    assert not Path("/usr/pwned-by-agent").exists()
    assert Decoy.hits == []
    # every refused attack is a failed tool call, counted with the task's usage
    assert task["usage"]["tool_calls"] == len(steps) + 1
    assert task["usage"]["tool_errors"] == sum(r.failed for r in runs)
    assert task["usage"]["tool_errors"] >= len([s for s in steps if s.refused_inside])


def test_a_run_whose_every_command_failed_does_not_pass(
    setup: tuple[str, RunYard, ModelServer],
) -> None:
    """The field symptom (every command failed, the task `succeeded` with 0 tool calls): the
    failed command is counted and the task fails, saying so."""
    kind, yard, server = setup
    turns = [{"shell": "ls /no-such-dir"}, {"final": RESULT}]
    server.script = as_script({"scripts": [{"turns": turns}]})
    payload = json.loads((SHARED / "github" / "issues.opened.json").read_text())

    task = yard.wait_task_end(yard.send_file("github", payload, "issues"), 150)

    assert task["status"] == "failed"
    assert task["reason"].startswith("every tool call failed (1 of 1): "), task["reason"]
    assert "ls /no-such-dir" in task["reason"]
    assert (task["usage"]["tool_calls"], task["usage"]["tool_errors"]) == (1, 1)
    metrics = httpx.get(f"{yard.url}/metrics", timeout=5).text
    assert re.search(
        rf'taskyard_agent_failures_total\{{agent="{kind}",reason="tools_failed"\}} 1\.0', metrics
    ), metrics[-2000:]
