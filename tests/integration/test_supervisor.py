"""The supervisor against real processes: timeouts, kills, limits, crash safety, streaming."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from taskyard.agents.base import AgentRequest
from taskyard.agents.command import CommandAdapter
from taskyard.agents.process import group_members, read_stat
from taskyard.agents.sandbox import SandboxMode, SandboxSettings
from taskyard.agents.supervisor import (
    Limits,
    ProcessRecord,
    RunStatus,
    build_env,
    kill_stale_group,
    supervise,
)
from taskyard.config import AgentConfig

REPO = Path(__file__).resolve().parents[2]
FAST = Limits(timeout_seconds=30, kill_grace_seconds=0.5, max_tool_calls=50)  # in the box
# Tests of process-group mechanics compare the pids a script prints ($$, $!) with ours: those
# are namespace-local in the box, so they run unboxed (tests/integration/test_sandbox.py checks
# the same ends inside it).
UNBOXED = replace(FAST, sandbox=SandboxSettings(mode=SandboxMode.NONE))


def make_request(root: Path, task_id: str = "t1") -> AgentRequest:
    task_dir = root / f"task-{task_id}"
    for name in ("workspace", "context", "prompts", "outputs"):
        (task_dir / name).mkdir(parents=True, exist_ok=True)
    prompt = task_dir / "prompts" / "main.md"
    prompt.write_text("do the thing\n")
    request = AgentRequest(
        task_id=task_id,
        task_dir=task_dir,
        workspace=task_dir / "workspace",
        context_dir=task_dir / "context",
        output_dir=task_dir / "outputs",
        prompt_file=prompt,
        result_schema={},
    )
    return replace(request, base_env=build_env(("PATH",), os.environ, request))


def sh(script: str) -> CommandAdapter:
    return CommandAdapter(AgentConfig(kind="command", argv=("sh", "-c", script)))


def alive(pid: int) -> bool:
    """Running (or stopped); a zombie or a vanished pid is dead."""
    stat = read_stat(pid)
    return stat is not None and stat.state != "Z"


def wait_until(check: Callable[[], bool], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


async def wait_for_file(path: Path, lines: int = 1, seconds: float = 10.0) -> list[str]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists():
            found = path.read_text().splitlines()
            if len(found) >= lines:
                return found
        await asyncio.sleep(0.02)
    raise AssertionError(f"{path} never had {lines} lines")


def pids_in(path: Path) -> list[int]:
    return [int(line.split()[-1]) for line in path.read_text().splitlines()]


def tagged_pids(path: Path) -> dict[str, int]:
    return {tag: int(pid) for tag, pid in (line.split() for line in path.read_text().splitlines())}


# A tree: the leader, a plain background sleep, and a grandchild that ignores SIGTERM.
TREE = (
    'echo "leader $$" > "$OUTPUT_DIR/pids"; '
    'sh -c \'trap "" TERM; echo "ignores $$" >> "$OUTPUT_DIR/pids"; exec sleep 300\' & '
    'sleep 300 & echo "plain $!" >> "$OUTPUT_DIR/pids"; wait'
)


async def test_a_hung_agent_is_timed_out_and_its_whole_tree_killed(tmp_path: Path) -> None:
    request = make_request(tmp_path)
    limits = replace(UNBOXED, timeout_seconds=1, kill_grace_seconds=0.5)
    began = time.monotonic()
    report = await supervise(sh(TREE), request, limits)
    took = time.monotonic() - began
    assert report.status is RunStatus.TIMED_OUT
    assert report.reason == "timed out after 1 s"
    assert report.stopped_by == "timeout"
    assert report.outcome is None
    pids = pids_in(request.output_dir / "pids")
    assert len(pids) == 3
    assert [p for p in pids if alive(p)] == []
    assert report.pgid is not None and group_members(report.pgid) == []
    assert 1.4 <= took < 10  # the TERM-ignoring grandchild needed the KILL after the grace


async def test_a_crashing_agent_fails_with_exit_code_and_stderr(tmp_path: Path) -> None:
    request = make_request(tmp_path)
    script = 'echo "disk on fire" >&2; echo "second line" >&2; exit 3'
    report = await supervise(sh(script), request, FAST)
    assert report.status is RunStatus.FAILED
    assert report.exit_code == 3
    assert report.reason is not None
    assert "exited 3" in report.reason
    assert "disk on fire" in report.reason and "second line" in report.reason
    assert report.stopped_by is None
    assert "disk on fire" in (request.output_dir / "stderr.log").read_text()


async def test_stderr_tail_keeps_the_end_of_a_long_stderr(tmp_path: Path) -> None:
    request = make_request(tmp_path)
    script = "i=0; while [ $i -lt 2000 ]; do echo noise-$i >&2; i=$((i+1)); done; exit 1"
    report = await supervise(sh(script), request, FAST)
    assert report.status is RunStatus.FAILED
    assert "noise-1999" in report.stderr_tail
    assert "noise-0\n" not in report.stderr_tail
    assert len(report.stderr_tail) <= 4096
    assert "noise-0\n" in (request.output_dir / "stderr.log").read_text()


async def test_tool_call_budget_stops_the_agent(tmp_path: Path) -> None:
    request = make_request(tmp_path)
    script = (
        'echo $$ > "$OUTPUT_DIR/pids"; '
        'for i in 1 2 3 4 5 6 7 8 9 10; do echo \'{"type": "tool_call"}\'; done; '
        "exec sleep 300"
    )
    began = time.monotonic()
    report = await supervise(sh(script), request, replace(UNBOXED, max_tool_calls=3))
    assert time.monotonic() - began < 10
    assert report.status is RunStatus.FAILED
    assert report.reason == "tool-call budget of 3 exceeded"
    assert report.stopped_by == "tool_budget"
    assert report.tool_calls > 3
    assert not alive(pids_in(request.output_dir / "pids")[0])
    assert report.pgid is not None and group_members(report.pgid) == []


async def test_background_children_of_a_finished_agent_are_killed(tmp_path: Path) -> None:
    request = make_request(tmp_path)
    script = 'sleep 300 & echo $! > "$OUTPUT_DIR/pids"; echo "{}" > "$OUTPUT_DIR/result.json"'
    began = time.monotonic()
    report = await supervise(sh(script), request, UNBOXED)
    assert report.status is RunStatus.SUCCEEDED
    assert time.monotonic() - began < 5
    assert not alive(pids_in(request.output_dir / "pids")[0])


async def test_address_space_limit_makes_a_big_allocation_fail(tmp_path: Path) -> None:
    request = make_request(tmp_path)
    adapter = CommandAdapter(
        AgentConfig(kind="command", argv=(sys.executable, "-c", "bytearray(3 * 1024**3)"))
    )
    report = await supervise(adapter, request, replace(FAST, address_space_bytes=2 * 1024**3))
    assert report.status is RunStatus.FAILED
    assert report.reason is not None and "MemoryError" in report.reason


@pytest.mark.parametrize(
    ("space", "cpu", "expected"),
    [(2 * 1024**3, 600, ["2097152", "600"]), (0, 0, ["unlimited", "unlimited"])],
)
async def test_the_child_sees_the_configured_ulimits(
    tmp_path: Path, space: int, cpu: int, expected: list[str]
) -> None:
    request = make_request(tmp_path)
    script = 'ulimit -v > "$OUTPUT_DIR/limits"; ulimit -t >> "$OUTPUT_DIR/limits"'
    limits = replace(FAST, address_space_bytes=space, cpu_seconds=cpu)
    await supervise(sh(script), request, limits)
    assert (request.output_dir / "limits").read_text().split() == expected


async def test_cpu_limit_stops_a_busy_loop(tmp_path: Path) -> None:
    request = make_request(tmp_path)
    adapter = CommandAdapter(
        AgentConfig(kind="command", argv=(sys.executable, "-c", "while True: pass"))
    )
    report = await supervise(adapter, request, replace(FAST, cpu_seconds=1))
    assert report.status is RunStatus.FAILED
    assert report.exit_code == -signal.SIGXCPU
    assert report.reason is not None and "SIGXCPU" in report.reason


async def test_log_jsonl_is_written_while_the_agent_runs(tmp_path: Path) -> None:
    request = make_request(tmp_path)
    go = request.output_dir / "go"
    script = (
        'echo \'{"type": "message", "text": "hi"}\'; echo plain words; '
        f'while [ ! -e "{go}" ]; do sleep 0.05; done; '
        'echo "{}" > "$OUTPUT_DIR/result.json"'
    )
    run = asyncio.create_task(supervise(sh(script), request, FAST))
    lines = await wait_for_file(request.output_dir / "log.jsonl", lines=2)
    assert not run.done()
    assert lines[0] == '{"type": "message", "text": "hi"}'
    assert json.loads(lines[1]) == {"stream": "stdout", "text": "plain words"}
    go.touch()
    report = await run
    assert report.status is RunStatus.SUCCEEDED
    last = json.loads((request.output_dir / "log.jsonl").read_text().splitlines()[-1])
    assert last["stream"] == "taskyard" and last["status"] == "succeeded"


async def test_a_very_long_stdout_line_stays_one_log_line(tmp_path: Path) -> None:
    request = make_request(tmp_path)
    program = (
        "import json, os; print(json.dumps({'type': 'message', 'text': 'x' * 300000})); "
        "open(os.environ['OUTPUT_DIR'] + '/result.json', 'w').write('{}')"
    )
    adapter = CommandAdapter(AgentConfig(kind="command", argv=(sys.executable, "-c", program)))
    report = await supervise(adapter, request, FAST)
    assert report.status is RunStatus.SUCCEEDED
    first = (request.output_dir / "log.jsonl").read_text().splitlines()[0]
    assert json.loads(first)["text"] == "x" * 300000


async def test_cancel_event_stops_the_agent(tmp_path: Path) -> None:
    request = make_request(tmp_path)
    cancel = asyncio.Event()
    records: list[ProcessRecord] = []

    async def spawned(record: ProcessRecord) -> None:
        records.append(record)
        asyncio.get_running_loop().call_later(0.3, cancel.set)

    report = await supervise(sh("exec sleep 300"), request, FAST, on_spawn=spawned, cancel=cancel)
    assert report.status is RunStatus.CANCELLED
    assert report.reason == "cancelled"
    assert report.stopped_by == "cancelled"
    assert not alive(records[0].pid)


async def test_cancelling_the_caller_kills_the_group_then_reraises(tmp_path: Path) -> None:
    request = make_request(tmp_path)
    limits = replace(UNBOXED, kill_grace_seconds=0.3)
    run = asyncio.create_task(supervise(sh(TREE), request, limits))
    await wait_for_file(request.output_dir / "pids", lines=3)
    pids = pids_in(request.output_dir / "pids")
    assert all(alive(p) for p in pids)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert [p for p in pids if alive(p)] == []


async def test_cancelling_the_caller_during_the_kill_grace_period_kills_the_group(
    tmp_path: Path,
) -> None:
    request = make_request(tmp_path)
    limits = replace(UNBOXED, timeout_seconds=0.5, kill_grace_seconds=3)
    run = asyncio.create_task(supervise(sh(TREE), request, limits))
    await wait_for_file(request.output_dir / "pids", lines=3)
    pids = tagged_pids(request.output_dir / "pids")
    leader, ignores_term, plain = pids["leader"], pids["ignores"], pids["plain"]
    for _ in range(500):  # until the timeout's SIGTERM has done what it can
        if not alive(plain) and not alive(leader):
            break
        await asyncio.sleep(0.01)
    assert alive(ignores_term) and not run.done()  # inside the grace period
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert not alive(ignores_term)


async def test_a_failing_on_spawn_leaves_no_process(tmp_path: Path) -> None:
    request = make_request(tmp_path)
    records: list[ProcessRecord] = []

    async def spawned(record: ProcessRecord) -> None:
        records.append(record)
        raise RuntimeError("store is down")

    with pytest.raises(RuntimeError, match="store is down"):
        await supervise(sh("exec sleep 300"), request, FAST, on_spawn=spawned)
    assert not alive(records[0].pid)


async def test_an_agent_that_cannot_start_is_a_failed_run(tmp_path: Path) -> None:
    request = make_request(tmp_path)
    adapter = CommandAdapter(AgentConfig(kind="command", argv=("/nonexistent/agent",)))
    report = await supervise(adapter, request, FAST)
    assert report.status is RunStatus.FAILED
    assert report.exit_code is None
    assert report.reason is not None and "could not start the agent" in report.reason


async def test_the_spawn_record_identifies_the_leader(tmp_path: Path) -> None:
    request = make_request(tmp_path)
    seen: list[tuple[ProcessRecord, list[int]]] = []
    cancel = asyncio.Event()

    async def spawned(record: ProcessRecord) -> None:
        seen.append((record, group_members(record.pgid)))
        cancel.set()

    await supervise(sh("exec sleep 300"), request, FAST, on_spawn=spawned, cancel=cancel)
    record, members = seen[0]
    assert record.pid == record.pgid
    assert record.pid in members
    assert record.start_time > 0
    assert record.boot_id == Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    assert ProcessRecord.from_json(json.loads(json.dumps(record.to_json()))) == record


# --- crash safety: a supervising process killed with SIGKILL ---------------------------------

HARNESS = """
import asyncio, json, os, sys
from dataclasses import replace
from pathlib import Path
from taskyard.agents.base import AgentRequest
from taskyard.agents.command import CommandAdapter
from taskyard.agents.sandbox import SandboxMode, SandboxSettings
from taskyard.agents.supervisor import Limits, build_env, supervise
from taskyard.config import AgentConfig

root, script, mode = Path(sys.argv[1]), sys.argv[2], SandboxMode(sys.argv[3])
task = root / "task-x"
for name in ("workspace", "context", "prompts", "outputs"):
    (task / name).mkdir(parents=True, exist_ok=True)
(task / "prompts" / "p.md").write_text("x")
request = AgentRequest("x", task, task / "workspace", task / "context", task / "outputs",
                       task / "prompts" / "p.md", {})
request = replace(request, base_env=build_env(("PATH",), os.environ, request))

async def spawned(record):
    (root / "record.tmp").write_text(json.dumps(record.to_json()))
    (root / "record.tmp").rename(root / "record.json")

adapter = CommandAdapter(AgentConfig(kind="command", argv=("sh", "-c", script)))
limits = Limits(timeout_seconds=300, sandbox=SandboxSettings(mode=mode))
asyncio.run(supervise(adapter, request, limits, on_spawn=spawned))
"""


@pytest.fixture
def crashed_supervisor(tmp_path: Path) -> Iterator[Callable[..., ProcessRecord]]:
    """Starts a supervising process for a script, waits for its record, kills it -9."""
    harness = tmp_path / "harness.py"
    harness.write_text(HARNESS)
    started: list[subprocess.Popen[bytes]] = []

    def crash(script: str, mode: str = "auto") -> ProcessRecord:
        argv = [sys.executable, str(harness), str(tmp_path), script, mode]
        proc = subprocess.Popen(argv, cwd=REPO)
        started.append(proc)
        assert wait_until(lambda: (tmp_path / "record.json").exists()), "agent never spawned"
        record = ProcessRecord.from_json(json.loads((tmp_path / "record.json").read_text()))
        assert alive(record.pid)
        proc.kill()
        proc.wait()
        return record

    yield crash
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_the_agent_dies_with_its_supervising_process(
    crashed_supervisor: Callable[..., ProcessRecord],
) -> None:
    record = crashed_supervisor("exec sleep 300")
    assert wait_until(lambda: not alive(record.pid), 5), "agent outlived its supervisor"


def test_kill_stale_group_from_a_fresh_process_ends_the_leftovers(
    crashed_supervisor: Callable[..., ProcessRecord], tmp_path: Path
) -> None:
    pids_file = tmp_path / "pids"
    script = f"sleep 300 & echo $! > {pids_file}; sleep 300 & wait"
    record = crashed_supervisor(script, "none")
    assert wait_until(lambda: not alive(record.pid), 5)  # the leader got PDEATHSIG
    left = group_members(record.pgid)
    assert pids_in(pids_file)[0] in left and len(left) == 2  # its children did not
    code = (
        "import json, sys; "
        "from taskyard.agents.supervisor import ProcessRecord, kill_stale_group; "
        "record = ProcessRecord.from_json(json.loads(sys.argv[1])); "
        "print(kill_stale_group(record, 0.5))"
    )
    fresh = [sys.executable, "-c", code, json.dumps(record.to_json())]
    first = subprocess.run(fresh, capture_output=True, text=True, check=True, cwd=REPO)
    assert first.stdout.strip() == "True"
    assert [p for p in left if alive(p)] == []
    again = subprocess.run(fresh, capture_output=True, text=True, check=True, cwd=REPO)
    assert again.stdout.strip() == "False"


@pytest.fixture
def bystander() -> Iterator[subprocess.Popen[bytes]]:
    """A process in a group of its own that no stale-kill may touch."""
    proc = subprocess.Popen(["sleep", "60"], start_new_session=True)
    yield proc
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    proc.wait()


def _record_of(proc: subprocess.Popen[bytes], **changes: object) -> ProcessRecord:
    stat = read_stat(proc.pid)
    assert stat is not None
    boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    record = ProcessRecord(proc.pid, proc.pid, stat.start_time, boot)
    return replace(record, **changes)  # type: ignore[arg-type]


def test_kill_stale_group_leaves_a_recycled_pid_alone(
    bystander: subprocess.Popen[bytes],
) -> None:
    recycled = _record_of(bystander, start_time=_record_of(bystander).start_time + 1)
    assert kill_stale_group(recycled, 0.1) is False
    other_boot = _record_of(bystander, boot_id="another-boot")
    assert kill_stale_group(other_boot, 0.1) is False
    assert alive(bystander.pid)


def test_kill_stale_group_kills_a_matching_live_group(bystander: subprocess.Popen[bytes]) -> None:
    assert kill_stale_group(_record_of(bystander), 0.5) is True
    assert bystander.wait(timeout=5) == -signal.SIGTERM


def test_kill_stale_group_of_nothing_is_a_no_op() -> None:
    gone = ProcessRecord(pid=2**22 + 7, pgid=2**22 + 7, start_time=12345)
    assert kill_stale_group(gone, 0.1) is False
    with pytest.raises(ValueError):
        ProcessRecord(pid=0, pgid=0, start_time=0)
