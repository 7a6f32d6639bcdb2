"""The agent's box end to end: a real `taskyard serve` (runs.sandbox: bwrap), a `command` agent
that attacks it from inside, and a real scripted model server it must still reach.

Four tasks run on one server: a *holder* (does every attack, then keeps its workspace busy
until the test releases it), a *prober* (does every attack, and tries to read the holder's
workspace while it is live), a *bomb* (3 x 1.5 GB under runs.memory_bytes 2 GiB) and a
*link* (its result.json a symbolic link to a JSON credential of the server's). What to
attack comes in the Linear issue's description (the server's pid, the peer's path), so the
agent learns it the way an agent learns anything: from its prompt."""

from __future__ import annotations

import json
import secrets
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from taskyard.agents.cgroups import Mechanism, detect
from taskyard.agents.sandbox import bwrap_problem
from taskyard.devtools.model_server import ModelServer
from tests.acceptance.run_harness import RunYard, processes_with
from tests.acceptance.test_run_command import post_at_once
from tests.acceptance.test_serve import SECRET, wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(bwrap_problem() is not None, reason="needs bubblewrap"),
    pytest.mark.skipif(detect().mechanism is Mechanism.RLIMITS, reason="needs a memory cgroup"),
]

REFUSALS = {  # how a refused attack fails inside the box
    *("FileNotFoundError", "PermissionError", "OSError", "LookupError", "TimeoutError"),
    *("ConnectionRefusedError", "ConnectionResetError", "RemoteDisconnected"),
}
SCRIPT = {"scripts": [{"turns": [{"final": {"ok": True}}]}]}
LINEAR = Path(__file__).resolve().parents[3] / "shared/webhooks/linear/issue.create.json"

ATTACKER = r"""
import json, os, pathlib, re, socket, subprocess, sys, time, urllib.request
out = pathlib.Path(os.environ["OUTPUT_DIR"])
task_dir = out.parent
home = pathlib.Path(os.environ["ATTACK_HOME"])
prompt = pathlib.Path(os.environ["PROMPT_FILE"]).read_text()
def given(name):
    found = re.search(name + r"=([\w./-]+)", prompt)
    return found.group(1) if found else ""
mode = given("mode")
if mode == "bomb":
    bomb = ("import time; b = bytearray(1536 * 1024**2); b[::4096] = b'x' * len(b[::4096]); "
            "time.sleep(60)  # " + os.environ["MARKER"] + "-bomb")
    children = [subprocess.Popen([sys.executable, "-c", bomb]) for _ in range(3)]
    time.sleep(60)
    sys.exit(0)
if mode == "link":  # not readable in here, but taskyard reads result.json outside the box
    os.symlink(str(home / "credentials.json"), out / "result.json")
    sys.exit(0)
results = {}
def attempt(name, fn):
    try:
        results[name] = {"ok": True, "value": str(fn())[:300]}
    except Exception as exc:
        results[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
def read(path):
    return pathlib.Path(path).read_bytes()
def write(path):
    pathlib.Path(path).write_text("pwned")
    return path
def connect(host, port):
    with socket.create_connection((host, int(port)), timeout=3) as s:
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        return s.recv(100) or "connected"
def tunnel(target):
    with socket.create_connection(("127.0.0.1", 3128), timeout=5) as s:
        s.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
        first = s.recv(200).decode().split("\r\n")[0]
        if " 200 " not in first + " ":
            raise OSError(first)
        return first
def model():
    request = urllib.request.Request(os.environ["MODEL_URL"] + "/models")
    request.add_header("Authorization", "Bearer " + os.environ["AGENT_API_KEY"])
    try:
        return urllib.request.urlopen(request, timeout=10).status
    except urllib.error.HTTPError as exc:  # an answer from the model server all the same
        return exc.code
(pathlib.Path.cwd() / "notes.txt").write_text("holder's notes " + os.environ["TASK_ID"])
pid = given("server-pid")
attempt("server_environ", lambda: read(f"/proc/{pid}/environ"))
attempt("server_cmdline", lambda: read(f"/proc/{pid}/cmdline"))
attempt("database", lambda: read(home / "taskyard.db"))
attempt("config", lambda: read(home / "taskyard.yaml"))
attempt("server_log", lambda: read(home / "serve.log"))
if given("peer"):
    attempt("peer_workspace", lambda: read(given("peer")))
def others():
    found = [n for n in os.listdir(task_dir.parent) if n != task_dir.name]
    if not found:
        raise LookupError("no other task's directory in sight")
    return found
attempt("workspaces", others)
attempt("write_home", lambda: write(home / "pwned"))
attempt("write_task_dir", lambda: write(task_dir / "pwned"))
attempt("write_context", lambda: write(pathlib.Path(os.environ["CONTEXT_DIR"]) / "pwned"))
attempt("write_usr", lambda: write("/usr/pwned"))
attempt("postgres", lambda: connect("127.0.0.1", 5432))
attempt("other_server", lambda: connect("127.0.0.1", os.environ["OTHER_PORT"]))
attempt("other_via_proxy", lambda: tunnel("127.0.0.1:" + os.environ["OTHER_PORT"]))
attempt("postgres_via_proxy", lambda: tunnel("127.0.0.1:5432"))
attempt("far_away", lambda: connect("10.255.255.1", 80))
results["model"] = {"ok": True, "value": model()}  # must work: no attempt() around it
lasting = "import time; time.sleep(300)  # " + os.environ["MARKER"] + "-setsid"
subprocess.Popen(["setsid", sys.executable, "-c", lasting])  # outlives the agent
print("my key is " + os.environ["AGENT_API_KEY"], flush=True)
sys.stderr.write("stderr key " + os.environ["AGENT_API_KEY"] + "\n")
if mode == "hold":
    deadline = time.time() + 90
    while not (pathlib.Path.cwd() / "release").exists() and time.time() < deadline:
        time.sleep(0.1)
(out / "result.json").write_text(json.dumps({
    "success": True, "actions": [], "summary": mode,
    "analysis": json.dumps({"attacks": results, "env": dict(os.environ)}),
}))
"""


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest) -> str | None:
    return request.getfixturevalue("pg_url") if request.param == "postgres" else None


def _config(home: Path, env: dict[str, str], base_url: str, api_key: str) -> str:
    agent = {
        "kind": "command",
        "argv": [sys.executable, "-c", ATTACKER],
        "env": env,
        "api_key": api_key,
        "base_url": base_url,
    }
    return f"""
queue:
  polling_interval_sec: 0.05
runs:
  concurrency: 3
  timeout_seconds: 120
  kill_grace_seconds: 1
  sandbox: bwrap
  memory_bytes: {2 * 1024**3}
  address_space_bytes: 0
  keep_workspaces: true
agents:
  attacker: {json.dumps(agent)}
routes:
  - name: linear-triage
    on: ["linear:Issue.create"]
    agent: attacker
    prompt: linear-triage
log_level: INFO
"""


class Attack:
    """The server under attack and the deliveries that start each task."""

    def __init__(self, ty: RunYard) -> None:
        self.ty = ty
        self.count = 0

    def send(self, description: str) -> str:
        linear = json.loads(LINEAR.read_text())
        self.count += 1
        linear["data"]["id"] = f"issue-sandbox-{self.count}"
        linear["data"]["description"] = description
        linear["webhookTimestamp"] = int(time.time() * 1000)
        (event_id,) = post_at_once(self.ty, "linear", [json.dumps(linear).encode()])
        return event_id

    def running_task(self, event_id: str) -> dict[str, Any]:
        found: list[dict[str, Any]] = []

        def running() -> bool:
            found[:] = self.ty.tasks(event_id)
            return bool(found) and found[0]["status"] == "running"

        wait_for(running, 60, "the task to run")
        return found[0]


def _attacks(task: dict[str, Any]) -> dict[str, Any]:
    assert task["status"] == "succeeded", task
    return dict(json.loads(task["result"]["analysis"]))


def test_a_boxed_command_agent_cannot_reach_what_is_not_its_own(
    tmp_path: Path, db: str | None, model_server: Callable[[Any], ModelServer]
) -> None:
    allowed, other = model_server(SCRIPT), model_server(SCRIPT)
    marker = f"taskyard-sandbox-{secrets.token_hex(6)}"
    api_key = f"sk-agent-{secrets.token_hex(12)}"
    env = {"ATTACK_HOME": str(tmp_path), "MARKER": marker, "MODEL_URL": allowed.url}
    env["OTHER_PORT"] = other.url.split(":")[2].split("/")[0]
    credential = f"server-credential-{secrets.token_hex(8)}"  # a JSON file of the server's
    valid = {"success": True, "actions": [], "summary": "s", "analysis": credential}
    (tmp_path / "credentials.json").write_text(json.dumps(valid))
    ty = RunYard(tmp_path, db, "")
    ty.config.write_text(_config(tmp_path, env, allowed.url, api_key))
    ty.start()
    attack = Attack(ty)
    try:
        assert ty.proc is not None
        server = f"server-pid={ty.proc.pid}"
        assert SECRET.encode() in Path(f"/proc/{ty.proc.pid}/environ").read_bytes()
        holder = attack.running_task(attack.send(f"mode=hold {server}"))
        notes = Path(holder["workspace"], "workspace", "notes.txt")
        wait_for(notes.exists, 30, "the holder's notes")
        prober = ty.wait_task_end(attack.send(f"mode=probe {server} peer={notes}"), 90)
        assert notes.read_text().startswith("holder's notes")  # it was there all along
        (notes.parent / "release").write_text("go")
        holder = ty.wait_task_end(holder["event_id"], 60)
        bomb = ty.wait_task_end(attack.send("mode=bomb"), 90)
        link = ty.wait_task_end(attack.send("mode=link"), 60)
    finally:
        ty.stop()
    for task in (holder, prober):
        found = _attacks(task)
        worked = {k: r for k, r in found["attacks"].items() if r["ok"] and k != "model"}
        assert worked == {}, worked  # every attack failed
        how = {r["error"].split(":")[0] for k, r in found["attacks"].items() if k != "model"}
        assert how <= REFUSALS, how  # failed for the box, not for a bug of the script
        assert found["attacks"]["model"]["ok"] is True
        stored = [json.dumps(task), *_outputs(Path(task["workspace"]))]
        assert not any(SECRET in text for text in stored)  # the server's own secret
        assert not any(api_key in text for text in stored[1:])  # redacted where stored
        assert any("my key is" in text for text in stored[1:])  # it was printed, redacted
    assert "peer_workspace" in _attacks(prober)["attacks"]
    assert len([r for r in allowed.requests if r.path.endswith("/models")]) == 2
    assert other.requests == []
    assert not [p for p in ("pwned", "workspaces/pwned") if (tmp_path / p).exists()]
    targets = ["taskyard.yaml", "serve.log", *(["taskyard.db"] if db is None else [])]
    assert all((tmp_path / name).is_file() for name in targets)  # there to be read, outside
    assert bomb["status"] == "failed" and "memory limit of 2 GiB exceeded" in bomb["reason"]
    assert processes_with(marker) == []  # the setsid children and the bomb are gone
    assert link["status"] == "failed" and "symbolic link" in link["reason"], link
    assert credential not in json.dumps(link)


def _outputs(task_dir: Path) -> list[str]:
    outputs = task_dir / "outputs"
    return [(outputs / n).read_text(errors="replace") for n in ("log.jsonl", "stderr.log")]
