"""Attacks on taskyard itself from inside a real box (bubblewrap, cgroups, the egress proxy in
this process, as in `taskyard serve`): what the agent leaves behind or holds open must not
make taskyard read a server file for it, run out of descriptors or memory, or keep a
workspace it cannot remove."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from taskyard.agents.cgroups import Mechanism, detect
from taskyard.agents.egress import MAX_CONNECTIONS
from taskyard.agents.sandbox import bwrap_problem
from taskyard.agents.supervisor import RunStatus, supervise
from taskyard.devtools.model_server import ModelServer
from taskyard.run.tasklogs import TRUSTED_LOG, TaskLogs
from taskyard.tools import ToolBridge
from taskyard.tools.bridge import LINE_LIMIT
from taskyard.tools.bridge import MAX_CONNECTIONS as MAX_BRIDGE_CONNECTIONS
from tests.integration.test_sandbox import (
    SCRIPT,
    Tools,
    _processes_with,
    boxed,
    make_request,
    probe,
    python,
)
from tests.integration.test_sandbox import home as home  # the fixture

pytestmark = pytest.mark.skipif(bwrap_problem() is not None, reason="needs bubblewrap")


async def test_a_result_linked_to_a_server_file_is_not_read(home: Path) -> None:
    secret = home.parent / "service-account.json"  # a JSON secret of the server, outside
    secret.write_text('{"private_key": "server-secret-key"}')
    script = f"""
attempt("read", lambda: open("{secret}").read())  # not in sight inside the box
os.symlink("{secret}", out / "result.json")  # but taskyard, outside, would follow the link
"""
    request = make_request(home)
    report = await supervise(python(script), request, boxed(home))
    assert report.status is RunStatus.FAILED
    assert report.reason is not None and "symbolic link" in report.reason
    assert "server-secret-key" not in repr(report)


async def test_a_result_fifo_does_not_hang_taskyard(home: Path) -> None:
    request = make_request(home)
    script = 'os.mkfifo(out / "result.json")'
    report = await asyncio.wait_for(supervise(python(script), request, boxed(home)), 30)
    assert report.status is RunStatus.FAILED
    assert report.reason is not None and "not a regular file" in report.reason


async def test_a_connection_flood_costs_taskyard_a_bounded_number_of_descriptors(
    home: Path, model_server: Callable[[Any], ModelServer]
) -> None:
    server = model_server(SCRIPT)
    script = """
import resource, time
resource.setrlimit(resource.RLIMIT_NOFILE, (4096, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
held = []
def flood():
    for _ in range(2000):
        held.append(socket.create_connection(("127.0.0.1", 3128), timeout=5))
    return len(held)
attempt("flood", flood)
time.sleep(1)
(out / "result.json").write_text("{}")
"""
    before, peak = len(os.listdir("/proc/self/fd")), 0

    async def watch() -> None:
        nonlocal peak
        while True:
            peak = max(peak, len(os.listdir("/proc/self/fd")))
            await asyncio.sleep(0.05)

    watcher = asyncio.create_task(watch())
    try:
        report, found = await probe(home, script, base_url=server.url)
    finally:
        watcher.cancel()
    assert report.status is RunStatus.SUCCEEDED, report.reason
    assert "flood" in found
    assert peak - before < 2 * MAX_CONNECTIONS + 200, (before, peak)  # not 2,000


@pytest.mark.skipif(detect().mechanism is Mechanism.RLIMITS, reason="needs a memory cgroup")
async def test_filling_the_box_tmpfs_counts_against_the_memory_limit(home: Path) -> None:
    script = """
import time
chunk = b"x" * 1024**2
with open("/tmp/fill", "wb") as f:  # the box's private tmpfs: memory, not disk
    for _ in range(1024):
        f.write(chunk)
(out / "result.json").write_text("{}")
"""
    limits = replace(boxed(home, memory_bytes=256 * 1024**2), address_space_bytes=0)
    report = await supervise(python(script), make_request(home), limits)
    assert report.status is RunStatus.FAILED, report.reason
    assert report.reason is not None and "memory limit" in report.reason


def _git(*args: str, cwd: Path) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout.strip()


async def test_another_tasks_worktree_of_the_same_mirror_is_out_of_sight(home: Path) -> None:
    source = home.parent / "src"
    source.mkdir()
    _git("init", "-q", "-b", "main", cwd=source)
    (source / "app.py").write_text("print('hi')\n")
    _git("add", ".", cwd=source)
    _git("-c", "user.name=a", "-c", "user.email=a@b", "commit", "-qm", "first", cwd=source)
    mirror = home / "mirrors" / "acme" / "app.git"
    _git("clone", "-q", "--bare", str(source), str(mirror), cwd=home)
    other = make_request(home, "other")
    _git("worktree", "add", "--detach", "-q", str(other.workspace / "repo"), "HEAD", cwd=mirror)
    (mirror / "worktrees" / "repo" / "objects").mkdir()
    (mirror / "worktrees" / "repo" / "objects" / "other-task-secret").write_text("x")
    request = make_request(home)
    _git("worktree", "add", "--detach", "-q", str(request.workspace / "repo"), "HEAD", cwd=mirror)
    script = f"""
attempt("siblings", lambda: sorted(os.listdir("{mirror}/worktrees")))
attempt("other_objects", lambda: os.listdir("{mirror}/worktrees/repo/objects"))
def status():
    done = subprocess.run(["git", "-C", "repo", "status", "--porcelain"], capture_output=True,
                          text=True)
    if done.returncode:
        raise OSError(done.stderr.strip())
    return "clean" if not done.stdout.strip() else done.stdout
attempt("status", status)
"""
    _, found = await probe(home, script)
    assert found["siblings"] == {"ok": True, "value": "['repo1']"}  # its own only
    assert found["other_objects"]["ok"] is False
    assert found["status"] == {"ok": True, "value": "clean"}


def _rss_bytes() -> int:
    return int(Path("/proc/self/status").read_text().split("VmRSS:")[1].split()[0]) * 1024


async def test_a_tool_bridge_flood_costs_taskyard_bounded_memory(home: Path) -> None:
    request = make_request(home)
    socket_path = request.task_dir / "tools.sock"
    async with ToolBridge(Tools(), socket_path) as bridge:
        script = f"""
import time
held = []
def flood():  # 200 connections, each a request line just under the bridge's line limit
    for _ in range(200):
        s = socket.socket(socket.AF_UNIX)
        s.connect("{socket_path}")
        s.sendall(b"x" * ({LINE_LIMIT} - 10))
        held.append(s)
    return len(held)
attempt("flood", flood)
time.sleep(1)
(out / "result.json").write_text("{{}}")
"""
        before, peak = _rss_bytes(), 0

        async def watch() -> None:
            nonlocal peak
            while True:
                peak = max(peak, _rss_bytes())
                await asyncio.sleep(0.05)

        watcher = asyncio.create_task(watch())
        try:
            run = replace(request, mcp=bridge.mcp_launch())
            report = await supervise(python(script), run, boxed(home))
        finally:
            watcher.cancel()
    assert report.status is RunStatus.SUCCEEDED, report.reason
    assert bridge.overflowed > 0
    assert peak - before < 3 * MAX_BRIDGE_CONNECTIONS * LINE_LIMIT, (before, peak)  # not 800 MB


@pytest.mark.skipif(detect().mechanism is Mechanism.RLIMITS, reason="needs a pids cgroup")
async def test_a_fork_bomb_stops_at_the_task_process_limit_and_is_gone(home: Path) -> None:
    token = f"taskyard-forkbomb-{os.getpid()}-{time.monotonic_ns()}"
    script = f"""
import time
made, refused = 0, None
deadline = time.time() + 3
while time.time() < deadline and refused is None:
    try:
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)  # {token}"],
                         start_new_session=True)
        made += 1
    except OSError as exc:
        refused = type(exc).__name__
attempt("made", lambda: made)
attempt("refused", lambda: refused)
(out / "result.json").write_text("{{}}")
"""
    report, found = await probe(home, script, boxed(home, max_processes=40))
    assert report.status is RunStatus.SUCCEEDED, report.reason
    assert found["refused"]["value"] == "BlockingIOError"  # EAGAIN: the pids limit
    assert int(found["made"]["value"]) < 40
    assert _processes_with(token) == []


async def test_a_ptrace_stopped_box_init_times_out_and_leaves_nothing(home: Path) -> None:
    token = f"taskyard-ptrace-{os.getpid()}-{time.monotonic_ns()}"
    script = f"""
import ctypes, time
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)  # {token}"],
                 start_new_session=True)
attempt("attach", lambda: ctypes.CDLL(None).ptrace(16, 1, 0, 0))  # PTRACE_ATTACH bwrap's init
time.sleep(0.5)
(out / "result.json").write_text("{{}}")
"""
    limits = replace(boxed(home), timeout_seconds=3)
    report = await supervise(python(script), make_request(home), limits)
    assert report.status is RunStatus.TIMED_OUT  # its own run, stopped: nothing else
    assert _processes_with(token) == []


async def test_no_descriptor_and_no_abstract_socket_of_taskyards_is_in_reach(home: Path) -> None:
    name = f"taskyard-abstract-{os.getpid()}-{time.monotonic_ns()}"
    listener = socket.socket(socket.AF_UNIX)  # an abstract socket in taskyard's namespace
    listener.bind("\0" + name)
    listener.listen()
    opened = os.open(home / "taskyard.db", os.O_RDONLY)  # inheritable in this process
    os.set_inheritable(opened, True)
    script = f"""
attempt("fds", lambda: sorted(int(fd) for fd in os.listdir("/proc/self/fd")))
def abstract():
    with socket.socket(socket.AF_UNIX) as s:
        s.connect("\\0{name}")
attempt("abstract", abstract)
(out / "result.json").write_text("{{}}")
"""
    try:
        _, found = await probe(home, script)
    finally:
        os.close(opened)
        listener.close()
    assert found["fds"]["value"] == "[0, 1, 2, 3]"  # stdio, and listdir's own
    assert found["abstract"]["ok"] is False and "ConnectionRefused" in found["abstract"]["error"]


async def test_the_kept_log_is_what_the_agent_printed_not_what_it_rewrote(home: Path) -> None:
    script = f"""
print("genuine: the agent ran rm -rf /", flush=True)
import time
time.sleep(0.3)  # the line is in the log by now
log = out / "log.jsonl"
log.unlink()
log.write_text('{{"text": "forged: the agent only read files"}}\\n')
attempt("trusted", lambda: open("{home}/workspaces/task-t1/{TRUSTED_LOG}", "w"))
(out / "result.json").write_text("{{}}")
"""
    report, found = await probe(home, script)
    assert report.status is RunStatus.SUCCEEDED, report.reason
    assert found["trusted"]["ok"] is False  # read-only in the box
    logs = TaskLogs(home / "logs")
    kept = logs.keep("t1", home / "workspaces" / "task-t1")
    assert kept is not None
    text = kept.read_text()
    assert "genuine: the agent ran rm -rf /" in text and "forged" not in text
