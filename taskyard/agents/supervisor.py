"""Runs one agent process for one task, and makes sure nothing of it outlives the run.

`supervise(adapter, request, limits)` writes the adapter's files, spawns its argv in a new
session (so its own process group, pgid == pid) with a parent-death signal and resource
limits, streams stdout line by line into `outputs/log.jsonl` (flushed per line) and through
the adapter's parser, keeps the stderr tail (all of stderr goes to `outputs/stderr.log`), and
stops the agent on timeout, tool-call budget, cost ceiling (`Limits.max_cost_usd`, read from
the parser's `usage_so_far` after each line), cancel, the task's memory limit or the disk
floor (the watchers: `taskyard.agents.stops`) by signalling the whole group: SIGTERM, then
SIGKILL after `kill_grace_seconds`. A stopped run's report keeps the usage the stream had
told so far, and says what stopped it (`RunReport.stopped_by`). It returns only once no live
process of the group is left (a zombie waiting for its parent counts as gone: it runs nothing
and holds nothing).

`log.jsonl`: a stdout line that is a JSON object is written as it is; any other non-blank line
becomes `{"stream": "stdout", "text": ...}`. Every line (and stderr) is redacted first, and the
file is capped at `Limits.log_max_bytes` (`taskyard.agents.agentlog`). The supervisor ends the
file with one line of its own,
`{"stream": "taskyard", "status": ..., "reason": ..., "exit_code": ..., "tool_calls": ...}`
(status "interrupted" when the caller gave up: cancelled, or its `on_spawn` raised).

Crash safety: the caller records the `ProcessRecord` given to `on_spawn` durably. If the
taskyard process dies, the parent-death signal kills the agent's leader; anything else left in
its group is killed by `kill_stale_group(record, grace)` before the interrupted step re-runs.
The record's start time and boot id tell a recycled pid from the real one.

Limits: RLIMIT_AS and RLIMIT_CPU are per process (each child inherits its own copy), not per
group. A process that leaves the group (setsid/setpgid) escapes the group kill; taskyard stops
waiting for its output after a short drain time.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson

from taskyard.agents.agentlog import (
    TRUSTED_LOG,
    LineSplitter,
    OutputFile,
    log_record,
    redact_outcome,
)
from taskyard.agents.base import (
    AgentAdapter,
    AgentOutcome,
    AgentRequest,
    StreamParser,
)
from taskyard.agents.box import Box, open_box
from taskyard.agents.process import (
    KILL_WAIT_SECONDS,
    ProcessRecord,
    boot_id,
    kill_stale_group,
    read_stat,
    terminate_unit,
)
from taskyard.agents.sandbox import SandboxMode, SandboxSettings, resolve_mode
from taskyard.agents.spawn import Pipes, prepare, spawn
from taskyard.agents.stops import Stop, Tripwires, Watch, cost_over, describe, start_watchers
from taskyard.config import AgentConfig, RunsConfig
from taskyard.exceptions import SandboxError
from taskyard.util.redaction import Redactor

__all__ = [
    "Limits",
    "ProcessRecord",
    "RunReport",
    "RunStatus",
    "Stop",
    "Supervise",
    "build_env",
    "describe_exit",
    "kill_stale_group",
    "supervise",
]

logger = logging.getLogger(__name__)

STDERR_TAIL_BYTES = 4096
STDERR_LOG_MAX_BYTES = 8 * 1024 * 1024
STDERR_LINE_MAX_BYTES = 65536  # a longer stderr line is redacted and stored in pieces
LOG_MAX_BYTES = 10 * 1024 * 1024  # `runs.log_max_bytes`' default
LINE_MAX_BYTES = 4 * 1024 * 1024  # a longer stdout line is cut into pieces
DRAIN_SECONDS = 2.0  # how long to wait for the pipes to close once the group is gone
_READ_CHUNK = 65536


class RunStatus(enum.StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class Limits:
    """What one run may use. `0` turns the address-space or CPU limit off."""

    timeout_seconds: float = 300.0
    kill_grace_seconds: float = 5.0
    max_tool_calls: int = 50
    address_space_bytes: int = 2 * 1024**3
    cpu_seconds: int = 600
    max_cost_usd: float | None = None  # the per-task cost ceiling (`budget.per_task_usd`)
    log_max_bytes: int = LOG_MAX_BYTES  # the agent's log.jsonl (`runs.log_max_bytes`)
    min_free_disk_bytes: int = 1024**3  # the disk floor (taskyard.agents.diskfloor); 0 = off
    redactor: Redactor = field(default_factory=Redactor)  # secrets hidden in what it prints
    sandbox: SandboxSettings = field(default_factory=SandboxSettings)  # box, task limits

    @classmethod
    def from_config(
        cls, runs: RunsConfig, agent: AgentConfig, request: AgentRequest | None = None
    ) -> Limits:
        """The runs: defaults, overridden by the agent's own values, then by the request's
        timeout and tool budget (already resolved per task by the caller)."""
        timeout = agent.timeout_seconds or runs.timeout_seconds
        budget = agent.max_tool_calls or runs.max_tool_calls
        if request is not None:
            timeout, budget = request.timeout_seconds, request.max_tool_calls
        space = agent.address_space_bytes
        cpu = agent.cpu_seconds
        return cls(
            timeout_seconds=timeout,
            kill_grace_seconds=runs.kill_grace_seconds,
            max_tool_calls=budget,
            address_space_bytes=runs.address_space_bytes if space is None else space,
            cpu_seconds=runs.cpu_seconds if cpu is None else cpu,
            log_max_bytes=runs.log_max_bytes,
            min_free_disk_bytes=runs.min_free_disk_bytes,
            sandbox=SandboxSettings(
                mode=SandboxMode(runs.sandbox),
                memory_bytes=runs.memory_bytes,
                max_processes=runs.max_processes,
                read_only=runs.sandbox_read_only,
            ),
        )


@dataclass(frozen=True, slots=True)
class RunReport:
    """How one supervised run ended. `reason` is set whenever status is not succeeded;
    `stopped_by` names the limit or request that stopped the run (None: it ended on its own,
    or could not start)."""

    status: RunStatus
    reason: str | None
    exit_code: int | None  # negative: killed by that signal; None: never started
    outcome: AgentOutcome | None  # the adapter's account; None when the run was stopped
    started_at: datetime
    ended_at: datetime
    pgid: int | None
    tool_calls: int = 0
    stderr_tail: str = ""
    stopped_by: Stop | None = None

    @property
    def succeeded(self) -> bool:
        return self.status is RunStatus.SUCCEEDED


class Supervise(Protocol):
    """The shape of `supervise`, for callers that take it as a dependency (and fakes)."""

    def __call__(
        self,
        adapter: AgentAdapter,
        request: AgentRequest,
        limits: Limits,
        *,
        on_spawn: Callable[[ProcessRecord], Awaitable[None]] | None = None,
        cancel: asyncio.Event | None = None,
    ) -> Awaitable[RunReport]: ...


def build_env(
    allowlist: tuple[str, ...] | list[str], environ: Mapping[str, str], request: AgentRequest
) -> dict[str, str]:
    """The agent's base environment: the allowlisted variables of `environ` plus the task's
    own. Nothing else: no platform tokens, no taskyard secrets, no model keys (an adapter adds
    its own key explicitly)."""
    env = {name: environ[name] for name in allowlist if name in environ}
    env.update(
        CONTEXT_DIR=str(request.context_dir),
        OUTPUT_DIR=str(request.output_dir),
        TASK_ID=request.task_id,
        PROMPT_FILE=str(request.prompt_file),
        HOME=str(request.task_dir / "home"),
    )
    return env


def describe_exit(code: int) -> str:
    """`exited 3`, or `was killed by SIGKILL` for a negative (Popen-style) code."""
    if code >= 0:
        return f"exited {code}"
    try:
        return f"was killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"was killed by signal {-code}"


# --- one run ----------------------------------------------------------------------------


# A stop's run status; any other stop fails the run.
_STOP_STATUS = {Stop.TIMEOUT: RunStatus.TIMED_OUT, Stop.CANCEL: RunStatus.CANCELLED}


def _now() -> datetime:
    return datetime.now(UTC)


class _Run:
    """The state of one supervised run, from spawn to report."""

    def __init__(
        self, adapter: AgentAdapter, request: AgentRequest, limits: Limits, box: Box
    ) -> None:
        self.adapter, self.request, self.limits = adapter, request, limits
        self.box, self.launch = box, box.launch
        self.parser: StreamParser = adapter.new_parser()
        self.started_at = _now()
        self.tool_calls = 0
        self.wires = Tripwires(limits.max_tool_calls, limits.max_cost_usd)
        self.stderr_tail = bytearray()
        self.redactor = limits.redactor
        trusted = request.task_dir / TRUSTED_LOG  # read-only in the box: what is kept
        log_file, append = request.output_dir / "log.jsonl", request.append_logs
        self.log = OutputFile(log_file, limits.log_max_bytes, trusted, append)
        try:
            err_file = request.output_dir / "stderr.log"
            self.err = OutputFile(err_file, STDERR_LOG_MAX_BYTES, append=append)
        except OSError:
            self.log.close()
            raise
        self.proc: subprocess.Popen[bytes] | None = None
        self.pipes: Pipes | None = None
        self.exited: asyncio.Future[None] | None = None
        self.pidfd: int | None = None
        self.deadline = 0.0
        self.pumps: list[asyncio.Task[None]] = []

    @property
    def pgid(self) -> int:
        assert self.proc is not None
        return self.proc.pid  # a new session: the leader's pid is the group id

    # -- start

    def spawn(self) -> None:
        lim = self.limits
        self.proc, self.pipes = spawn(
            self.box, lim.address_space_bytes, lim.cpu_seconds, lim.kill_grace_seconds
        )
        self.deadline = time.monotonic() + self.limits.timeout_seconds

    async def attach(self) -> ProcessRecord:
        """Watches the spawned process: its exit, its output. Returns its record."""
        assert self.proc is not None and self.pipes is not None
        stat = read_stat(self.proc.pid)  # not reaped before we wait: always readable
        record = ProcessRecord(
            pid=self.proc.pid,
            pgid=self.pgid,
            start_time=stat.start_time if stat else 0,
            boot_id=boot_id(),
            cgroups=self.box.cgroup_dirs,
            sandboxed=self.box.sandboxed,
        )
        self.exited = self._watch_exit(self.proc.pid)
        await self._connect(self.pipes)
        await self.box.started()  # the box's listeners are made, then the agent runs
        return record

    def _watch_exit(self, pid: int) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self.pidfd = os.pidfd_open(pid)  # readable once the process has exited

        def on_exit() -> None:
            self._close_pidfd()
            if not future.done():
                future.set_result(None)

        loop.add_reader(self.pidfd, on_exit)
        return future

    def _close_pidfd(self) -> None:
        if self.pidfd is not None:
            asyncio.get_running_loop().remove_reader(self.pidfd)
            os.close(self.pidfd)
            self.pidfd = None

    async def _connect(self, pipes: Pipes) -> None:
        for fd, pump in ((pipes.stdout, self._pump_stdout), (pipes.stderr, self._pump_stderr)):
            reader = await pipes.reader(fd, LINE_MAX_BYTES)
            self.pumps.append(asyncio.create_task(pump(reader)))

    # -- streams

    async def _pump_stdout(self, reader: asyncio.StreamReader) -> None:
        lines = LineSplitter(LINE_MAX_BYTES, self.redactor)
        while chunk := await reader.read(_READ_CHUNK):
            for raw in lines.feed(chunk):
                self._line(raw)
        for raw in lines.end():
            self._line(raw)

    def _line(self, raw: bytes) -> None:
        """One stdout line: redacted, stored (within the cap), and fed to the parser (always:
        usage and the result still work past the cap)."""
        text = self.redactor.redact(raw.decode("utf-8", "replace").rstrip("\r"))
        if not text.strip():
            return
        self.log.write(log_record(text, self.redactor))
        for event in self.parser.feed(text):
            if event.kind == "tool_call":
                self.tool_calls += 1
        self.wires.check(self.tool_calls, self.parser.usage_so_far())

    async def _pump_stderr(self, reader: asyncio.StreamReader) -> None:
        """stderr, redacted line by line: into stderr.log (capped) and the tail."""
        lines = LineSplitter(STDERR_LINE_MAX_BYTES, self.redactor)
        while chunk := await reader.read(_READ_CHUNK):
            self._stderr_lines(lines.feed(chunk))
        self._stderr_lines(lines.end())

    def _stderr_lines(self, lines: list[bytes]) -> None:
        for raw in lines:
            line = self.redactor.redact_bytes(raw) + b"\n"
            self.stderr_tail += line
            del self.stderr_tail[:-STDERR_TAIL_BYTES]
            self.err.write(line)

    # -- watching

    async def watch(self, cancel: asyncio.Event | None) -> Stop | None:
        """Waits for the process to exit (None) or for a reason to stop it."""
        assert self.exited is not None
        workspace, floor = self.request.workspace, self.limits.min_free_disk_bytes
        stop_tasks = start_watchers(Watch(self.wires, self.box, workspace, floor, cancel))
        try:
            while True:
                waiting = {self.exited, *stop_tasks, *(p for p in self.pumps if not p.done())}
                timeout = max(0.0, self.deadline - time.monotonic())
                done, _ = await asyncio.wait(
                    waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                _raise_failed(self.pumps)
                stops = [stop_tasks[t] for t in done if t in stop_tasks]
                if stops:
                    return stops[0]
                if self.exited in done:
                    return None
                if not done:
                    return Stop.TIMEOUT
        finally:
            for task in stop_tasks:
                task.cancel()

    # -- ending

    async def end_group(self) -> None:
        """Stops what is left of the group (of the box), then lets the pipes drain."""
        await terminate_unit(self.box.unit(self.pgid), self.limits.kill_grace_seconds)
        assert self.exited is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.exited), KILL_WAIT_SECONDS)
        if self.pumps:
            _, late = await asyncio.wait(self.pumps, timeout=DRAIN_SECONDS)
            if late:
                logger.warning(
                    "agent output still open after its group ended",
                    extra={"task_id": self.request.task_id, "pgid": self.pgid},
                )
        _raise_failed(self.pumps)

    async def interrupt(self) -> None:
        """The run cannot finish normally (caller cancelled, on_spawn or a stream reader
        raised): stop the group, SIGKILL at once if this is cancelled in turn."""
        unit = self.box.unit(self.pgid)
        try:
            await terminate_unit(unit, self.limits.kill_grace_seconds)
        finally:
            if unit.alive():
                unit.kill()
            summary = {"stream": "taskyard", "status": "interrupted", "tool_calls": self.tool_calls}
            self.log.close_json()
            self.log.write_own(orjson.dumps(summary) + b"\n")

    def close(self) -> None:
        """Releases fds, SIGKILLs anything left in the group, reaps the leader."""
        for pump in self.pumps:
            pump.cancel()
        if self.pipes is not None:
            self.pipes.close()
        self._close_pidfd()
        if self.exited is not None and not self.exited.done():
            self.exited.cancel()
        if self.proc is not None:
            # Last resort for a path that could not wait (the coroutine closed mid-kill):
            # while the leader is unreaped its pgid cannot be reused, so this hits only ours.
            unit = self.box.unit(self.pgid)
            if unit.alive():
                unit.kill()
            if self.proc.poll() is None:
                self.proc.wait(timeout=KILL_WAIT_SECONDS)
        for out in (self.log, self.err):
            with contextlib.suppress(OSError):
                out.close()

    def stderr_text(self) -> str:
        return self.stderr_tail.decode("utf-8", "replace").strip()

    def report(self, stop: Stop | None) -> RunReport:
        assert self.proc is not None
        exit_code = self.box.exit_code(self.proc.poll())
        if stop is None and self.box.oom_kills():  # it ended before the OOM watch saw it
            stop = Stop.MEMORY
        outcome: AgentOutcome | None = None
        reason: str | None
        if stop is not None:
            usage = self.parser.usage_so_far()  # what the run used before it was stopped
            status = _STOP_STATUS.get(stop, RunStatus.FAILED)
            reason = describe(stop, self.limits, usage)
            if usage is not None:
                outcome = AgentOutcome(False, None, reason, usage, self.tool_calls)
        else:
            code = exit_code if exit_code is not None else -int(signal.SIGKILL)
            outcome = self.adapter.outcome(self.request, self.parser, code, self.stderr_text())
            outcome = redact_outcome(outcome, self.redactor)  # stored, maybe posted: no secret
            stop = self._over_limit(outcome)
            status, reason = self._judge(outcome, code, stop)
        return self.finish(status, reason, exit_code, outcome, stop)

    def _over_limit(self, outcome: AgentOutcome) -> Stop | None:
        """A limit the finished run turns out to have crossed: the tool calls it made, or a
        cost known only from its final account (codex)."""
        if self.tool_calls > self.limits.max_tool_calls:
            return Stop.TOOL_BUDGET
        if cost_over(self.limits.max_cost_usd, outcome.usage):
            return Stop.COST_CEILING
        return None

    def _judge(
        self, outcome: AgentOutcome, code: int, over: Stop | None
    ) -> tuple[RunStatus, str | None]:
        if over is not None:
            return RunStatus.FAILED, describe(over, self.limits, outcome.usage, "in all")
        if outcome.success:
            return RunStatus.SUCCEEDED, None
        tail = self.stderr_text()[-1000:]
        return RunStatus.FAILED, outcome.error or f"agent {describe_exit(code)}: {tail}".strip()

    def finish(
        self,
        status: RunStatus,
        reason: str | None,
        exit_code: int | None,
        outcome: AgentOutcome | None,
        stopped_by: Stop | None = None,
    ) -> RunReport:
        summary: dict[str, Any] = {"stream": "taskyard", "status": str(status), "reason": reason}
        summary |= {"exit_code": exit_code, "tool_calls": self.tool_calls}
        self.log.close_json()
        self.err.close_text()
        self.log.write_own(orjson.dumps(summary) + b"\n")
        return RunReport(
            status=status,
            reason=reason,
            exit_code=exit_code,
            outcome=outcome,
            started_at=self.started_at,
            ended_at=_now(),
            pgid=self.pgid if self.proc is not None else None,
            tool_calls=self.tool_calls,
            stderr_tail=self.stderr_text(),
            stopped_by=stopped_by,
        )


def _raise_failed(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        if task.done() and not task.cancelled():
            error = task.exception()
            if error is not None:
                raise error


def _unstarted(status: RunStatus, reason: str, started_at: datetime) -> RunReport:
    stopped_by = Stop.CANCEL if status is RunStatus.CANCELLED else None
    return RunReport(status, reason, None, None, started_at, _now(), None, stopped_by=stopped_by)


async def supervise(
    adapter: AgentAdapter,
    request: AgentRequest,
    limits: Limits,
    *,
    on_spawn: Callable[[ProcessRecord], Awaitable[None]] | None = None,
    cancel: asyncio.Event | None = None,
) -> RunReport:
    """Run the adapter's agent for `request` within `limits`; see the module docstring.

    Returns a report for every way the run can end, including an agent that cannot start.
    Raises only what `on_spawn` or the adapter raise, or CancelledError; in every case the
    agent's process group is gone before this returns or raises."""
    started_at = _now()
    try:
        mode = resolve_mode(limits.sandbox.mode)
    except SandboxError as exc:
        return _unstarted(RunStatus.FAILED, f"could not start the agent: {exc}", started_at)
    request = replace(request, sandboxed=mode is SandboxMode.BWRAP)
    launch = adapter.launch(request)
    if cancel is not None and cancel.is_set():
        return _unstarted(RunStatus.CANCELLED, "cancelled", started_at)
    try:
        prepare(request, launch)
    except OSError as exc:
        return _unstarted(RunStatus.FAILED, f"could not prepare the agent: {exc}", started_at)
    try:
        async with open_box(request, launch, limits.sandbox, mode) as box:
            return await _run_in(box, adapter, request, limits, on_spawn, cancel, started_at)
    except SandboxError as exc:  # raised only while the box is made, never by the run
        return _unstarted(RunStatus.FAILED, f"could not start the agent: {exc}", started_at)


async def _run_in(
    box: Box,
    adapter: AgentAdapter,
    request: AgentRequest,
    limits: Limits,
    on_spawn: Callable[[ProcessRecord], Awaitable[None]] | None,
    cancel: asyncio.Event | None,
    started_at: datetime,
) -> RunReport:
    try:
        run = _Run(adapter, request, limits, box)
    except OSError as exc:
        return _unstarted(RunStatus.FAILED, f"could not prepare the agent: {exc}", started_at)
    try:
        return await _supervise_run(run, on_spawn, cancel)
    finally:
        run.close()


async def _supervise_run(
    run: _Run,
    on_spawn: Callable[[ProcessRecord], Awaitable[None]] | None,
    cancel: asyncio.Event | None,
) -> RunReport:
    try:
        run.spawn()
    except (OSError, subprocess.SubprocessError) as exc:
        return run.finish(RunStatus.FAILED, f"could not start the agent: {exc}", None, None)
    logger.info(
        "agent spawned",
        extra={"task_id": run.request.task_id, "pgid": run.pgid, "argv0": run.launch.argv[0]},
    )
    try:
        record = await run.attach()
        if on_spawn is not None:
            await on_spawn(record)
        stop = await run.watch(cancel)
        await run.end_group()
    except BaseException:
        await run.interrupt()
        raise
    return run.report(stop)
