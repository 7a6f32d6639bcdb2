"""Files and directories only taskyard's own user may read: the home directory (0700), the
databases (SQLite's file, its `-wal` and `-shm`, DBOS's `queue.db`: 0600), task workspaces
(0700), agent logs (0600).

SQLite gives a database's `-wal`, `-shm` and journal files the mode of the database file, so
creating that file 0600 before SQLite opens it is enough; a file an older taskyard made with
a wider mode is narrowed when found. This module imports nothing from taskyard (the store
uses it too).
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from pathlib import Path

__all__ = ["DB_SUFFIXES", "QUEUE_DB", "private_database", "private_dir", "private_file"]

log = logging.getLogger(__name__)

DB_SUFFIXES = ("", "-wal", "-shm", "-journal")
QUEUE_DB = "queue.db"


def _narrow(path: Path, mode: int) -> None:
    """chmod `path` to `mode` if it is ours, not a link, and wider than that."""
    with contextlib.suppress(FileNotFoundError):
        info = path.lstat()
        if path.is_symlink() or info.st_uid != os.geteuid():
            return
        if info.st_mode & 0o777 & ~mode:
            os.chmod(path, mode, follow_symlinks=False)
            log.info("permissions narrowed", extra={"path": str(path), "mode": oct(mode)})


def private_dir(path: Path) -> Path:
    """`path` made (with its missing parents) and narrowed to 0700 — unless it is a shared
    directory (sticky or writable by all, like /tmp): that is left alone, with a warning."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    mode = path.stat().st_mode
    if mode & stat.S_ISVTX or mode & stat.S_IWOTH:
        log.warning("a shared directory holds taskyard's files", extra={"path": str(path)})
        return path
    _narrow(path, 0o700)
    return path


def private_file(path: Path) -> Path:
    """`path` created empty with 0600 if missing (never truncated), else narrowed to 0600."""
    flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, flags, 0o600))
    _narrow(path, 0o600)
    return path


def private_database(path: Path) -> Path:
    """A SQLite database file: made 0600 before SQLite opens it, and its companions
    narrowed if an older run left them wider."""
    private_file(path)
    for suffix in DB_SUFFIXES[1:]:
        _narrow(path.with_name(path.name + suffix), 0o600)
    return path
