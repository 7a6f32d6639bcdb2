"""Agent processes and their process groups: spawn, identify, end.

An agent runs in a new session, so its process group id is its leader's pid. The leader gets a
parent-death signal (`PDEATHSIG`) and resource limits before it execs. A group is ended by
SIGTERM to the whole group, then SIGKILL after a grace period, and counts as ended once no
live process is left in it (a zombie waiting for its parent runs nothing and holds nothing;
PID 1 of some containers never reaps orphans, so zombies are not waited for).

`ProcessRecord` (pid, pgid, leader start time, boot id) is what a caller stores durably, so
that `kill_stale_group` run by a later process can end a group left by a crashed one and leave
a recycled pid alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import resource
import signal
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from taskyard.agents.cgroups import TaskCgroup

logger = logging.getLogger(__name__)

PDEATHSIG = signal.SIGKILL  # what the agent's leader gets when taskyard's process dies
KILL_WAIT_SECONDS = 10.0  # how long SIGKILL is repeated before giving up (D state)
POLL_SECONDS = 0.02
_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


@dataclass(frozen=True, slots=True)
class ProcessRecord:
    """Identifies a spawned agent's process group across a crash of taskyard."""

    pid: int
    pgid: int
    start_time: int  # /proc/<pid>/stat field 22, clock ticks since boot
    boot_id: str = ""
    cgroups: tuple[str, ...] = ()  # the task's cgroup dirs (`taskyard.agents.cgroups`)
    sandboxed: bool = False  # pid is bwrap's: the agent is in its pid namespace

    def __post_init__(self) -> None:
        if self.pid <= 1 or self.pgid <= 1:
            raise ValueError(f"not an agent process: pid {self.pid}, pgid {self.pgid}")

    def to_json(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "pgid": self.pgid,
            "start_time": self.start_time,
            "boot_id": self.boot_id,
            "cgroups": list(self.cgroups),
            "sandboxed": self.sandboxed,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ProcessRecord:
        return cls(
            pid=int(data["pid"]),
            pgid=int(data["pgid"]),
            start_time=int(data["start_time"]),
            boot_id=str(data.get("boot_id", "")),
            cgroups=tuple(str(c) for c in data.get("cgroups") or ()),
            sandboxed=bool(data.get("sandboxed", False)),
        )

    def unit(self) -> Unit:
        """What ends with this run: its group, plus its box and cgroup when it had them."""
        if not self.cgroups and not self.sandboxed:
            return GroupUnit(self.pgid)
        group = TaskCgroup.of_record(self.cgroups) if self.cgroups else None
        return BoxUnit(self.pgid, group, self.sandboxed)


@dataclass(frozen=True, slots=True)
class ProcStat:
    state: str
    pgrp: int
    start_time: int
    ppid: int = 0


def read_stat(pid: int) -> ProcStat | None:
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
    except (FileNotFoundError, ProcessLookupError):
        return None
    try:
        raw = os.read(fd, 4096)
    except ProcessLookupError:
        return None
    finally:
        os.close(fd)
    fields = raw[raw.rindex(b")") + 2 :].split()  # fields[0] is field 3 (state)
    return ProcStat(fields[0].decode(), int(fields[2]), int(fields[19]), int(fields[1]))


def boot_id() -> str:
    return Path("/proc/sys/kernel/random/boot_id").read_text().strip()


def _members(pgid: int) -> Iterator[int]:
    if pgid <= 1:
        raise ValueError(f"refusing to look at process group {pgid}")
    for name in os.listdir("/proc"):
        if name.isdigit():
            stat = read_stat(int(name))
            if stat is not None and stat.pgrp == pgid and stat.state != "Z":
                yield int(name)


def group_members(pgid: int) -> list[int]:
    """The live (not zombie) processes whose process group is `pgid`."""
    return list(_members(pgid))


def group_alive(pgid: int) -> bool:
    """Whether any live process is left in the group. One signal-0 probe answers the usual
    case (nothing left at all); only a group that still has members, maybe all zombies, is
    looked up in /proc."""
    if pgid <= 1:
        raise ValueError(f"refusing to look at process group {pgid}")
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process holds the id: look closer
    return next(_members(pgid), None) is not None


def signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


class Unit(Protocol):
    """Processes that end together: an agent's process group, or its whole box."""

    def alive(self) -> bool: ...

    def term(self) -> None:
        """SIGTERM (and SIGCONT) to what should get a grace period."""

    def kill(self) -> None:
        """SIGKILL to everything."""


@dataclass(frozen=True, slots=True)
class GroupUnit:
    pgid: int

    def alive(self) -> bool:
        return group_alive(self.pgid)

    def term(self) -> None:
        signal_group(self.pgid, signal.SIGTERM)
        signal_group(self.pgid, signal.SIGCONT)  # a stopped process must run to act on SIGTERM

    def kill(self) -> None:
        signal_group(self.pgid, signal.SIGKILL)


def _live(pids: Iterator[int] | list[int]) -> set[int]:
    return {p for p in pids if (stat := read_stat(p)) is not None and stat.state != "Z"}


def _pid_namespace(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


def namespace_members(monitor: int) -> set[int]:
    """The live processes of the pid namespace that bwrap `monitor` made (its child is the
    namespace's init). Empty once the monitor is gone: its init dies with it (bwrap's
    --die-with-parent), and the kernel kills the namespace with its init."""
    children = [p for p in _all_pids() if (st := read_stat(p)) and st.ppid == monitor]
    spaces = {ns for child in children if (ns := _pid_namespace(child)) is not None}
    spaces.discard(_pid_namespace(os.getpid()))
    if not spaces:
        return set()
    return _live(p for p in _all_pids() if _pid_namespace(p) in spaces)


def _group_exists(pgid: int) -> bool:
    """Whether any process (a zombie too) has the group: one signal-0 probe, no /proc scan."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


@dataclass(frozen=True, slots=True)
class BoxUnit:
    """A run's whole unit: the group of its first process (bwrap's monitor, or the agent
    itself without a sandbox), its cgroup's processes, and its pid namespace. SIGTERM goes to
    all but the monitor (killing it ends the box at once), SIGKILL to everything."""

    pgid: int
    cgroup: TaskCgroup | None
    sandboxed: bool

    def members(self) -> set[int]:
        found = set(group_members(self.pgid)) if _group_exists(self.pgid) else set()
        if self.cgroup is not None:
            found |= _live(self.cgroup.pids())
        elif self.sandboxed:
            found |= namespace_members(self.pgid)
        return found

    def alive(self) -> bool:
        return group_alive(self.pgid) or bool(self.members())

    def term(self) -> None:
        spared = {self.pgid} if self.sandboxed else set()
        if not self.sandboxed:
            signal_group(self.pgid, signal.SIGTERM)
        for pid in self.members() - spared:
            for sig in (signal.SIGTERM, signal.SIGCONT):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)

    def kill(self) -> None:
        signal_group(self.pgid, signal.SIGKILL)
        if self.cgroup is not None:
            self.cgroup.kill_all()
        for pid in self.members():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _termination(unit: Unit, grace: float) -> Iterator[float]:
    """Ends a unit: SIGTERM, then SIGKILL after `grace` seconds. Yields the pause before the
    next check, so the sync and the async caller share one procedure."""
    if not unit.alive():
        return
    unit.term()
    deadline = time.monotonic() + grace
    while unit.alive() and time.monotonic() < deadline:
        yield POLL_SECONDS
    deadline = time.monotonic() + KILL_WAIT_SECONDS
    while unit.alive():
        if time.monotonic() >= deadline:
            logger.error("agent processes survive SIGKILL", extra={"unit": repr(unit)})
            return
        unit.kill()
        yield POLL_SECONDS


async def terminate_unit(unit: Unit, grace: float) -> None:
    for pause in _termination(unit, grace):
        await asyncio.sleep(pause)


async def terminate_group(pgid: int, grace: float) -> None:
    await terminate_unit(GroupUnit(pgid), grace)


def _owns_group(record: ProcessRecord) -> bool:
    if record.boot_id and record.boot_id != boot_id():
        return False  # rebooted since: every process of that run is gone
    if record.cgroups:  # a cgroup of ours is never reused: whatever is in it is the run's
        return record.unit().alive()
    leader = read_stat(record.pid)
    if leader is not None and leader.start_time != record.start_time:
        return False  # the pid was recycled: that group is someone else's
    return group_alive(record.pgid)


def kill_stale_group(record: ProcessRecord, grace: float) -> bool:
    """Kill what is left of a group recorded by an earlier, interrupted run. Blocking (up to
    `grace` + a few seconds): call it from a thread in async code. True if anything was
    killed; a recycled pid, a finished group or an unknown record is left alone."""
    if not _owns_group(record):
        if record.cgroups and (not record.boot_id or record.boot_id == boot_id()):
            TaskCgroup.of_record(record.cgroups).remove()  # empty: the run's processes are gone
        return False
    logger.warning("killing a stale agent process group", extra={"pgid": record.pgid})
    for pause in _termination(record.unit(), grace):
        time.sleep(pause)
    if record.cgroups:
        TaskCgroup.of_record(record.cgroups).remove()
    return True


def _set_limit(kind: int, soft: int, hard: int) -> None:
    _, current = resource.getrlimit(kind)
    if current != resource.RLIM_INFINITY:
        soft, hard = min(soft, current), min(hard, current)
    resource.setrlimit(kind, (soft, hard))


def child_setup(
    address_space_bytes: int,
    cpu_seconds: int,
    cpu_hard_seconds: int,
    cgroup_procs: tuple[str, ...] = (),
    max_processes: int = 0,
) -> Callable[[], None]:
    """A `preexec_fn`: in the forked child, before exec, join the task's cgroup (write our
    pid to each of `cgroup_procs`), set the parent-death signal, then RLIMIT_AS and
    RLIMIT_CPU (SIGXCPU at `cpu_seconds`, SIGKILL at `cpu_hard_seconds`) and, when
    `max_processes` is set (the rlimits fallback), RLIMIT_NPROC. A limit of 0 is left unset.
    Call it in the process that forks."""
    parent_pid = os.getpid()

    def setup() -> None:
        for path in cgroup_procs:
            fd = os.open(path, os.O_WRONLY)
            try:
                os.write(fd, str(os.getpid()).encode())
            finally:
                os.close(fd)
        if _libc.prctl(_PR_SET_PDEATHSIG, int(PDEATHSIG), 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGKILL)
        if address_space_bytes > 0:
            _set_limit(resource.RLIMIT_AS, address_space_bytes, address_space_bytes)
        if cpu_seconds > 0:
            _set_limit(resource.RLIMIT_CPU, cpu_seconds, max(cpu_seconds, cpu_hard_seconds))
        if max_processes > 0:
            _set_limit(resource.RLIMIT_NPROC, max_processes, max_processes)

    return setup
