"""`taskyard_workspace_disk_bytes` measures: file bytes under the workspaces, hard links once,
symlinks not followed, the archive and mirrors too when they live elsewhere."""

from __future__ import annotations

import os
from pathlib import Path

from taskyard.run.workspace import Workspaces, tree_bytes


def test_file_bytes_are_summed_once_each(tmp_path: Path) -> None:
    (tmp_path / "task-1" / "outputs").mkdir(parents=True)
    (tmp_path / "task-1" / "outputs" / "log.jsonl").write_bytes(b"x" * 1000)
    (tmp_path / "task-1" / "prompt.md").write_bytes(b"y" * 2345)
    os.link(tmp_path / "task-1" / "prompt.md", tmp_path / "task-1" / "same.md")
    elsewhere = tmp_path.parent / f"{tmp_path.name}-outside"
    elsewhere.mkdir()
    (elsewhere / "big").write_bytes(b"z" * 50_000)
    (tmp_path / "task-1" / "link").symlink_to(elsewhere)  # not followed
    (tmp_path / "task-1" / "empty").mkdir()
    assert tree_bytes(tmp_path) == 3345
    assert tree_bytes(tmp_path / "missing") == 0


def test_the_archive_and_mirrors_count_when_outside_the_root(tmp_path: Path) -> None:
    root, archive, mirrors = tmp_path / "w", tmp_path / "archive", tmp_path / "w" / "mirrors"
    for folder in (root, archive, mirrors):
        folder.mkdir(exist_ok=True)
    (root / "a").write_bytes(b"1" * 10)
    (archive / "b").write_bytes(b"2" * 200)
    (mirrors / "c").write_bytes(b"3" * 3000)
    spaces = Workspaces(root, mirrors, archive, False, 1.0, lambda name: name, env={})
    assert spaces.disk_bytes() == 3210
