"""One fix at a time per pull request: a fix task takes its PR's lock (`Store.start_fix`: the
PR's oldest queued fix starts, one running at most) before its gates run, and gives it back
when it ends, with what it cost; later fixes of the PR wait their turn. The lock is a row, so
a worker that dies leaves it to be cleared: a fix whose task has ended is finished by whoever
waits behind it.

A fix task also carries the session of the PR's previous fix (the implementing agent goes on
from where it was), kept after each fix under `$TASKYARD_HOME/sessions/<task>` (never in an
agent's reach: the box hides the whole home)."""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Callable
from pathlib import Path

from taskyard.records import Fix, FixStatus
from taskyard.store.base import Store

log = logging.getLogger(__name__)

WAIT_SECONDS = 1.0
_OPEN = (FixStatus.QUEUED, FixStatus.RUNNING)


async def take_turn(
    store: Store, pr: str, task_id: str, clock: Callable[[], float], poll: float = WAIT_SECONDS
) -> Fix | None:
    """Wait until this task's fix holds its PR's lock and return it; None when the task is no
    fix of `pr` (or its fix ended meanwhile)."""
    while True:
        fixes = await asyncio.to_thread(store.fixes_of, pr)
        mine = next((f for f in fixes if f.task_id == task_id and f.status in _OPEN), None)
        if mine is None or mine.status is FixStatus.RUNNING:
            return mine
        await asyncio.to_thread(_clear_ended, store, fixes, task_id, clock())
        started = await asyncio.to_thread(store.start_fix, pr, clock())
        if started is not None and started.id == mine.id:
            return started
        await asyncio.sleep(poll)


def _clear_ended(store: Store, fixes: list[Fix], task_id: str, now: float) -> None:
    """Fixes of tasks that ended without finishing them (cancelled before they ran, a worker
    that died) no longer hold or block the PR."""
    for fix in fixes:
        if fix.status not in _OPEN or fix.task_id == task_id:
            continue
        task = store.get_task(fix.task_id)
        if task.status.terminal:
            status = FixStatus.DONE if fix.status is FixStatus.RUNNING else FixStatus.REFUSED
            store.finish_fix(fix.id, status, task.cost_usd or 0.0, now)
            log.warning("fix of an ended task cleared", extra={"fix": fix.id, "pr": fix.pr})


def previous_fix(store: Store, pr: str, task_id: str) -> str | None:
    """The task of the PR's latest finished fix before this one, if any."""
    done = [f for f in store.fixes_of(pr) if f.status is FixStatus.DONE and f.task_id != task_id]
    return done[-1].task_id if done else None


def keep_sessions(task_root: Path, sessions_under: Path, keep_in: Path) -> None:
    """Copy the agent's session files (`sessions_under`, inside `task_root`) to `keep_in`,
    at the same place below it, links copied as links (and refused when carried)."""
    if not sessions_under.is_dir():
        return
    target = keep_in / sessions_under.relative_to(task_root)
    shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    shutil.copytree(sessions_under, target, symlinks=True)
