"""The test gate: taskyard runs a route's `test_commands` itself, never taking the agent's word
that the tests pass.

    report = await run_tests(commands, workdir, dirs, limits, env, GateSettings.of(changes))
    report.passed, report.summary()

Each command line runs with `/bin/sh -c` in `workdir` (the workspace's repository directory),
in order, each in a box of its own made exactly as an agent's is (`taskyard.agents.box`:
bubblewrap unless `runs.sandbox: none`, the task's workspace writable, no network, the task's
cgroup and rlimits from `limits`), with `env` less any `*_BASE_URL` (a test reaches no model
provider, nor anything else) and with HOME the task's config home. A command has
`GateSettings.timeout_seconds`; then its whole unit (process group, box, cgroup: `setsid`
children too) gets SIGTERM, SIGKILL after `kill_grace_seconds`. Whatever is left of a command
that exited on its own is ended the same way before the next one starts. The first command
that fails (non-zero exit, killed, timed out, or could not start) ends the gate; the rest are
not run.

What is kept of a command: its exit code, its duration and the last `tail_bytes` of its
combined stdout and stderr, with every secret of `limits.redactor` redacted (the output is
read into a bounded buffer and redacted once, whole, so a secret split across reads is found
too). The command lines kept are redacted as well: they are posted back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

from taskyard.agents.base import AgentRequest, Launch
from taskyard.agents.box import Box, open_box
from taskyard.agents.process import KILL_WAIT_SECONDS, terminate_unit
from taskyard.agents.sandbox import SandboxMode, resolve_mode
from taskyard.agents.spawn import Pipes, spawn
from taskyard.agents.supervisor import Limits
from taskyard.config import ChangesConfig
from taskyard.exceptions import SandboxError
from taskyard.run.workspace import TaskDirs
from taskyard.util.redaction import Redactor

__all__ = ["CommandResult", "GateSettings", "TestReport", "run_tests"]

logger = logging.getLogger(__name__)

SHELL = "/bin/sh"
# The outer shell sends stderr where stdout goes, then becomes the command's own shell: its
# messages ("sh: 1: pytest: not found") and exit code are the command's, in one stream.
_MERGED = 'exec 2>&1; exec /bin/sh -c "$1"'
DRAIN_SECONDS = 2.0  # how long to wait for the output to close once the unit is gone
_READ_CHUNK = 65536


@dataclass(frozen=True, slots=True)
class GateSettings:
    """A command's time limit and how much of its output is kept (`changes:`)."""

    timeout_seconds: float = 600.0
    tail_bytes: int = 4000

    @classmethod
    def of(cls, changes: ChangesConfig) -> GateSettings:
        return cls(changes.test_timeout_seconds, changes.test_output_tail_bytes)


@dataclass(frozen=True, slots=True)
class CommandResult:
    """How one command ended. `exit_code` is None when it timed out or never started (then
    `error` says why); negative when a signal killed it."""

    command: str
    exit_code: int | None
    duration_seconds: float
    output_tail: str
    timed_out: bool = False
    error: str | None = None

    @property
    def passed(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and self.error is None

    def describe(self) -> str:
        """`` `pytest -q` failed (exit 1) after 3.2 s ``, in the words a person reads."""
        took = f"after {self.duration_seconds:.1f} s"
        if self.error is not None:
            return f"`{self.command}` could not be run: {self.error}"
        if self.timed_out:
            return f"`{self.command}` timed out {took}"
        if self.passed:
            return f"`{self.command}` passed in {self.duration_seconds:.1f} s"
        return f"`{self.command}` failed ({_exit_words(self.exit_code)}) {took}"


@dataclass(frozen=True, slots=True)
class TestReport:
    """The gate's result: the commands run, in order (the last one the first that failed, if
    any), and those not run after it. No commands at all pass: there was no gate."""

    __test__: ClassVar[bool] = False  # not a pytest test class

    results: tuple[CommandResult, ...]
    not_run: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return not self.not_run and all(result.passed for result in self.results)

    @property
    def failed(self) -> CommandResult | None:
        return next((r for r in self.results if not r.passed), None)

    def summary(self) -> str:
        """What to post back: which command failed and how, with its last output; or that
        every command passed."""
        failed = self.failed
        if failed is None and not self.not_run:
            if not self.results:
                return "no test commands are configured: nothing was run"
            took = sum(r.duration_seconds for r in self.results)
            names = ", ".join(f"`{r.command}`" for r in self.results)
            return f"tests passed ({names}) in {took:.1f} s"
        head = failed.describe() if failed is not None else "the tests did not all run"
        if self.not_run:
            head += "; not run: " + ", ".join(f"`{c}`" for c in self.not_run)
        if failed is not None and failed.output_tail.strip():
            return f"{head}; last output:\n{failed.output_tail}"
        return head


def _exit_words(code: int | None) -> str:
    if code is None or code >= 0:
        return f"exit {code}"
    try:
        return f"killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"killed by signal {-code}"


# --- output ----------------------------------------------------------------------------------


class _Tail:
    """The last bytes of a command's output, kept with enough room before them that a secret
    straddling the cut is still whole when it is redacted."""

    def __init__(self, limit: int, redactor: Redactor) -> None:
        self.limit, self.redactor = limit, redactor
        self.keep = limit + 2 * redactor.longest
        self.data = bytearray()

    def feed(self, chunk: bytes) -> None:
        self.data += chunk
        del self.data[: -self.keep]

    def text(self) -> str:
        raw = bytes(self.data)
        start = self.redactor.safe_cut(raw, max(0, len(raw) - self.limit))
        kept = self.redactor.redact_bytes(raw[start:])[-self.limit :]
        while kept and 0x80 <= kept[0] < 0xC0:  # a character cut in two: its tail goes
            kept = kept[1:]
        return kept.decode("utf-8", "replace")


async def _read_into(tail: _Tail, pipes: Pipes) -> list[asyncio.Task[None]]:
    """Reads both of the command's pipes into `tail` (one stream: see `_MERGED`)."""
    readers: list[asyncio.Task[None]] = []
    for fd in (pipes.stdout, pipes.stderr):
        reader = await pipes.reader(fd)
        readers.append(asyncio.create_task(_pump(reader, tail)))
    return readers


async def _pump(reader: asyncio.StreamReader, tail: _Tail) -> None:
    while chunk := await reader.read(_READ_CHUNK):
        tail.feed(chunk)


# --- one command -------------------------------------------------------------------------------


async def _exited(pid: int, timeout: float) -> bool:
    """Whether the process exits within `timeout` seconds (it is not reaped here)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[None] = loop.create_future()
    pidfd = os.pidfd_open(pid)  # readable once the process has exited

    def on_exit() -> None:
        if not future.done():
            future.set_result(None)

    loop.add_reader(pidfd, on_exit)
    try:
        await asyncio.wait_for(future, timeout)
        return True
    except TimeoutError:
        return False
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)


class _Command:
    """One command in its box, from spawn to result."""

    def __init__(self, box: Box, limits: Limits, gate: GateSettings) -> None:
        self.box, self.limits, self.gate = box, limits, gate
        self.tail = _Tail(gate.tail_bytes, limits.redactor)
        self.proc: subprocess.Popen[bytes] | None = None
        self.pipes: Pipes | None = None
        self.readers: list[asyncio.Task[None]] = []

    async def run(self) -> tuple[int | None, bool]:
        """(exit code, timed out); the command's unit is gone when this returns."""
        lim = self.limits
        self.proc, self.pipes = spawn(
            self.box, lim.address_space_bytes, lim.cpu_seconds, lim.kill_grace_seconds
        )
        self.readers = await _read_into(self.tail, self.pipes)
        await self.box.started()
        exited = await _exited(self.proc.pid, self.gate.timeout_seconds)
        # a new session: the leader's pid is the group id
        await terminate_unit(self.box.unit(self.proc.pid), lim.kill_grace_seconds)
        code = self.proc.poll()  # the leader is dead by now: this reaps it
        _, late = await asyncio.wait(self.readers, timeout=DRAIN_SECONDS)
        if late:
            logger.warning("test command output still open after its unit ended")
        return (self.box.exit_code(code) if exited else None), not exited

    def close(self) -> None:
        """Releases the pipes and, on a path that could not wait, kills and reaps the unit."""
        for reader in self.readers:
            reader.cancel()
        if self.pipes is not None:
            self.pipes.close()
        if self.proc is not None and self.proc.poll() is None:
            unit = self.box.unit(self.proc.pid)
            if unit.alive():
                unit.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=KILL_WAIT_SECONDS)


async def _run_one(
    command: str,
    request: AgentRequest,
    cwd: Path,
    env: Mapping[str, str],
    limits: Limits,
    mode: SandboxMode,
    gate: GateSettings,
) -> CommandResult:
    started = time.monotonic()
    launch = Launch(argv=(SHELL, "-c", _MERGED, "sh", command), env=env, cwd=cwd)
    error: str | None = None
    exit_code: int | None = None
    timed_out = False
    tail = ""
    try:
        async with open_box(request, launch, limits.sandbox, mode) as box:
            run = _Command(box, limits, gate)
            try:
                exit_code, timed_out = await run.run()
            except (OSError, subprocess.SubprocessError) as exc:
                error = f"could not start it: {exc}"
            finally:
                run.close()
                tail = run.tail.text()
    except SandboxError as exc:  # raised only while the box is made
        error = str(exc)
    return CommandResult(
        command=command,
        exit_code=exit_code,
        duration_seconds=time.monotonic() - started,
        output_tail=tail,
        timed_out=timed_out,
        error=limits.redactor.redact(error) if error is not None else None,
    )


# --- the gate -----------------------------------------------------------------------------


def _request(dirs: TaskDirs) -> AgentRequest:
    """The box's view of the task (`sandbox.policy_for` reads its paths)."""
    return AgentRequest(
        task_id=dirs.task_id,
        task_dir=dirs.root,
        workspace=dirs.workspace,
        context_dir=dirs.context,
        output_dir=dirs.outputs,
        prompt_file=dirs.prompts / "tests.md",
        result_schema={},
    )


def _env(env: Mapping[str, str], dirs: TaskDirs) -> dict[str, str]:
    """`env` without provider URLs (each would open the box's egress to it), and with the
    task's own HOME (the box makes HOME writable: never one outside the task)."""
    found = {k: v for k, v in env.items() if not k.endswith("_BASE_URL")}
    return found | {"HOME": str(dirs.root / "home")}


async def run_tests(
    commands: Sequence[str],
    workdir: Path,
    dirs: TaskDirs,
    limits: Limits,
    env: Mapping[str, str],
    gate: GateSettings = GateSettings(),
) -> TestReport:
    """Runs `commands` in order in `workdir` (inside `dirs.workspace`), each in the task's box
    (see the module docstring), until the first that fails."""
    workdir = Path(os.path.abspath(workdir))
    if not workdir.is_relative_to(os.path.abspath(dirs.workspace)):
        raise ValueError(f"{workdir} is not in the task's workspace {dirs.workspace}")
    if not commands:
        return TestReport(())
    redact = limits.redactor.redact
    try:
        mode = resolve_mode(limits.sandbox.mode)
    except SandboxError as exc:
        failed = CommandResult(redact(commands[0]), None, 0.0, "", error=redact(str(exc)))
        return TestReport((failed,), tuple(map(redact, commands[1:])))
    request, full_env = _request(dirs), _env(env, dirs)
    Path(full_env["HOME"]).mkdir(parents=True, exist_ok=True)
    results: list[CommandResult] = []
    for index, command in enumerate(commands):
        result = await _run_one(command, request, workdir, full_env, limits, mode, gate)
        results.append(replace(result, command=redact(command)))
        if not result.passed:
            return TestReport(tuple(results), tuple(map(redact, commands[index + 1 :])))
    return TestReport(tuple(results))
