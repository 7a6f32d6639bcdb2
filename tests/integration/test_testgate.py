"""The test gate against real processes: commands run by taskyard in the task's box (real
bubblewrap when it works here, as tests/integration/test_sandbox.py; and unboxed, for what does
not depend on the box), stopped at the first failure, timed out with every process of theirs,
their output tail bounded and redacted, and nothing outside the workspace in reach."""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

import taskyard.agents.sandbox as sandbox_module
from taskyard.agents.cgroups import Mechanism, detect
from taskyard.agents.sandbox import SandboxMode, SandboxSettings, bwrap_problem
from taskyard.agents.supervisor import Limits
from taskyard.run.testgate import GateSettings, TestReport, run_tests
from taskyard.run.workspace import TaskDirs
from taskyard.util.redaction import Redactor

SECRET = "ghp_gate_secret_0123456789abcdef"
ENV = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8"}
GATE = GateSettings(timeout_seconds=30, tail_bytes=4000)
needs_bwrap = pytest.mark.skipif(bwrap_problem() is not None, reason="needs bubblewrap")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A $TASKYARD_HOME with a database and another task's workspace in it."""
    home = tmp_path / "home"
    (home / "workspaces" / "task-other" / "workspace").mkdir(parents=True)
    (home / "workspaces" / "task-other" / "workspace" / "notes.txt").write_text("other's")
    (home / "taskyard.db").write_text("SQLite format 3 secret rows")
    return home


@pytest.fixture
def dirs(home: Path) -> TaskDirs:
    dirs = TaskDirs.layout(home / "workspaces", "t1", with_repo=True)
    dirs.create()
    assert dirs.repo is not None
    dirs.repo.mkdir()
    return dirs


@pytest.fixture(params=[SandboxMode.BWRAP, SandboxMode.NONE])
def mode(request: pytest.FixtureRequest) -> SandboxMode:
    if request.param is SandboxMode.BWRAP and bwrap_problem() is not None:
        pytest.skip("needs bubblewrap")
    return SandboxMode(request.param)


def limits_for(home: Path, mode: SandboxMode = SandboxMode.BWRAP) -> Limits:
    """The task's limits as the executor makes them: $TASKYARD_HOME hidden (its parent bound
    read-only on purpose, as an operator's `sandbox_read_only` could: the mask must hold)."""
    sandbox = SandboxSettings(mode=mode, hidden=(home,), read_only=(home.parent,))
    return Limits(kill_grace_seconds=0.5, redactor=Redactor([SECRET]), sandbox=sandbox)


async def gate(
    dirs: TaskDirs, limits: Limits, *commands: str, settings: GateSettings = GATE
) -> TestReport:
    assert dirs.repo is not None
    return await run_tests(commands, dirs.repo, dirs, limits, ENV, settings)


def processes_with(marker: bytes) -> list[int]:
    found = []
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            if marker in Path(f"/proc/{name}/cmdline").read_bytes():
                found.append(int(name))
        except OSError:
            continue
    return found


async def test_passing_commands_all_run_in_the_repository(
    home: Path, dirs: TaskDirs, mode: SandboxMode
) -> None:
    report = await gate(dirs, limits_for(home, mode), "echo one > one.txt; pwd", "cat one.txt")
    assert report.passed, report.summary()
    assert [r.exit_code for r in report.results] == [0, 0]
    assert report.results[0].output_tail == f"{dirs.repo}\n"  # the workdir, by its own path
    assert report.results[1].output_tail == "one\n"
    assert report.summary().startswith("tests passed (`echo one > one.txt; pwd`, `cat one.txt`)")


async def test_the_first_failure_stops_the_rest_and_keeps_its_exit_and_output(
    home: Path, dirs: TaskDirs, mode: SandboxMode
) -> None:
    failing = "echo to stdout; echo to stderr >&2; exit 3"
    report = await gate(dirs, limits_for(home, mode), "true", failing, "touch never.txt")
    assert not report.passed
    assert [r.exit_code for r in report.results] == [0, 3]
    assert report.results[1].output_tail == "to stdout\nto stderr\n"  # one stream, in order
    assert report.not_run == ("touch never.txt",)
    assert dirs.repo is not None and not (dirs.repo / "never.txt").exists()
    summary = report.summary()
    assert summary.startswith(f"`{failing}` failed (exit 3) after ")
    assert "not run: `touch never.txt`" in summary and summary.endswith("to stderr\n")


async def test_home_is_the_tasks_own_whatever_env_says(
    home: Path, dirs: TaskDirs, mode: SandboxMode
) -> None:
    assert dirs.repo is not None
    env = {**ENV, "HOME": str(home)}  # writable in the box were it kept
    report = await run_tests(["echo $HOME"], dirs.repo, dirs, limits_for(home, mode), env)
    assert report.results[0].output_tail == f"{dirs.root / 'home'}\n"


async def test_a_missing_program_fails_with_the_shells_words(
    home: Path, dirs: TaskDirs, mode: SandboxMode
) -> None:
    report = await gate(dirs, limits_for(home, mode), "no-such-program-xyz --check")
    (result,) = report.results
    assert result.exit_code == 127 and "not found" in result.output_tail


async def test_a_timeout_kills_the_command_and_its_setsid_child(
    home: Path, dirs: TaskDirs, mode: SandboxMode
) -> None:
    if mode is SandboxMode.NONE and detect().mechanism is Mechanism.RLIMITS:
        pytest.skip("unboxed, only a cgroup catches a setsid child")
    token = f"taskyard-gate-{os.getpid()}-{time.monotonic_ns()}"
    lasting = (
        "import pathlib, signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        f"pathlib.Path('started').touch(); time.sleep(300)  # {token}"
    )
    command = (
        f'setsid {sys.executable} -c "{lasting}" & '
        "while ! test -e started; do sleep 0.05; done; echo child started; "
        f"sleep 300  # {token}"
    )
    settings = replace(GATE, timeout_seconds=3.0)
    started = time.monotonic()
    report = await gate(dirs, limits_for(home, mode), command, "true", settings=settings)
    took = time.monotonic() - started
    (result,) = report.results
    assert result.timed_out and result.exit_code is None and report.not_run == ("true",)
    assert 3.0 <= result.duration_seconds < 3.0 + 0.5 + 5 and took < 15
    # then maybe the shell's "Terminated", when it outlived its `sleep` a moment
    assert result.output_tail.startswith("child started\n"), result
    assert processes_with(token.encode()) == []  # sh, sleep and the setsid child: all gone
    assert report.summary().startswith(f"`{command}` timed out after 3.")


async def test_the_tail_is_bounded_and_secrets_are_redacted(
    home: Path, dirs: TaskDirs, mode: SandboxMode
) -> None:
    command = (
        f"echo early {SECRET} >&2; "
        "for i in $(seq 1 500); do echo line $i of filler output; done; "
        f"echo late {SECRET}; printf 'y%.0s' $(seq 1 90); exit 1"
    )
    settings = replace(GATE, tail_bytes=120)
    report = await gate(dirs, limits_for(home, mode), command, settings=settings)
    (result,) = report.results
    assert result.exit_code == 1
    assert len(result.output_tail.encode()) <= 120
    # the cut fell inside the late secret: it is redacted whole, no piece of it is left
    assert result.output_tail == "[redacted]\n" + "y" * 90
    assert SECRET not in result.command and "[redacted]" in result.command
    summary = report.summary()
    assert SECRET not in summary and SECRET[-10:] not in summary
    assert summary.endswith("last output:\n[redacted]\n" + "y" * 90)


@needs_bwrap
async def test_a_command_reaches_no_network_nor_taskyard_home(home: Path, dirs: TaskDirs) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0)
    port = listener.getsockname()[1]
    connect = (
        f'{sys.executable} -c "import socket; '
        f"socket.create_connection(('127.0.0.1', {port}), timeout=3); print('connected')\""
    )
    env = {**ENV, "OPENAI_BASE_URL": f"http://127.0.0.1:{port}/v1"}  # opens no egress
    limits = limits_for(home)
    assert dirs.repo is not None
    with listener:
        net = await run_tests([connect], dirs.repo, dirs, limits, env, GATE)
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody knocked
    assert not net.passed and "connected" not in net.results[0].output_tail
    assert "Error" in net.results[0].output_tail
    db = await gate(dirs, limits, f"cat {home}/taskyard.db")
    assert not db.passed and "secret rows" not in db.results[0].output_tail
    other = await gate(dirs, limits, f"ls -a {home}/workspaces; cat {home}/*/*/*/notes.txt")
    assert "task-other" not in other.results[0].output_tail
    assert "other's" not in other.results[0].output_tail
    outside = await gate(dirs, limits, f"touch {dirs.context}/made.txt")
    assert not outside.passed and not (dirs.context / "made.txt").exists()


async def test_without_a_usable_box_nothing_runs(
    home: Path, dirs: TaskDirs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sandbox_module, "bwrap_problem", lambda: "bwrap is not installed")
    limits = limits_for(home, SandboxMode.AUTO)
    report = await gate(dirs, limits, "touch ran.txt", "true")
    (result,) = report.results
    assert not report.passed and report.not_run == ("true",)
    assert result.error is not None and "no agent sandbox" in result.error
    assert dirs.repo is not None and not (dirs.repo / "ran.txt").exists()
    assert report.summary().startswith("`touch ran.txt` could not be run: no agent sandbox")


async def test_a_workdir_outside_the_workspace_is_refused(home: Path, dirs: TaskDirs) -> None:
    with pytest.raises(ValueError, match="not in the task's workspace"):
        await run_tests(["true"], dirs.context, dirs, limits_for(home), ENV)


@pytest.fixture(autouse=True)
def _no_leftovers() -> Iterator[None]:
    """Every gate ends what it started: no process of ours is left in the test's session."""
    yield
    assert processes_with(b"taskyard-gate-") == []
