"""Opening a file someone else can write beside: an agent's `outputs/`, a task's workspace.

An agent may leave any name as a symbolic link (to `/etc/shadow`, to `taskyard.db`), a hard
link, a FIFO (a plain open or read would wait forever), a device, or a file of another user.
`open_beneath(root, parts)` opens `root/parts...` only if every directory on the way is reached
without following a link, and the file itself is, in an `lstat` before the open (never an open
first: opening and closing a planted hard link to `taskyard.db` would make SQLite drop its
locks, which belong to the process and the inode) and in an `fstat` after it, the same regular
file with exactly one link, owned by taskyard's own user (and, given `max_bytes`, no bigger).
It opens with `O_NOFOLLOW | O_NONBLOCK`, so a FIFO swapped in cannot block it. Anything else
raises `UnsafePath`, with the file unopened; the callers turn it into their own refusal.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

__all__ = ["DIR_FLAGS", "FILE_FLAGS", "UnsafePath", "open_beneath", "why_not", "write_all"]

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


class UnsafePath(Exception):
    """`path` was not opened. `why` says what it is ("is a symbolic link", "changed while it
    was opened", ...); `directory`: a directory on the way, not the file, was refused;
    `changed`: the file passed its check but was another file (or no longer safe) once open."""

    def __init__(self, path: Path, why: str, *, directory: bool = False, changed: bool = False):
        super().__init__(f"{path} {why}")
        self.path, self.why = path, why
        self.directory, self.changed = directory, changed


def why_not(info: os.stat_result, max_bytes: int | None = None) -> str | None:
    """Why a file with this `lstat`/`fstat` is not one taskyard may open, or None."""
    if stat.S_ISLNK(info.st_mode):
        return "is a symbolic link"
    if not stat.S_ISREG(info.st_mode):
        return "is not a regular file"
    if info.st_nlink != 1:
        return f"has {info.st_nlink} links (a hard link to another file)"
    if info.st_uid != os.geteuid():
        return f"is owned by uid {info.st_uid}, not taskyard's ({os.geteuid()})"
    if max_bytes is not None and info.st_size > max_bytes:
        return f"is {info.st_size} bytes, over the limit of {max_bytes}"
    return None


def _open_dir(name: str | Path, dir_fd: int | None, shown: Path) -> int | None:
    try:
        return os.open(name, DIR_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise UnsafePath(shown, "is a link or not a directory", directory=True) from None
        raise


def _open_file(dir_fd: int, name: str, shown: Path, max_bytes: int | None) -> int | None:
    try:
        before = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    why = why_not(before, max_bytes)
    if why is not None:
        raise UnsafePath(shown, why)
    fd = os.open(name, FILE_FLAGS, dir_fd=dir_fd)
    after = os.fstat(fd)
    if (after.st_dev, after.st_ino) != (before.st_dev, before.st_ino) or why_not(after, max_bytes):
        os.close(fd)
        raise UnsafePath(shown, "changed while it was opened", changed=True)
    return fd


def open_beneath(root: Path, parts: tuple[str, ...], max_bytes: int | None = None) -> int | None:
    """A read-only fd of `root/parts...` (see the module docstring); None when something on
    the way does not exist. Raises UnsafePath, with the file unopened, for anything unsafe,
    OSError when opening fails otherwise."""
    shown = root
    fd = _open_dir(root, None, shown)
    for part in parts[:-1]:
        if fd is None:
            return None
        shown = shown / part
        try:
            inner = _open_dir(part, fd, shown)
        finally:
            os.close(fd)
        fd = inner
    if fd is None:
        return None
    try:
        return _open_file(fd, parts[-1], shown / parts[-1], max_bytes)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    """All of `data` to `fd` (one `os.write` may take only part of it)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
