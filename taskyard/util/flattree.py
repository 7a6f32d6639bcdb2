"""Removing a directory tree an agent made, whatever its shape.

An agent can make its workspace 100,000 directories deep (`mkdir d; cd d` in a loop: only
each path component is bounded) and read-only. `shutil.rmtree` recurses once per level and
fails with RecursionError past ~1,000 levels, and walking by full paths fails with
ENAMETOOLONG past 4,096 bytes, so the workspace would stay on disk and every later attempt to
clean it would fail again. `flatten_tree(top)` moves every directory below `top`'s children
into one scratch directory directly under `top` (renames: no data moves, no long paths, no
recursion), making each writable on the way; what is left is at most three levels deep.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path


def _subdirs(folder: str) -> list[str]:
    os.chmod(folder, stat.S_IRWXU)  # scan it, and move its entries out
    with os.scandir(folder) as entries:
        return [e.path for e in entries if e.is_dir(follow_symlinks=False)]


def flatten_tree(top: Path) -> None:
    """Moves every directory below `top`'s own children into a scratch directory under
    `top` (see the module docstring); `top` and everything in it stays, only shallower."""
    os.chmod(top, stat.S_IRWXU)
    scratch = tempfile.mkdtemp(prefix=".flatten-", dir=top)
    pending = [p for p in _subdirs(str(top)) if p != scratch]
    count = 0
    while pending:
        for sub in _subdirs(pending.pop()):
            count += 1
            flat = os.path.join(scratch, str(count))
            os.rename(sub, flat)
            pending.append(flat)
