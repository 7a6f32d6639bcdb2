"""Starting the agent's process: its files written, its argv spawned in a new session (its own
process group) inside the box, with the resource limits set in the child before it execs, and
its stdout and stderr on pipes whose read ends the supervisor owns."""

from __future__ import annotations

import asyncio
import math
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from taskyard.agents.base import AgentRequest, Launch
from taskyard.agents.box import Box
from taskyard.agents.process import child_setup
from taskyard.util.safeopen import write_all

__all__ = ["Pipes", "prepare", "spawn"]


def prepare(request: AgentRequest, launch: Launch) -> None:
    """The directories the agent writes to, and the launch's files (0600: a config file may
    hold the agent's model key); a result left by an earlier attempt is removed, so only this
    run's can be read."""
    request.output_dir.mkdir(parents=True, exist_ok=True)
    Path(launch.env.get("HOME", request.task_dir / "home")).mkdir(parents=True, exist_ok=True)
    (request.output_dir / "result.json").unlink(missing_ok=True)  # a stale attempt's result
    for path, text in launch.files.items():
        target = path if path.is_absolute() else request.task_dir / path
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            write_all(fd, text.encode())
        finally:
            os.close(fd)


@dataclass
class Pipes:
    """Our read ends of the child's stdout and stderr; each fd is ours until a transport
    takes it over."""

    stdout: int
    stderr: int
    owned: list[int] = field(default_factory=list)
    transports: list[asyncio.ReadTransport] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.owned = [self.stdout, self.stderr]

    async def reader(self, fd: int, limit: int = 2**16) -> asyncio.StreamReader:
        """A stream reader over one of the pipes (`stdout` or `stderr`), on the running loop;
        its transport takes the fd over (and is closed by `close`)."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=limit, loop=loop)
        pipe = os.fdopen(fd, "rb", buffering=0)
        self.owned.remove(fd)
        try:
            transport, _ = await loop.connect_read_pipe(
                lambda: asyncio.StreamReaderProtocol(reader, loop=loop), pipe
            )
        except BaseException:
            pipe.close()
            raise
        self.transports.append(transport)
        return reader

    def close(self) -> None:
        for transport in self.transports:
            transport.close()
        for fd in self.owned:
            os.close(fd)
        self.transports.clear()
        self.owned.clear()


def spawn(
    box: Box, address_space_bytes: int, cpu_seconds: int, kill_grace_seconds: float
) -> tuple[subprocess.Popen[bytes], Pipes]:
    """The box's launch started as the leader of a new session. Our write ends of the pipes
    are closed here, so the read ends see EOF once every process of the agent closed them."""
    launch = box.launch
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    stdin: IO[bytes] | int = subprocess.DEVNULL
    try:
        if launch.stdin_file is not None:
            stdin = launch.stdin_file.open("rb")
        proc = subprocess.Popen(
            launch.argv,
            cwd=launch.cwd,
            env=dict(launch.env),
            stdin=stdin,
            stdout=out_w,
            stderr=err_w,
            start_new_session=True,
            pass_fds=box.pass_fds,
            preexec_fn=child_setup(
                address_space_bytes,
                cpu_seconds,
                cpu_seconds + max(1, math.ceil(kill_grace_seconds)),
                box.procs_files,
                box.nproc_limit,
            ),
        )
    except BaseException:
        os.close(out_r)
        os.close(err_r)
        raise
    finally:
        box.spawned()
        os.close(out_w)
        os.close(err_w)
        if not isinstance(stdin, int):
            stdin.close()
    return proc, Pipes(out_r, err_r)
