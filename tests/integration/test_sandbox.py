"""The agent's box with real bubblewrap, real cgroups and a real scripted model server: each
attack of an agent on taskyard fails, and what the agent needs (model server, git worktree,
MCP tools) still works. Each probe is a Python script run as a `command` agent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from taskyard.agents.base import AgentRequest
from taskyard.agents.cgroups import Mechanism, detect
from taskyard.agents.command import CommandAdapter
from taskyard.agents.netns import NetGate, netns_usable
from taskyard.agents.sandbox import SandboxSettings, bwrap_problem
from taskyard.agents.supervisor import Limits, RunReport, RunStatus, build_env, supervise
from taskyard.config import AgentConfig
from taskyard.devtools.model_server import ModelServer
from taskyard.tools import ToolAnswer, ToolBridge
from taskyard.tools.base import ToolSpec

pytestmark = pytest.mark.skipif(bwrap_problem() is not None, reason="needs bubblewrap")

LIMITS = Limits(timeout_seconds=60, kill_grace_seconds=0.5)
SCRIPT = {"scripts": [{"turns": [{"final": {"ok": True}}]}]}
PROBE = """
import json, os, pathlib, socket, subprocess, sys
out = pathlib.Path(os.environ["OUTPUT_DIR"])
def attempt(name, fn):
    try:
        value = fn()
        results[name] = {"ok": True, "value": str(value)[:300]}
    except Exception as exc:
        results[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
results = {}
"""
END = '\n(out / "probe.json").write_text(json.dumps(results))\n'


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A $TASKYARD_HOME with a database, a log and another task's workspace in it."""
    home = tmp_path / "home"
    (home / "workspaces" / "task-other" / "workspace").mkdir(parents=True)
    (home / "workspaces" / "task-other" / "workspace" / "notes.txt").write_text("other's")
    (home / "taskyard.db").write_text("SQLite format 3 secret rows")
    (home / "logs").mkdir()
    return home


def make_request(home: Path, task_id: str = "t1") -> AgentRequest:
    task_dir = home / "workspaces" / f"task-{task_id}"
    for name in ("workspace", "context", "prompts", "outputs"):
        (task_dir / name).mkdir(parents=True, exist_ok=True)
    prompt = task_dir / "prompts" / "main.md"
    prompt.write_text("probe\n")
    request = AgentRequest(
        task_id=task_id,
        task_dir=task_dir,
        workspace=task_dir / "workspace",
        context_dir=task_dir / "context",
        output_dir=task_dir / "outputs",
        prompt_file=prompt,
        result_schema={},
    )
    return replace(request, base_env=build_env(("PATH", "LANG"), os.environ, request))


def boxed(home: Path, **changes: Any) -> Limits:
    """The box as the executor makes it: $TASKYARD_HOME hidden. Its parent is read-only
    bound on purpose, as an operator's `sandbox_read_only` could: the mask must hold."""
    sandbox = SandboxSettings(hidden=(home,), read_only=(home.parent,))
    return replace(LIMITS, sandbox=replace(sandbox, **changes))


def python(script: str, **config: Any) -> CommandAdapter:
    argv = (sys.executable, "-c", PROBE + script + END)
    return CommandAdapter(AgentConfig(kind="command", argv=argv, **config))


async def probe(
    home: Path, script: str, limits: Limits | None = None, **config: Any
) -> tuple[RunReport, dict[str, Any]]:
    request = make_request(home)
    report = await supervise(python(script, **config), request, limits or boxed(home))
    found = request.output_dir / "probe.json"
    assert found.exists(), f"{report.reason}\n{report.stderr_tail}"
    return report, json.loads(found.read_text())


@pytest.fixture
def server_process() -> Iterator[subprocess.Popen[bytes]]:
    """A process with a secret in its environment, as taskyard's server has."""
    env = {"PATH": os.environ["PATH"], "TASKYARD_GITHUB_TOKEN": "ghp_server_secret"}
    proc = subprocess.Popen(["sleep", "120"], env=env)
    yield proc
    proc.kill()
    proc.wait()


async def test_the_servers_proc_environ_cannot_be_read(
    home: Path, server_process: subprocess.Popen[bytes]
) -> None:
    pid = server_process.pid
    assert b"ghp_server_secret" in Path(f"/proc/{pid}/environ").read_bytes()  # it is there
    script = f"""
attempt("environ", lambda: open("/proc/{pid}/environ", "rb").read())
attempt("parent", lambda: open("/proc/{os.getpid()}/environ", "rb").read())
attempt("pids", lambda: sorted(int(p) for p in os.listdir("/proc") if p.isdigit()))
"""
    report, found = await probe(home, script)
    assert report.status is RunStatus.FAILED  # no result.json: the probe only looks
    assert found["environ"]["ok"] is False and "ghp_server_secret" not in str(found)
    assert found["parent"]["ok"] is False
    assert max(json.loads(found["pids"]["value"])) < 10  # only the box's own processes


async def test_taskyard_home_and_other_tasks_cannot_be_read(home: Path) -> None:
    script = f"""
attempt("db", lambda: open("{home}/taskyard.db").read())
attempt("other", lambda: open("{home}/workspaces/task-other/workspace/notes.txt").read())
attempt("listing", lambda: os.listdir("{home}/workspaces"))
attempt("own", lambda: open(os.environ["PROMPT_FILE"]).read())
"""
    _, found = await probe(home, script)
    assert found["db"]["ok"] is False and "secret rows" not in str(found)
    assert found["other"]["ok"] is False and "other's" not in str(found)
    assert "task-other" not in found["listing"].get("value", "")
    assert found["own"] == {"ok": True, "value": "probe\n"}


async def test_nothing_outside_the_workspace_can_be_written(home: Path) -> None:
    script = f"""
def write(path):
    pathlib.Path(path).write_text("x")
    return path
attempt("workspace", lambda: write("./made.txt"))
attempt("outputs", lambda: write(os.environ["OUTPUT_DIR"] + "/made.txt"))
attempt("home", lambda: write(os.environ["HOME"] + "/made.txt"))
attempt("tmp", lambda: write("/tmp/made.txt"))
attempt("context", lambda: write(os.environ["CONTEXT_DIR"] + "/made.txt"))
attempt("task_dir", lambda: write("{home}/workspaces/task-t1/made.txt"))
attempt("bound_parent", lambda: write("{home.parent}/made.txt"))
attempt("taskyard_home", lambda: write("{home}/made.txt"))  # even the box's mask of it
attempt("workspace_root", lambda: write("{home}/workspaces/made.txt"))
attempt("usr", lambda: write("/usr/made.txt"))
attempt("root", lambda: write("/made.txt"))
attempt("python", lambda: write(os.path.dirname(os.__file__) + "/made.py"))
"""
    _, found = await probe(home, script)
    allowed = {"workspace", "outputs", "home", "tmp"}
    assert {name for name, r in found.items() if r["ok"]} == allowed, found
    task = home / "workspaces" / "task-t1"
    assert (task / "workspace" / "made.txt").exists()
    assert not (task / "context" / "made.txt").exists()
    assert not (home.parent / "made.txt").exists()
    assert not Path("/tmp/made.txt").exists()  # the box's /tmp is its own


async def test_postgres_and_other_addresses_cannot_be_reached(home: Path) -> None:
    other = ModelServer(SCRIPT)  # a server on this machine, not allowlisted
    with other:
        port = int(other.url.rsplit(":", 1)[1].split("/")[0])
        script = f"""
def connect(host, port):
    with socket.create_connection((host, port), timeout=3):
        return "connected"
attempt("postgres", lambda: connect("127.0.0.1", 5432))
attempt("other", lambda: connect("127.0.0.1", {port}))
attempt("remote", lambda: connect("10.255.255.1", 80))
attempt("ipv6", lambda: connect("::1", 5432))
"""
        _, found = await probe(home, script)
    assert all(r["ok"] is False for r in found.values()), found
    assert other.requests == []


@pytest.fixture(params=["netns", "relay"])
def egress_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways into the box: listeners taskyard makes in the box's network namespace (as
    root), and the in-box relay (what a taskyard without CAP_SYS_ADMIN falls back to)."""
    if request.param == "relay":
        monkeypatch.setattr(NetGate, "open", classmethod(lambda cls: None))
    elif not netns_usable():
        pytest.skip("cannot enter a network namespace here (needs CAP_SYS_ADMIN)")
    return str(request.param)


async def test_the_model_server_is_reached_and_nothing_else_through_the_proxy(
    home: Path, model_server: Callable[[Any], ModelServer], egress_path: str
) -> None:
    server = model_server(SCRIPT)
    base = server.url  # http://127.0.0.1:PORT/v1 as the agent's config says
    script = f"""
import urllib.request
def get(url, proxy=None):
    handler = urllib.request.ProxyHandler({{"http": proxy}} if proxy else {{}})
    opener = urllib.request.build_opener(handler)
    try:
        return opener.open(url, timeout=5).status
    except urllib.error.HTTPError as exc:
        return exc.code
attempt("model", lambda: get("{base}/models"))
def tunnel(target):
    with socket.create_connection(("127.0.0.1", 3128), timeout=5) as s:
        s.sendall(f"CONNECT {{target}} HTTP/1.1\\r\\nHost: {{target}}\\r\\n\\r\\n".encode())
        answer = s.recv(200).decode()
        if " 200 " not in answer.split("\\r\\n")[0] + " ":
            raise OSError(answer.split("\\r\\n")[0])
        return answer
attempt("connect_db", lambda: tunnel("127.0.0.1:5432"))
attempt("connect_far", lambda: tunnel("example.com:443"))
attempt("env", lambda: os.environ.get("HTTPS_PROXY"))
def relays():
    found = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        args = open(f"/proc/{{pid}}/cmdline", "rb").read().split(b"\\0")
        found += args[1:3] == [b"-I", b"-S"] and args[3:4] != [] and args[3].endswith(b"/relay.py")
    return found
attempt("relays", relays)
"""
    _, found = await probe(home, script, base_url=base)
    assert found["model"]["ok"] is True and found["model"]["value"] != "", found
    assert any(r.path.endswith("/models") for r in server.requests)
    assert found["connect_db"]["ok"] is False and "403" in found["connect_db"]["error"]
    assert found["connect_far"]["ok"] is False and "403" in found["connect_far"]["error"]
    assert found["env"]["value"] == "http://127.0.0.1:3128"
    assert found["relays"]["value"] == ("1" if egress_path == "relay" else "0")


@pytest.mark.skipif(not netns_usable(), reason="needs CAP_SYS_ADMIN")
async def test_without_its_listeners_the_agent_still_runs_and_reaches_nothing(
    home: Path, model_server: Callable[[Any], ModelServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """If taskyard cannot make the box's listeners, the agent runs (the gate opens at the
    end) and its connections are refused: a failure never gives it more network."""

    async def broken(self: NetGate, ports: list[int]) -> list[Any]:
        raise OSError("no listeners today")

    monkeypatch.setattr(NetGate, "listen", broken)
    server = model_server(SCRIPT)
    port = int(server.url.rsplit(":", 1)[1].split("/")[0])
    script = f"""
attempt("model", lambda: socket.create_connection(("127.0.0.1", {port}), timeout=3))
(out / "result.json").write_text("{{}}")
"""
    report, found = await probe(home, script, base_url=server.url)
    assert report.status is RunStatus.SUCCEEDED, report.reason
    assert found["model"]["ok"] is False and "refused" in found["model"]["error"].lower()
    assert server.requests == []


def _processes_with(token: str) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if token.encode() in Path(f"/proc/{name}/cmdline").read_bytes():
                    state = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()[0]
                    if state != "Z":
                        found.append(int(name))
            except OSError:
                continue
    return found


async def test_a_setsid_child_is_gone_when_the_run_ends(home: Path) -> None:
    token = f"taskyard-setsid-{os.getpid()}-{time.monotonic_ns()}"
    script = f"""
import time
# python -c keeps the token in its command line (a shell's `exec sleep # token` would not)
lasting = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)"
subprocess.Popen(["setsid", sys.executable, "-c", lasting + "  # {token}"])
subprocess.Popen([sys.executable, "-c", lasting + "  # {token}"], start_new_session=True)
def running():
    found = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:  # the children only: the agent's and bwrap's command lines hold the token too
            found += open(f"/proc/{{pid}}/cmdline", "rb").read().endswith(b"# {token}\\0")
        except OSError:
            pass
    return found
deadline = time.time() + 20
while running() < 2 and time.time() < deadline:
    time.sleep(0.05)
attempt("running", running)
(out / "result.json").write_text("{{}}")
"""
    report, found = await probe(home, script)
    assert report.status is RunStatus.SUCCEEDED, report.reason
    assert found["running"] == {"ok": True, "value": "2"}  # both outlived their parent's exit
    assert _processes_with(token) == []


@pytest.mark.skipif(detect().mechanism is Mechanism.RLIMITS, reason="needs a memory cgroup")
async def test_a_three_process_memory_bomb_is_stopped(home: Path) -> None:
    script = """
import time
children = [subprocess.Popen([sys.executable, "-c",
    "import time; b = bytearray(1536 * 1024**2); b[::4096] = b'x' * len(b[::4096]); "
    "time.sleep(60)"]) for _ in range(3)]
time.sleep(60)
"""
    limits = boxed(home, memory_bytes=2 * 1024**3)
    limits = replace(limits, address_space_bytes=0)
    began = time.monotonic()
    report = await supervise(python(script), make_request(home), limits)
    assert time.monotonic() - began < 40
    assert report.status is RunStatus.FAILED
    assert report.reason is not None and "memory limit of 2 GiB exceeded" in report.reason
    assert report.stopped_by == "memory"
    assert _processes_with("bytearray(1536") == []


def git(*args: str, cwd: Path) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout.strip()


async def test_git_works_in_the_worktree_and_the_mirror_stays_read_only(home: Path) -> None:
    source = home.parent / "src"
    source.mkdir()
    git("init", "-q", "-b", "main", cwd=source)
    (source / "app.py").write_text("print('hi')\n")
    git("add", ".", cwd=source)
    git("-c", "user.name=a", "-c", "user.email=a@b", "commit", "-qm", "first", cwd=source)
    mirror = home / "mirrors" / "acme" / "app.git"
    git("clone", "-q", "--bare", str(source), str(mirror), cwd=home)
    request = make_request(home)
    git("worktree", "add", "--detach", "-q", str(request.workspace / "repo"), "HEAD", cwd=mirror)
    refs_before = git("for-each-ref", cwd=mirror)
    script = f"""
def run(*args):
    done = subprocess.run(["git", "-C", "repo", *args], capture_output=True, text=True)
    if done.returncode:
        raise OSError(done.stderr.strip())
    return done.stdout.strip()
pathlib.Path("repo/app.py").write_text("print('changed')\\n")
attempt("status", lambda: run("status", "--porcelain"))
attempt("add", lambda: run("add", "app.py"))
attempt("commit", lambda: run("-c", "user.name=agent", "-c", "user.email=a@b",
                              "commit", "-qm", "agent change"))
attempt("log", lambda: run("log", "--format=%s"))
attempt("objects", lambda: open("{mirror}/objects/made", "w").write("x"))
attempt("config", lambda: open("{mirror}/config", "a").write("[core]\\n"))
attempt("branch", lambda: run("branch", "evil"))
"""
    _, found = await probe(home, script)
    assert found["status"] == {"ok": True, "value": "M app.py"}
    assert found["add"]["ok"] and found["commit"]["ok"], found
    assert found["log"]["value"].splitlines() == ["agent change", "first"]
    for name in ("objects", "config", "branch"):
        assert found[name]["ok"] is False, found[name]
    assert git("for-each-ref", cwd=mirror) == refs_before  # no ref written in the mirror
    assert not (mirror / "objects" / "made").exists()


class Tools:
    def tools(self) -> list[ToolSpec]:
        return [ToolSpec("whoami", "says hello")]

    async def call(self, name: str, arguments: dict[str, Any]) -> ToolAnswer:
        return ToolAnswer(True, "hello from taskyard")


async def test_the_mcp_bridge_answers_from_inside_the_box(home: Path) -> None:
    request = make_request(home)
    async with ToolBridge(Tools(), request.task_dir / "tools.sock") as bridge:
        launch = bridge.mcp_launch()
        script = f"""
import asyncio
from mcp import Client
from mcp.client.stdio import StdioServerParameters
async def main():
    params = StdioServerParameters(command={launch.command!r}, args={list(launch.args)!r})
    async with Client(params) as client:
        answer = await client.call_tool("whoami", {{}})
        return answer.content[0].text
attempt("tool", lambda: asyncio.run(main()))
"""
        request = replace(request, mcp=launch)
        report = await supervise(python(script), request, boxed(home))
        found = json.loads((request.output_dir / "probe.json").read_text())
        assert found["tool"] == {"ok": True, "value": "hello from taskyard"}, report.stderr_tail
        assert bridge.peers  # the peer-uid check let the boxed process in
