"""Reading what an agent left in its `outputs/` (result.json, codex's last message) from
outside its box, where taskyard runs with the tokens.

The agent writes `outputs/` as it likes, so a name there may be a symbolic link (to
`/etc/shadow`, to `$TASKYARD_HOME/taskyard.db`, to another task's result), a hard link, a
FIFO (a plain `read` would wait forever), a device or a 10 GB sparse file. `read_output`
reads a file only if it is, at the moment it is opened, a regular file with one link, owned
by taskyard's uid (the box's uid maps to it), reached without following a link (`outputs/`
included), and at most `max_bytes` long; anything else raises `AgentOutputRefused` with the
file unread, never hangs, and never reads more than `max_bytes + 1` bytes.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from taskyard.exceptions import AgentOutputRefused

MAX_OUTPUT_BYTES = 16 * 1024**2  # result.json and the last message: far above any real one
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


def _why_not(info: os.stat_result, max_bytes: int) -> str | None:
    if stat.S_ISLNK(info.st_mode):
        return "is a symbolic link"
    if not stat.S_ISREG(info.st_mode):
        return "is not a regular file"
    if info.st_nlink != 1:
        return f"has {info.st_nlink} links (a hard link to another file)"
    if info.st_uid != os.geteuid():
        return f"is owned by uid {info.st_uid}, not taskyard's"
    if info.st_size > max_bytes:
        return f"is {info.st_size} bytes, over the limit of {max_bytes}"
    return None


def _open(output_dir: Path, name: str, max_bytes: int) -> int | None:
    try:
        dir_fd = os.open(output_dir, _DIR_FLAGS)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise AgentOutputRefused(f"{output_dir} is a link or not a directory") from None
        raise
    try:
        try:
            before = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        why = _why_not(before, max_bytes)
        if why is not None:
            raise AgentOutputRefused(f"outputs/{name} {why}: not read")
        fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
    finally:
        os.close(dir_fd)
    after = os.fstat(fd)
    if (after.st_dev, after.st_ino) != (before.st_dev, before.st_ino) or _why_not(after, max_bytes):
        os.close(fd)
        raise AgentOutputRefused(f"outputs/{name} changed while it was opened: not read")
    return fd


def read_output(output_dir: Path, name: str, max_bytes: int = MAX_OUTPUT_BYTES) -> bytes | None:
    """The bytes of `output_dir/name`, or None when there is no such file. Raises
    AgentOutputRefused when it is not a file taskyard may read (see the module docstring),
    OSError when reading it fails."""
    fd = _open(output_dir, name, max_bytes)
    if fd is None:
        return None
    try:
        chunks: list[bytes] = []
        left = max_bytes + 1
        while left > 0 and (chunk := os.read(fd, min(left, 1024**2))):
            chunks.append(chunk)
            left -= len(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > max_bytes:  # grew after the check
        raise AgentOutputRefused(f"outputs/{name} is over the limit of {max_bytes} bytes")
    return data
