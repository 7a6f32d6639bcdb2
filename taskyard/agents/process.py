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
from typing import Any

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

    def __post_init__(self) -> None:
        if self.pid <= 1 or self.pgid <= 1:
            raise ValueError(f"not an agent process: pid {self.pid}, pgid {self.pgid}")

    def to_json(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "pgid": self.pgid,
            "start_time": self.start_time,
            "boot_id": self.boot_id,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ProcessRecord:
        return cls(
            pid=int(data["pid"]),
            pgid=int(data["pgid"]),
            start_time=int(data["start_time"]),
            boot_id=str(data.get("boot_id", "")),
        )


@dataclass(frozen=True, slots=True)
class ProcStat:
    state: str
    pgrp: int
    start_time: int


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
    return ProcStat(fields[0].decode(), int(fields[2]), int(fields[19]))


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


def _termination(pgid: int, grace: float) -> Iterator[float]:
    """Ends a process group: SIGTERM, then SIGKILL after `grace` seconds. Yields the pause
    before the next check, so the sync and the async caller share one procedure."""
    if not group_alive(pgid):
        return
    signal_group(pgid, signal.SIGTERM)
    signal_group(pgid, signal.SIGCONT)  # a stopped process must run to act on SIGTERM
    deadline = time.monotonic() + grace
    while group_alive(pgid) and time.monotonic() < deadline:
        yield POLL_SECONDS
    deadline = time.monotonic() + KILL_WAIT_SECONDS
    while group_alive(pgid):
        if time.monotonic() >= deadline:
            logger.error("agent processes survive SIGKILL", extra={"pgid": pgid})
            return
        signal_group(pgid, signal.SIGKILL)
        yield POLL_SECONDS


async def terminate_group(pgid: int, grace: float) -> None:
    for pause in _termination(pgid, grace):
        await asyncio.sleep(pause)


def _owns_group(record: ProcessRecord) -> bool:
    if record.boot_id and record.boot_id != boot_id():
        return False  # rebooted since: every process of that run is gone
    leader = read_stat(record.pid)
    if leader is not None and leader.start_time != record.start_time:
        return False  # the pid was recycled: that group is someone else's
    return group_alive(record.pgid)


def kill_stale_group(record: ProcessRecord, grace: float) -> bool:
    """Kill what is left of a group recorded by an earlier, interrupted run. Blocking (up to
    `grace` + a few seconds): call it from a thread in async code. True if anything was
    killed; a recycled pid, a finished group or an unknown record is left alone."""
    if not _owns_group(record):
        return False
    logger.warning("killing a stale agent process group", extra={"pgid": record.pgid})
    for pause in _termination(record.pgid, grace):
        time.sleep(pause)
    return True


def _set_limit(kind: int, soft: int, hard: int) -> None:
    _, current = resource.getrlimit(kind)
    if current != resource.RLIM_INFINITY:
        soft, hard = min(soft, current), min(hard, current)
    resource.setrlimit(kind, (soft, hard))


def child_setup(
    address_space_bytes: int, cpu_seconds: int, cpu_hard_seconds: int
) -> Callable[[], None]:
    """A `preexec_fn`: in the forked child, before exec, set the parent-death signal, then
    RLIMIT_AS and RLIMIT_CPU (SIGXCPU at `cpu_seconds`, SIGKILL at `cpu_hard_seconds`).
    A limit of 0 is left unset. Call it in the process that forks."""
    parent_pid = os.getpid()

    def setup() -> None:
        if _libc.prctl(_PR_SET_PDEATHSIG, int(PDEATHSIG), 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGKILL)
        if address_space_bytes > 0:
            _set_limit(resource.RLIMIT_AS, address_space_bytes, address_space_bytes)
        if cpu_seconds > 0:
            _set_limit(resource.RLIMIT_CPU, cpu_seconds, max(cpu_seconds, cpu_hard_seconds))

    return setup
