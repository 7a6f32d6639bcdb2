"""`open_beneath` opens only taskyard's own regular files, reached through no link: the one
check behind reading an agent's outputs, a task's log and the files the UI shows."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from taskyard.util.safeopen import UnsafePath, open_beneath, write_all


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "secret").write_bytes(b"server secret")
    (tmp_path / "task" / "outputs").mkdir(parents=True)
    return tmp_path / "task"


def _read(fd: int | None) -> bytes | None:
    if fd is None:
        return None
    try:
        return os.pread(fd, 1024, 0)
    finally:
        os.close(fd)


def test_a_plain_file_is_opened_and_a_missing_one_is_none(root: Path) -> None:
    (root / "outputs" / "log.jsonl").write_bytes(b"{}\n")
    assert _read(open_beneath(root, ("outputs", "log.jsonl"))) == b"{}\n"
    assert open_beneath(root, ("outputs", "missing")) is None
    assert open_beneath(root, ("nowhere", "log.jsonl")) is None
    assert open_beneath(root / "gone", ("log.jsonl",)) is None


@pytest.mark.parametrize(
    ("plant", "why"),
    [
        (lambda p, s: p.symlink_to(s), "is a symbolic link"),
        (lambda p, s: os.link(s, p), "has 2 links (a hard link to another file)"),
        (lambda p, s: os.mkfifo(p), "is not a regular file"),
    ],
    ids=["symlink", "hard link", "fifo"],
)
def test_an_unsafe_file_is_refused_unopened(
    root: Path, plant: Callable[[Path, Path], object], why: str
) -> None:
    target = root / "outputs" / "result.json"
    plant(target, root.parent / "secret")
    began = time.monotonic()
    with pytest.raises(UnsafePath) as refused:
        open_beneath(root, ("outputs", "result.json"))
    assert time.monotonic() - began < 1  # a FIFO never blocks the open
    assert refused.value.why == why and refused.value.path == target
    assert not refused.value.directory and not refused.value.changed


def test_a_linked_directory_on_the_way_is_refused(root: Path) -> None:
    (root / "elsewhere").mkdir()
    (root / "elsewhere" / "result.json").write_bytes(b"{}")
    (root / "outputs").rmdir()
    (root / "outputs").symlink_to(root / "elsewhere")
    with pytest.raises(UnsafePath) as refused:
        open_beneath(root, ("outputs", "result.json"))
    assert refused.value.directory and refused.value.path == root / "outputs"
    assert refused.value.why == "is a link or not a directory"


def test_a_file_over_the_limit_is_refused(root: Path) -> None:
    (root / "outputs" / "big").write_bytes(b"x" * 11)
    assert _read(open_beneath(root, ("outputs", "big"), max_bytes=11)) == b"x" * 11
    with pytest.raises(UnsafePath, match="is 11 bytes, over the limit of 10"):
        open_beneath(root, ("outputs", "big"), max_bytes=10)


def test_write_all_writes_every_byte(tmp_path: Path) -> None:
    data = os.urandom(1 << 20)
    fd = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        write_all(fd, data)
    finally:
        os.close(fd)
    assert (tmp_path / "out").read_bytes() == data
