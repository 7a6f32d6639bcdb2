"""A stable, unique executor id per worker process.

DBOS recovers a restarted executor's interrupted workflows by its id, so a process that restarts
must get its old id back, while two live processes must never share one. Ids are claimed with
an exclusive lock on a file under the data directory: `serve-1`, `worker-1`, `worker-2`, …
prefixed by the host name.
"""

from __future__ import annotations

import fcntl
import socket
from pathlib import Path
from typing import IO


class ExecutorId:
    def __init__(self, value: str, lock: IO[str] | None) -> None:
        self.value = value
        self._lock = lock

    def release(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None


def claim_executor_id(home: Path, role: str, configured: str | None) -> ExecutorId:
    if configured:
        return ExecutorId(configured, None)
    folder = home / "executors"
    folder.mkdir(parents=True, exist_ok=True)
    host = socket.gethostname()
    for n in range(1, 1000):
        name = f"{host}-{role}-{n}"
        handle = (folder / f"{name}.lock").open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        return ExecutorId(name, handle)
    raise RuntimeError(f"no free executor id for role {role} under {folder}")
