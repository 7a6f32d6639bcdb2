"""The disk floor: an agent may not fill the filesystem its workspace is on.

There is no per-task disk quota (bubblewrap has none, and a loop-mounted filesystem per task
costs more than a task's start). Instead the supervisor watches the free space of the
workspace's filesystem while the agent runs, and stops the task once it falls below its floor:
`runs.min_free_disk_bytes` (1 GiB), but never more than half of what was free when the agent
started, so a machine already short of space still runs tasks (each may use half of what is
left) and an agent filling the disk is stopped before taskyard's database and logs, on the
same disk as a rule, have no room. `0` turns the watch off. Free space is what an unprivileged
writer may use (`f_bavail`), read every `DISK_POLL_SECONDS`: a writer faster than that can
still reach the floor's far side between two looks, never the disk's end unless it writes more
than the floor in one interval.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

DISK_POLL_SECONDS = 0.5


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged writer may still use on `path`'s filesystem."""
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


def floor_for(path: Path, configured: int) -> int:
    """The free-space floor of a run starting now (0: no watch, also when `path`'s
    filesystem cannot be read)."""
    if configured <= 0:
        return 0
    try:
        return min(configured, free_bytes(path) // 2)
    except OSError:
        return 0


async def below_floor(path: Path, floor: int, interval: float = DISK_POLL_SECONDS) -> None:
    """Returns once the free space on `path`'s filesystem is below `floor` (a look that
    fails, the path gone, counts as room)."""
    while True:
        try:
            if free_bytes(path) < floor:
                return
        except OSError:
            pass
        await asyncio.sleep(interval)
