"""Reading what an agent left in its `outputs/` (result.json, codex's last message) from
outside its box, where taskyard runs with the tokens.

The agent writes `outputs/` as it likes, so a name there may be a symbolic link (to
`/etc/shadow`, to `$TASKYARD_HOME/taskyard.db`, to another task's result), a hard link, a
FIFO (a plain `read` would wait forever), a device or a 10 GB sparse file. `read_output`
reads a file only if it is, at the moment it is opened, a regular file with one link, owned
by taskyard's uid (the box's uid maps to it), reached without following a link (`outputs/`
included), and at most `max_bytes` long; anything else raises `AgentOutputRefused` with the
file unread, never hangs, and never reads more than `max_bytes + 1` bytes.
"""

from __future__ import annotations

import os
from pathlib import Path

from taskyard.exceptions import AgentOutputRefused
from taskyard.util.safeopen import UnsafePath, open_beneath

MAX_OUTPUT_BYTES = 16 * 1024**2  # result.json and the last message: far above any real one


def _open(output_dir: Path, name: str, max_bytes: int) -> int | None:
    try:
        return open_beneath(output_dir, (name,), max_bytes)
    except UnsafePath as exc:
        if exc.directory:
            raise AgentOutputRefused(f"{output_dir} {exc.why}") from None
        raise AgentOutputRefused(f"outputs/{name} {exc.why}: not read") from None


def read_output(output_dir: Path, name: str, max_bytes: int = MAX_OUTPUT_BYTES) -> bytes | None:
    """The bytes of `output_dir/name`, or None when there is no such file. Raises
    AgentOutputRefused when it is not a file taskyard may read (see the module docstring),
    OSError when reading it fails."""
    fd = _open(output_dir, name, max_bytes)
    if fd is None:
        return None
    try:
        chunks: list[bytes] = []
        left = max_bytes + 1
        while left > 0 and (chunk := os.read(fd, min(left, 1024**2))):
            chunks.append(chunk)
            left -= len(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > max_bytes:  # grew after the check
        raise AgentOutputRefused(f"outputs/{name} is over the limit of {max_bytes} bytes")
    return data
