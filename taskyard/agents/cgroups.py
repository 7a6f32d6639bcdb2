"""Memory and process limits for a whole task, and a way to find (and kill) all its processes.

`detect()` picks the mechanism once per process, in this order:

1. **cgroup v2** — `/sys/fs/cgroup` is a cgroup2 mount and taskyard's own cgroup (from
   `/proc/self/cgroup`) delegates `memory` and `pids` to its children (both in its
   `cgroup.subtree_control`, or enabling them there works). Per task: a child cgroup with
   `memory.max`, `memory.swap.max` 0, `pids.max`; killed through `cgroup.kill`.
2. **cgroup v1** — the `memory` and `pids` hierarchies are mounted and our own cgroups in them
   accept a child. Per task: a child in each with `memory.limit_in_bytes` (and
   `memory.memsw.limit_in_bytes`: no escape to swap) and `pids.max`.
3. **rlimits** — neither: each process gets RLIMIT_AS (`runs.address_space_bytes`) and the
   box's uid an RLIMIT_NPROC of (its processes now + `max_processes`). Per process, not per
   task: three processes may use three times the memory; RLIMIT_NPROC counts every process of
   taskyard's uid (other tasks' too), and the kernel does not apply it to uid 0 at all, so a
   taskyard running as root has no process limit here. `taskyard doctor` says so.

The agent's first process joins the cgroup in the forked child before it execs (the
`procs_files` are written by `child_setup`), so everything it starts — setsid children
included — is counted and found: `pids()` lists them, `oom_kills()` tells a memory-limit death
(the supervisor then stops the task and says why), `remove()` deletes the cgroup once empty.
"""

from __future__ import annotations

import enum
import functools
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from taskyard.exceptions import SandboxError

log = logging.getLogger(__name__)

CGROUP_ROOT = Path("/sys/fs/cgroup")


class Mechanism(enum.StrEnum):
    CGROUP_V2 = "cgroup v2"
    CGROUP_V1 = "cgroup v1"
    RLIMITS = "rlimits"


def _own_paths(proc_cgroup: str) -> dict[str, str]:
    """controller (or "" for v2) → our cgroup path, from /proc/self/cgroup's text."""
    found: dict[str, str] = {}
    for line in proc_cgroup.splitlines():
        _, controllers, path = line.split(":", 2)
        for name in controllers.split(",") if controllers else [""]:
            found[name] = path
    return found


@dataclass(frozen=True, slots=True)
class Hierarchy:
    """Where a task's cgroups are made: the parent dirs, one per hierarchy."""

    mechanism: Mechanism
    parents: tuple[Path, ...]  # v2: (ours,); v1: (memory parent, pids parent); rlimits: ()


def _writable_child(parent: Path) -> bool:
    probe = parent / f"taskyard-probe-{secrets.token_hex(4)}"
    try:
        probe.mkdir()
    except OSError:
        return False
    probe.rmdir()
    return True


def _v2(root: Path, own: dict[str, str]) -> Hierarchy | None:
    if not (root / "cgroup.controllers").exists() or "" not in own:
        return None
    parent = root / own[""].lstrip("/")
    control = parent / "cgroup.subtree_control"
    try:
        enabled = set(control.read_text().split())
        if not {"memory", "pids"} <= enabled:
            control.write_text("+memory +pids")
    except OSError:
        return None
    return Hierarchy(Mechanism.CGROUP_V2, (parent,)) if _writable_child(parent) else None


def _v1(root: Path, own: dict[str, str]) -> Hierarchy | None:
    parents = []
    for controller in ("memory", "pids"):
        if controller not in own or not (root / controller).is_dir():
            return None
        parents.append(root / controller / own[controller].lstrip("/"))
    if all(_writable_child(p) for p in parents):
        return Hierarchy(Mechanism.CGROUP_V1, tuple(parents))
    return None


def detect_at(root: Path, proc_cgroup: str) -> Hierarchy:
    own = _own_paths(proc_cgroup)
    return _v2(root, own) or _v1(root, own) or Hierarchy(Mechanism.RLIMITS, ())


@functools.cache
def detect() -> Hierarchy:
    """The mechanism this process uses (checked once)."""
    try:
        text = Path("/proc/self/cgroup").read_text()
    except OSError:
        return Hierarchy(Mechanism.RLIMITS, ())
    return detect_at(CGROUP_ROOT, text)


def _write(path: Path, value: str) -> None:
    path.write_text(value)


@dataclass(frozen=True, slots=True)
class TaskCgroup:
    """One task's cgroup(s). Every method is safe to call after the processes are gone."""

    mechanism: Mechanism
    dirs: tuple[Path, ...]
    memory_bytes: int = 0

    @classmethod
    def create(
        cls, hierarchy: Hierarchy, name: str, memory_bytes: int, max_processes: int
    ) -> TaskCgroup | None:
        """A fresh cgroup with the limits (0 = none), or None under `rlimits`."""
        if hierarchy.mechanism is Mechanism.RLIMITS:
            return None
        leaf = f"taskyard-{name}-{secrets.token_hex(3)}"
        dirs = tuple(parent / leaf for parent in hierarchy.parents)
        group = cls(hierarchy.mechanism, dirs, memory_bytes)
        try:
            for path in dirs:
                path.mkdir()
            group._limit(memory_bytes, max_processes)
        except OSError as exc:
            group.remove()
            raise SandboxError(f"cannot make the task's cgroup {dirs[0]}: {exc}") from exc
        return group

    def _limit(self, memory_bytes: int, max_processes: int) -> None:
        if self.mechanism is Mechanism.CGROUP_V2:
            (top,) = self.dirs
            if memory_bytes:
                _write(top / "memory.max", str(memory_bytes))
                if (top / "memory.swap.max").exists():
                    _write(top / "memory.swap.max", "0")
            if max_processes:
                _write(top / "pids.max", str(max_processes))
            return
        memory, pids = self.dirs
        if memory_bytes:
            _write(memory / "memory.limit_in_bytes", str(memory_bytes))
            if (memory / "memory.memsw.limit_in_bytes").exists():
                _write(memory / "memory.memsw.limit_in_bytes", str(memory_bytes))
        if max_processes:
            _write(pids / "pids.max", str(max_processes))

    @property
    def procs_files(self) -> tuple[str, ...]:
        """What the agent's first process writes its pid to, before it execs."""
        return tuple(str(path / "cgroup.procs") for path in self.dirs)

    def pids(self) -> list[int]:
        found: set[int] = set()
        for path in self.dirs:
            try:
                found.update(int(p) for p in (path / "cgroup.procs").read_text().split())
            except (OSError, ValueError):
                continue
        return sorted(found)

    def kill_all(self) -> None:
        """SIGKILL everything in the cgroup (cgroup.kill where the kernel has it)."""
        kill = self.dirs[0] / "cgroup.kill"
        if self.mechanism is Mechanism.CGROUP_V2 and kill.exists():
            try:
                _write(kill, "1")
                return
            except OSError:
                pass
        for pid in self.pids():
            try:
                os.kill(pid, 9)
            except (ProcessLookupError, PermissionError):
                continue

    def oom_kills(self) -> int:
        """How many of the task's processes the kernel killed for the memory limit."""
        name = "memory.events" if self.mechanism is Mechanism.CGROUP_V2 else "memory.oom_control"
        try:
            text = (self.dirs[0] / name).read_text()
        except OSError:
            return 0
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0

    def remove(self) -> None:
        for path in self.dirs:
            try:
                path.rmdir()
            except FileNotFoundError:
                continue
            except OSError as exc:
                log.warning("cannot remove a task cgroup", extra={"cgroup": str(path)})
                log.debug("rmdir %s: %s", path, exc)

    @classmethod
    def of_record(cls, dirs: tuple[str, ...]) -> TaskCgroup:
        """The cgroup a `ProcessRecord` names (for killing what a crashed run left)."""
        v2 = len(dirs) == 1
        return cls(Mechanism.CGROUP_V2 if v2 else Mechanism.CGROUP_V1, tuple(map(Path, dirs)))


def describe(memory_bytes: int, max_processes: int) -> str:
    """One line: the mechanism in force and the task limits."""
    mechanism = detect().mechanism
    memory = f"{memory_bytes / 1024**3:g} GiB" if memory_bytes else "no memory limit"
    procs = f"{max_processes} processes" if max_processes else "no process limit"
    if mechanism is Mechanism.RLIMITS:
        if max_processes and os.geteuid() == 0:  # the kernel exempts uid 0's processes
            procs = "NO process limit (RLIMIT_NPROC does not bind a root taskyard's boxes)"
        elif max_processes:
            procs = f"RLIMIT_NPROC {procs} more than taskyard's uid runs at spawn"
        return (
            f"task limits: rlimits only (no delegated cgroup): RLIMIT_AS per process, {procs}; "
            f"{memory} is NOT enforced for the task as a whole"
        )
    return f"task limits: {mechanism} — {memory}, {procs} for each task, all its processes"
