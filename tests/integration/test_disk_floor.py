"""The disk floor with a real filesystem: an agent filling the disk its workspace is on is
stopped, with the reason, and a run that stays within it is not (taskyard.agents.diskfloor)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from taskyard.agents.command import CommandAdapter
from taskyard.agents.diskfloor import floor_for, free_bytes
from taskyard.agents.sandbox import bwrap_problem
from taskyard.agents.supervisor import RunStatus, supervise
from taskyard.config import AgentConfig
from tests.integration.test_sandbox import boxed, make_request

pytestmark = pytest.mark.skipif(bwrap_problem() is not None, reason="needs bubblewrap")

FILL = """
import os, time
path = os.path.join(os.environ["OUTPUT_DIR"], "..", "workspace", "fill")
try:
    with open(path, "wb") as out:
        for _ in range(%d):
            out.write(b"x" * 1024**2)
            out.flush()
except OSError:
    pass
time.sleep(30)
"""


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 MiB filesystem of its own (tmpfs), as a nearly full disk."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64m,mode=0700", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def filler(mebibytes: int) -> CommandAdapter:
    argv = (sys.executable, "-c", FILL % mebibytes)
    return CommandAdapter(AgentConfig(kind="command", argv=argv))


def test_the_floor_is_at_most_half_the_free_space(small_disk: Path) -> None:
    free = free_bytes(small_disk)
    assert 60 * 1024**2 < free <= 64 * 1024**2
    assert floor_for(small_disk, 1024**3) == free // 2  # short of space: half of what is left
    assert floor_for(small_disk, 1024**2) == 1024**2
    assert floor_for(small_disk, 0) == 0
    assert floor_for(small_disk / "gone", 1024**3) == 0  # no filesystem to read: no watch


async def test_an_agent_filling_the_disk_is_stopped(small_disk: Path) -> None:
    home = small_disk / "home"
    request = make_request(home)
    began = time.monotonic()
    report = await supervise(filler(128), request, boxed(home))
    assert time.monotonic() - began < 15  # not the 30 s the agent would sleep
    assert report.status is RunStatus.FAILED
    assert report.reason is not None and report.reason.startswith("disk nearly full")
    assert report.stopped_by == "disk"


async def test_an_agent_within_the_floor_is_left_alone(small_disk: Path) -> None:
    home = small_disk / "home"
    limits = replace(boxed(home, memory_bytes=0), timeout_seconds=3)
    report = await supervise(filler(8), make_request(home), limits)
    assert report.status is RunStatus.TIMED_OUT  # it slept on until its timeout


async def test_a_floor_of_zero_turns_the_watch_off(small_disk: Path) -> None:
    home = small_disk / "home"
    limits = replace(boxed(home), timeout_seconds=3, min_free_disk_bytes=0)
    report = await supervise(filler(128), make_request(home), limits)
    assert report.status is RunStatus.TIMED_OUT  # the disk filled; nothing stopped it
