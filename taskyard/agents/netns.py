"""The box's loopback listeners made from outside it: no relay process inside the box.

    gate = NetGate.open()                  # None when this process cannot enter a netns
    argv = bwrap ... *gate.bwrap_args() -- agent ...   (spawn with pass_fds=gate.pass_fds)
    gate.spawned()                         # in the parent, right after the spawn
    listeners = await gate.listen([8123, 3128])   # bound in the box's network namespace
    gate.release()                         # the agent starts now; its first connect finds them

bwrap writes the box's init pid to `--info-fd` once its namespaces exist, and waits on
`--block-fd` before it runs the agent. In between, a short-lived thread of taskyard enters the
box's network namespace (`setns`), binds and listens there (its only interface is `lo`):
the sockets stay in the box's namespace, served by the egress proxy in taskyard's own process
(`taskyard.agents.egress`). Entering a network namespace needs CAP_SYS_ADMIN (taskyard running
as root, as in a container); without it `NetGate.open()` says None and the box runs the
in-box relay instead (`taskyard/agents/relay.py`, a Python start-up on the agent's path).

If the gate is closed without a release (the box failed to start, or taskyard's side failed),
bwrap reads end-of-file on the block fd and goes on: the agent then runs without its
listeners, so its connections are refused. It never gets more network than it would have.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import json
import logging
import os
import socket
import threading
from collections.abc import Callable
from typing import TypeVar

log = logging.getLogger(__name__)

CLONE_NEWNET = 0x40000000
INFO_TIMEOUT_SECONDS = 30.0
_libc = ctypes.CDLL(None, use_errno=True)
_T = TypeVar("_T")


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"setns: {os.strerror(errno)}")


@functools.cache
def netns_usable() -> bool:
    """Whether this process may enter a network namespace (checked once, on its own)."""

    def probe() -> bool:
        try:
            fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return False
        try:
            _setns(fd)  # our own: a no-op that needs the same capability as the box's
        except OSError:
            return False
        finally:
            os.close(fd)
        return True

    return _in_thread(probe)


def _in_thread(work: Callable[[], _T]) -> _T:
    """Runs `work` in a fresh thread (a thread that entered a namespace is never reused);
    `work` handles its own errors."""
    box: list[_T] = []
    thread = threading.Thread(target=lambda: box.append(work()), name="taskyard-netns")
    thread.start()
    thread.join()
    return box[0]


def _read_info(fd: int) -> int | None:
    """The box's init pid from bwrap's info JSON, or None at end-of-file (bwrap failed)."""
    data = b""
    while chunk := os.read(fd, 4096):
        data += chunk
        with contextlib.suppress(ValueError):
            pid = json.loads(data).get("child-pid")
            return int(pid) if isinstance(pid, int) else None
    return None


def _bind_inside(pid: int, ports: list[int]) -> list[socket.socket]:
    """Listening sockets on 127.0.0.1:`ports` in the network namespace of `pid`."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    theirs = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    made: list[socket.socket] = []
    try:
        _setns(theirs)
        try:
            for port in ports:
                listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                made.append(listener)
                # any address: bwrap may not have brought `lo` up yet (127.0.0.1 would not
                # be assignable), and a box's namespace has no interface but `lo` anyway
                listener.bind(("0.0.0.0", port))
                listener.listen(64)
                listener.setblocking(False)
        finally:
            _setns(own)  # if this fails the thread ends anyway: nothing else runs in it
    except BaseException:
        for listener in made:
            listener.close()
        raise
    finally:
        os.close(own)
        os.close(theirs)
    return made


class NetGate:
    """One box's info and block pipes; see the module docstring."""

    def __init__(self) -> None:
        self._info_r, self._info_w = os.pipe()
        self._block_r, self._block_w = os.pipe()
        self._parent_ends: list[int] = [self._info_r, self._block_w]
        self._child_ends: list[int] = [self._info_w, self._block_r]

    @classmethod
    def open(cls) -> NetGate | None:
        return cls() if netns_usable() else None

    @property
    def pass_fds(self) -> tuple[int, ...]:
        return tuple(self._child_ends)

    def bwrap_args(self) -> tuple[str, ...]:
        return ("--info-fd", str(self._info_w), "--block-fd", str(self._block_r))

    def spawned(self) -> None:
        """The child has its ends: close ours of them (so bwrap's exit reads as EOF)."""
        for fd in self._child_ends:
            os.close(fd)
        self._child_ends.clear()

    async def listen(self, ports: list[int]) -> list[socket.socket]:
        """Listening sockets on the box's loopback; raises OSError when they cannot be made
        (the box never started, or the ports are taken)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[socket.socket]] = loop.create_future()

        def work() -> list[socket.socket]:
            pid = _read_info(self._info_r)
            if pid is None:
                raise OSError("the sandbox did not start (no info from bwrap)")
            return _bind_inside(pid, ports)

        def run() -> None:
            try:
                result = work()
            except OSError as exc:
                loop.call_soon_threadsafe(_settle, future, None, exc)
            else:
                loop.call_soon_threadsafe(_settle, future, result, None)

        threading.Thread(target=run, name="taskyard-netns", daemon=True).start()
        return await asyncio.wait_for(future, INFO_TIMEOUT_SECONDS)

    def release(self) -> None:
        """Lets bwrap run the agent (idempotent). The info pipe stays open until `close`:
        bwrap may not have written its info yet when `listen` failed early, and a closed read
        end would kill it with SIGPIPE (the task then failed for a listener it does without)."""
        if self._block_w in self._parent_ends:
            with contextlib.suppress(OSError):
                os.write(self._block_w, b"x")
            self._parent_ends.remove(self._block_w)
            with contextlib.suppress(OSError):
                os.close(self._block_w)

    def close(self) -> None:
        for fd in (*self._parent_ends, *self._child_ends):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._parent_ends.clear()
        self._child_ends.clear()


def _settle(
    future: asyncio.Future[list[socket.socket]],
    result: list[socket.socket] | None,
    error: OSError | None,
) -> None:
    if future.cancelled():
        for listener in result or ():
            listener.close()
    elif error is not None:
        future.set_exception(error)
    else:
        future.set_result(result or [])
