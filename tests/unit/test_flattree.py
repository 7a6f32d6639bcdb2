"""A workspace an agent made too deep to recurse into, or read-only, is still removed."""

from __future__ import annotations

import os
from pathlib import Path

from taskyard.run.workspace import remove_tree


def _deep(top: Path, levels: int) -> None:
    """`levels` nested directories by relative steps, as `mkdir d; cd d` in a loop makes
    them: the full path is far past PATH_MAX."""
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for level in range(levels):
            os.mkdir("d", dir_fd=fd)
            os.close(os.open("f", os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=fd))
            inner = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            if level % 7 == 0:
                os.chmod(fd, 0o500)  # read-only on the way, too
            os.close(fd)
            fd = inner
    finally:
        os.close(fd)


def test_a_tree_deeper_than_the_recursion_limit_is_removed(tmp_path: Path) -> None:
    task = tmp_path / "task-1"
    (task / "workspace").mkdir(parents=True)
    _deep(task / "workspace", 3000)
    (task / "outputs").mkdir()
    remove_tree(task)
    assert not task.exists()
    assert list(tmp_path.iterdir()) == []


def test_symlinks_in_it_are_removed_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "keep").mkdir(parents=True)
    task = tmp_path / "task-1"
    (task / "a").mkdir(parents=True)
    (task / "a" / "link").symlink_to(outside)
    os.chmod(task / "a", 0o500)
    remove_tree(task)
    assert not task.exists() and (outside / "keep").is_dir()
