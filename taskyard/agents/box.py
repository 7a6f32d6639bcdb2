"""One run's box at run time: the wrapped launch, the task's cgroup, the egress proxy.

    async with open_box(request, launch, settings, mode) as box:
        spawn box.launch with child_setup(..., box.procs_files, box.nproc_limit)
            and pass_fds=box.pass_fds; then box.spawned()
        await box.started()          # before anything waits on the agent
        ... box.unit(pgid) to end it, box.oom_kills(), box.exit_code(code) ...

`mode` is the resolved one (`sandbox.resolve_mode`): `bwrap` wraps the launch
(`sandbox.bwrap_argv`, with the egress proxy when the launch has egress endpoints: served on
listeners made in the box's namespace, `netns.NetGate`, or through the in-box relay);
`none` runs it as it is. Either way the task gets its cgroup when the machine has one
(`cgroups.detect`), so its memory and process limits and its death cover every process, and
the cgroup is removed when the box closes. Raises SandboxError when the box cannot be made.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

from taskyard.agents import cgroups
from taskyard.agents.base import AgentRequest, Launch
from taskyard.agents.cgroups import TaskCgroup
from taskyard.agents.egress import EgressProxy, endpoints_of, socket_for
from taskyard.agents.netns import NetGate
from taskyard.agents.process import BoxUnit, GroupUnit, Unit
from taskyard.agents.sandbox import (
    SandboxMode,
    SandboxSettings,
    bwrap_argv,
    bwrap_version,
    policy_for,
    resolve_mode,
)
from taskyard.config import RunsConfig
from taskyard.exceptions import SandboxError

log = logging.getLogger(__name__)
startup_log = logging.getLogger("taskyard.service.startup")  # process-wide lines, not a task's

OOM_POLL_SECONDS = 0.1
_SIGNAL_BASE = 128  # bwrap reports a command killed by signal n as exit 128 + n


@dataclass(frozen=True, slots=True)
class Box:
    launch: Launch  # what the supervisor spawns
    sandboxed: bool
    cgroup: TaskCgroup | None = None
    nproc_limit: int = 0  # RLIMIT_NPROC, only without a cgroup
    proxy: EgressProxy | None = None
    gate: NetGate | None = None
    task_id: str = ""

    @property
    def pass_fds(self) -> tuple[int, ...]:
        return self.gate.pass_fds if self.gate is not None else ()

    def spawned(self) -> None:
        """Right after the spawn (or its failure), in the parent."""
        if self.gate is not None:
            self.gate.spawned()

    async def started(self) -> None:
        """Makes the box's loopback listeners, then lets the agent run. A failure is logged
        and the agent runs without them (its connections are refused: never more network)."""
        if self.gate is None or self.proxy is None:
            return
        try:
            listeners = await self.gate.listen(self.proxy.box_ports())
            await self.proxy.serve_box(listeners)
        except (OSError, TimeoutError) as exc:
            log.error("agent egress not set up: %s", exc, extra={"task_id": self.task_id})
        finally:
            self.gate.release()

    @property
    def procs_files(self) -> tuple[str, ...]:
        return self.cgroup.procs_files if self.cgroup is not None else ()

    @property
    def cgroup_dirs(self) -> tuple[str, ...]:
        return tuple(map(str, self.cgroup.dirs)) if self.cgroup is not None else ()

    def unit(self, pgid: int) -> Unit:
        if self.cgroup is None and not self.sandboxed:
            return GroupUnit(pgid)
        return BoxUnit(pgid, self.cgroup, self.sandboxed)

    def oom_kills(self) -> int:
        return self.cgroup.oom_kills() if self.cgroup is not None else 0

    async def wait_oom(self) -> None:
        """Returns once the kernel has killed a process of the task for its memory limit
        (never, without a memory cgroup): the supervisor then stops the whole task."""
        if self.cgroup is None or not self.cgroup.memory_bytes:
            await asyncio.Event().wait()
        while not self.oom_kills():
            await asyncio.sleep(OOM_POLL_SECONDS)

    def exit_code(self, code: int | None) -> int | None:
        """The agent's exit code as Popen gives it (negative: killed by that signal). bwrap
        says 128 + n for a signal death; so an agent's own `exit 137` reads as SIGKILL."""
        if not self.sandboxed or code is None or code <= _SIGNAL_BASE:
            return code
        try:
            return -int(signal.Signals(code - _SIGNAL_BASE))
        except ValueError:
            return code


def _mcp_sockets(request: AgentRequest) -> tuple[Path, ...]:
    args = request.mcp.args if request.mcp is not None else ()
    return tuple(Path(args[i + 1]) for i, a in enumerate(args[:-1]) if a == "--socket")


def _nproc_limit(max_processes: int) -> int:
    """RLIMIT_NPROC counts every process of the uid: ours now, plus the task's allowance."""
    if max_processes <= 0:
        return 0
    uid = os.getuid()
    mine = 0
    for name in os.listdir("/proc"):
        if name.isdigit():
            with contextlib.suppress(OSError):
                mine += os.stat(f"/proc/{name}").st_uid == uid
    return mine + max_processes


def _check_runnable(launch: Launch) -> None:
    """The agent's program exists (inside the box exec would fail with bwrap's own exit 1)."""
    first = launch.argv[0] if launch.argv else ""
    if not shutil.which(first, path=launch.env.get("PATH", os.defpath)):
        raise SandboxError(f"{first or 'an empty argv'}: no such executable")


@contextlib.asynccontextmanager
async def open_box(
    request: AgentRequest, launch: Launch, settings: SandboxSettings, mode: SandboxMode
) -> AsyncIterator[Box]:
    group = TaskCgroup.create(
        cgroups.detect(), request.task_id, settings.memory_bytes, settings.max_processes
    )
    nproc = 0 if group is not None else _nproc_limit(settings.max_processes)
    try:
        if mode is SandboxMode.NONE:
            yield Box(launch, False, group, nproc)
            return
        _check_runnable(launch)
        async with contextlib.AsyncExitStack() as stack:
            env, relay, proxy, gate = dict(launch.env), None, None, None
            sockets = _mcp_sockets(request)
            endpoints = endpoints_of(launch)
            if endpoints:
                proxy = EgressProxy(socket_for(request.task_dir), endpoints)
                await stack.enter_async_context(proxy)
                env |= proxy.agent_env()
                gate = NetGate.open()
                if gate is None:  # no CAP_SYS_ADMIN: the relay inside the box, on the socket
                    relay, sockets = proxy.relay(), (*sockets, proxy.socket_path)
                else:
                    stack.callback(gate.close)
            try:
                policy = policy_for(request, launch, settings, sockets)
            except OSError as exc:
                raise SandboxError(f"cannot lay out the agent's sandbox: {exc}") from exc
            env |= policy.env
            extra = gate.bwrap_args() if gate is not None else ()
            argv = bwrap_argv(policy, launch, relay, extra)
            wrapped = replace(launch, argv=argv, env=env)
            yield Box(wrapped, True, group, nproc, proxy, gate, request.task_id)
    finally:
        if group is not None:
            group.remove()


def sandbox_report(runs: RunsConfig) -> list[tuple[bool, str]]:
    """`taskyard doctor`'s and startup's lines: the sandbox and the limits in force. `none` is
    not a failed check (it is the operator's explicit choice) but is said as a warning."""
    mode = SandboxMode(runs.sandbox)
    if mode is SandboxMode.NONE:
        box = (True, "WARNING: agent sandbox OFF (runs.sandbox: none): agents run unsandboxed")
    else:
        try:
            resolve_mode(mode)
            box = (True, f"agent sandbox: bwrap ({bwrap_version()}), runs.sandbox: {mode}")
        except SandboxError as exc:
            box = (False, f"agent sandbox: {exc}")
    return [box, (True, cgroups.describe(runs.memory_bytes, runs.max_processes))]


def log_sandbox(runs: RunsConfig) -> None:
    """Says at startup which sandbox and limits are in force; loudly when there is none."""
    (usable, box), (_, limits) = sandbox_report(runs)
    if SandboxMode(runs.sandbox) is SandboxMode.NONE or not usable:
        startup_log.warning(box, extra={"sandbox": runs.sandbox})
    else:
        startup_log.info(box, extra={"sandbox": runs.sandbox})
    startup_log.info(limits)
