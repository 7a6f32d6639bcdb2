"""The agent's box: every agent process runs inside a bubblewrap (`bwrap`) sandbox.

API (the supervisor is the only caller; adapters need nothing but `Launch` fields):

- `SandboxSettings` — what an operator configures (`runs.sandbox`, `runs.memory_bytes`,
  `runs.max_processes`, `runs.sandbox_read_only`) plus what taskyard hides (`hidden`:
  `$TASKYARD_HOME`). `Limits.sandbox` carries it.
- `resolve_mode(mode)` — `auto` → `bwrap` when `bwrap --ro-bind / / true` works (checked once per
  process), else `SandboxError`: taskyard refuses to run agents rather than run them in the
  open. `none` is only ever an explicit choice, and logged loudly (see `describe`).
- `policy_for(request, launch, settings)` → `Policy`: which paths the box sees and how.
- `bwrap_argv(policy, launch, relay)` → the argv that runs `launch.argv` inside the box.

What the box is (`bwrap_argv`):
- user namespace with uid/gid 1000 inside, mapped to taskyard's own uid outside (so the MCP
  bridge's and the egress proxy's peer-uid checks pass); no capabilities; pid, network, ipc,
  uts and cgroup namespaces of its own; a fresh `/proc` (only the box's processes), a minimal
  `/dev`, a private tmpfs `/tmp`; `--die-with-parent`, `--new-session`; the root is remounted
  read-only at the end.
- Read-only: the system (`/usr`, `/bin`, `/lib*`, `/sbin`, an allowlist of `/etc` entries —
  never `/etc/shadow` and the like), Python's prefixes and the `taskyard` package (the MCP
  server and the relay run from there), `settings.read_only`, `launch.read_only` (an
  adapter adds its CLI's install dirs there), and the absolute-path files in `launch.argv`
  (argv[0] found on PATH included), each bound as the file itself.
- Hidden: `settings.hidden` and the workspace root (every task's directory) are covered by an
  empty, read-only tmpfs wherever a read-only bind above made them visible or the task's own
  binds would make their path (so nothing can be written there, not even into the box).
- The task: its directory read-only (context, prompts, sockets), then read-write its
  `workspace/`, `outputs/` and config home (`$HOME`, default `<task>/home`), each at its own
  path, so every path in the agent's env and argv means the same inside.
- A git worktree in the workspace (`.git` file → `<mirror>/worktrees/<name>`): the mirror is
  bound read-only (its object store, refs and config cannot be changed), its `worktrees/`
  covered by an empty tmpfs (other tasks' worktrees of the same mirror — their index, HEAD and
  new objects — are not in sight), and the worktree's own admin dir read-write (index, HEAD:
  status, add and commit on the detached HEAD work); new objects go to `<admin>/objects`
  through `GIT_OBJECT_DIRECTORY`, with the mirror's objects as
  `GIT_ALTERNATE_OBJECT_DIRECTORIES` (read them outside with the same two vars).
- Unix sockets the agent must reach (`Policy.sockets`: the MCP bridge's) bound at their path.
- Network: none but loopback. With egress endpoints, the box's loopback ports (the
  provider's, and an HTTP proxy port) are served by the egress proxy outside the box
  (`taskyard.agents.egress`): on listeners taskyard makes in the box's network namespace
  before the agent starts (`taskyard.agents.netns`; needs CAP_SYS_ADMIN, as root), else
  through `taskyard/agents/relay.py` run as the box's first process.

The environment is exactly `launch.env` (plus the proxy variables): bwrap passes its own
environment on, so nothing is written in argv (the process list).
"""

from __future__ import annotations

import enum
import functools
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import taskyard
from taskyard.agents.base import AgentRequest, Launch
from taskyard.exceptions import SandboxError

log = logging.getLogger(__name__)

BOX_UID = 1000
BOX_HOSTNAME = "taskyard-agent"
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# /etc entries an agent's programs need (loader, TLS roots, names, time zones, git); never
# shadow, gshadow, ssh keys, sudoers, machine credentials.
ETC_ENTRIES = (
    *("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "ssl", "ca-certificates"),
    *("ca-certificates.conf", "localtime", "timezone", "zoneinfo", "hosts", "host.conf"),
    *("nsswitch.conf", "passwd", "group", "mime.types", "gitconfig", "os-release"),
    *("debian_version", "protocols", "services", "gai.conf", "locale.alias", "inputrc"),
)
RELAY_SCRIPT = Path(__file__).with_name("relay.py")


class SandboxMode(enum.StrEnum):
    AUTO = "auto"  # bwrap when usable, else refuse to run agents
    BWRAP = "bwrap"
    NONE = "none"  # no sandbox: an explicit, loudly logged choice


@dataclass(frozen=True, slots=True)
class SandboxSettings:
    """What a run's box is made of; `Limits.sandbox`. 0 turns a limit off."""

    mode: SandboxMode = SandboxMode.AUTO
    memory_bytes: int = 4 * 1024**3  # all processes of the task together
    max_processes: int = 512  # all processes of the task together
    read_only: tuple[Path, ...] = ()  # more paths the agent may read
    hidden: tuple[Path, ...] = ()  # never visible inside ($TASKYARD_HOME)


@dataclass(frozen=True, slots=True)
class Policy:
    """The paths of one box. Binds keep their path inside."""

    cwd: Path
    task_dir: Path
    read_only: tuple[Path, ...]  # system, python, extras (bound before `hidden`)
    hidden: tuple[Path, ...]  # tmpfs over these when under a read-only bind
    late_read_only: tuple[Path, ...]  # bound after `hidden` (argv files, git mirrors)
    read_write: tuple[Path, ...]  # workspace, outputs, home, worktree admin dirs
    sockets: tuple[Path, ...] = ()
    private: tuple[Path, ...] = ()  # tmpfs over these after `late_read_only` (`worktrees/`)
    symlinks: tuple[tuple[str, str], ...] = ()  # (target, path) e.g. ("usr/bin", "/bin")
    env: Mapping[str, str] = field(default_factory=dict)  # added to the agent's env


@dataclass(frozen=True, slots=True)
class Relay:
    """The in-box relay: loopback forwards and the proxy port (see `taskyard.agents.egress`)."""

    socket: Path  # the egress proxy's unix socket (outside path, bound at the same path)
    forwards: tuple[tuple[int, str], ...]  # (box loopback port, "host:port" outside)
    proxy_port: int


# --- mode -----------------------------------------------------------------------------


@functools.cache
def bwrap_problem(binary: str = "bwrap") -> str | None:
    """Why bubblewrap cannot be used here, or None when `bwrap --ro-bind / / true` works."""
    path = shutil.which(binary)
    if path is None:
        return f"{binary} is not installed (Debian package bubblewrap)"
    probe = [path, "--unshare-all", "--unshare-user", "--ro-bind", "/", "/", "true"]
    try:
        done = subprocess.run(probe, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"{path} does not run: {exc}"
    if done.returncode != 0:
        return f"{path} cannot make a sandbox here: {done.stderr.strip()[:300]}"
    return None


@functools.cache
def bwrap_version() -> str:
    path = shutil.which("bwrap")
    if path is None:
        return "not installed"
    done = subprocess.run([path, "--version"], capture_output=True, text=True, check=False)
    return done.stdout.strip() or "unknown version"


def resolve_mode(mode: SandboxMode) -> SandboxMode:
    """The mode in force: `bwrap` or `none`. Raises SandboxError when the box is wanted
    (auto, bwrap) and bwrap cannot make one."""
    if mode is SandboxMode.NONE:
        return mode
    problem = bwrap_problem()
    if problem is not None:
        raise SandboxError(
            f"no agent sandbox: {problem}; install bubblewrap, or set runs.sandbox: none "
            "to run agents unsandboxed (not recommended)"
        )
    return SandboxMode.BWRAP


# --- policy ---------------------------------------------------------------------------


def _existing(paths: Iterable[Path]) -> Iterator[Path]:
    seen: set[Path] = set()
    for path in paths:
        absolute = Path(os.path.abspath(path))
        if absolute not in seen and absolute.exists():
            seen.add(absolute)
            yield absolute


def _python_paths() -> list[Path]:
    package = Path(taskyard.__file__).resolve().parent
    exe = Path(sys.executable)
    return [
        Path(sys.prefix),
        Path(sys.base_prefix),
        Path(sys.exec_prefix),
        exe.resolve().parent.parent,
        package,
    ]


def _argv_files(launch: Launch) -> list[Path]:
    """argv[0] as found on the agent's PATH, and every absolute argv element that is a file."""
    found: list[Path] = []
    first = shutil.which(launch.argv[0], path=launch.env.get("PATH")) if launch.argv else None
    for arg in (first, *launch.argv):
        if arg and os.path.isabs(arg) and os.path.isfile(arg):
            found += [Path(arg), Path(arg).resolve()]
    return found


def worktree_admin(checkout: Path) -> tuple[Path, Path] | None:
    """(mirror, admin dir) of a git worktree at `checkout`, or None when it is not one."""
    dot_git = checkout / ".git"
    if not dot_git.is_file():
        return None
    line = dot_git.read_text(encoding="utf-8", errors="replace").strip()
    if not line.startswith("gitdir:"):
        return None
    admin = (checkout / line.removeprefix("gitdir:").strip()).resolve()
    try:
        common = (admin / "commondir").read_text(encoding="utf-8").strip()
    except OSError:
        return None
    mirror = (admin / common).resolve()
    return (mirror, admin) if (mirror / "objects").is_dir() else None


def _worktrees(workspace: Path) -> list[tuple[Path, Path]]:
    candidates = [workspace]
    if workspace.is_dir():
        candidates += [p for p in workspace.iterdir() if p.is_dir() and not p.is_symlink()]
    return [found for c in candidates if (found := worktree_admin(c)) is not None]


def _git_env(worktrees: list[tuple[Path, Path]]) -> dict[str, str]:
    if len(worktrees) != 1:
        return {}  # objects of one store only: several worktrees keep git's defaults
    mirror, admin = worktrees[0]
    (admin / "objects").mkdir(exist_ok=True)
    return {
        "GIT_OBJECT_DIRECTORY": str(admin / "objects"),
        "GIT_ALTERNATE_OBJECT_DIRECTORIES": str(mirror / "objects"),
    }


def _system() -> tuple[list[Path], list[tuple[str, str]]]:
    binds: list[Path] = []
    links: list[tuple[str, str]] = []
    for name in SYSTEM_DIRS:
        path = Path(name)
        if path.is_symlink():
            links.append((os.readlink(path), name))
        elif path.is_dir():
            binds.append(path)
    binds += [Path("/etc") / entry for entry in ETC_ENTRIES]
    return binds, links


def policy_for(
    request: AgentRequest,
    launch: Launch,
    settings: SandboxSettings,
    sockets: tuple[Path, ...] = (),
) -> Policy:
    """The box for one run of `request` started as `launch` (see the module docstring)."""
    system, links = _system()
    home = Path(launch.env.get("HOME", request.task_dir / "home"))
    worktrees = _worktrees(request.workspace)
    read_write = [request.workspace, request.output_dir, home, *(a for _, a in worktrees)]
    hidden = tuple(Path(os.path.abspath(p)) for p in (*settings.hidden, request.task_dir.parent))
    read_only = tuple(
        _existing([*system, *_python_paths(), *settings.read_only, *launch.read_only])
    )
    late = [*_argv_files(launch), *(m for m, _ in worktrees)]
    return Policy(
        cwd=launch.cwd,
        task_dir=request.task_dir,
        read_only=read_only,
        hidden=hidden,
        # visible already unless hidden (a bind on a read-only mount could not be made)
        late_read_only=tuple(
            p for p in _existing(late) if _under(p, hidden) or not _under(p, read_only)
        ),
        read_write=tuple(_existing(read_write)),
        sockets=tuple(_existing(sockets)),
        private=tuple(_existing(m / "worktrees" for m, _ in worktrees)),
        symlinks=tuple(links),
        env=_git_env(worktrees),
    )


# --- argv -----------------------------------------------------------------------------


def _under(path: Path, parents: Iterable[Path]) -> bool:
    return any(path == p or path.is_relative_to(p) for p in parents)


def _bind_args(option: str, paths: Iterable[Path]) -> list[str]:
    return [arg for path in paths for arg in (option, str(path), str(path))]


def _mounts(policy: Policy) -> list[str]:
    args: list[str] = []
    for target, path in policy.symlinks:
        args += ["--symlink", target, path]
    args += _bind_args("--ro-bind", policy.read_only)
    # Covered where a bind above shows it, or where the task's own binds would make its path
    # (in the box's /tmp, say): an empty tmpfs, read-only once the binds under it are made.
    covered = [
        str(hidden)
        for hidden in policy.hidden
        if hidden.is_dir()
        and (_under(hidden, policy.read_only) or _under(policy.task_dir, [hidden]))
    ]
    for hidden in covered:
        args += ["--tmpfs", hidden]
    args += _bind_args("--ro-bind", policy.late_read_only)
    for private in map(str, policy.private):
        args += ["--tmpfs", private]
    args += _bind_args("--ro-bind", [policy.task_dir])
    args += _bind_args("--bind", policy.read_write)
    args += _bind_args("--bind", policy.sockets)
    for hidden in [*covered, *map(str, policy.private)]:
        args += ["--remount-ro", hidden]
    return args


def bwrap_argv(
    policy: Policy, launch: Launch, relay: Relay | None = None, extra: tuple[str, ...] = ()
) -> tuple[str, ...]:
    """The argv running `launch.argv` in the box (bwrap first, the agent after `--`);
    `extra` are more bwrap options (`taskyard.agents.netns`' info and block fds)."""
    bwrap = shutil.which("bwrap") or "bwrap"
    args = [
        bwrap,
        *("--unshare-all", "--unshare-user", "--uid", str(BOX_UID), "--gid", str(BOX_UID)),
        *("--hostname", BOX_HOSTNAME, "--die-with-parent", "--new-session"),
        *("--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"),
        *_mounts(policy),
        *("--remount-ro", "/", "--chdir", str(policy.cwd), *extra, "--"),
    ]
    return (*args, *relay_argv(relay), *launch.argv)


def relay_argv(relay: Relay | None) -> tuple[str, ...]:
    """The in-box relay's argv prefix (empty without egress): it runs the agent after `--`."""
    if relay is None:
        return ()
    forwards = [f"--forward={port}:{target}" for port, target in relay.forwards]
    return (
        sys.executable,
        *("-I", "-S", str(RELAY_SCRIPT), f"--socket={relay.socket}"),
        *forwards,
        f"--proxy={relay.proxy_port}",
        "--",
    )
