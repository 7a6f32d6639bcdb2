"""Carrying an agent CLI's session from one task to a later one, so the later run resumes it.

codex and claude keep each session as one JSONL file in the task's config home (codex:
`$CODEX_HOME/sessions/YYYY/MM/DD/rollout-<time>-<id>.jsonl`; claude:
`$CLAUDE_CONFIG_DIR/projects/<workspace path, as a name>/<id>.jsonl`). A later task has a
home of its own, so the run stage copies the one session file across before the resumed run
(`AgentAdapter.carry_session`); each adapter says where its file goes.

The earlier task's home was the agent's to write, so the file is found without following
links and read with `open_beneath`: a symbolic or hard link planted there (to `/etc/shadow`,
to `taskyard.db`) is refused, never copied into the next agent's reach. A session id comes
from the agent's own output, and is used in a path and an argv only when it is a UUID (both
CLIs name sessions by one), so it can be neither a path nor an option.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path

from taskyard.agents.base import AgentRequest
from taskyard.exceptions import ConfigError
from taskyard.util.safeopen import UnsafePath, open_beneath, write_all

log = logging.getLogger(__name__)

MAX_SESSION_BYTES = 256 * 1024**2  # far above a real transcript; bounds what is copied
_UUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")


def checked_session_id(session_id: str) -> str:
    """`session_id` when it is a UUID, else ConfigError (see the module docstring)."""
    if not _UUID.fullmatch(session_id):
        raise ConfigError(f"session id {session_id!r} is not a UUID: not resumed")
    return session_id


def carry_session_file(
    earlier_task_dir: Path,
    request: AgentRequest,
    under: tuple[str, ...],
    name: Callable[[str, str], bool],
    targets: Callable[[tuple[str, ...]], Iterable[Path]],
    *,
    depth: int,
) -> tuple[AgentRequest, bytes]:
    """`request` with its `resume_session`'s file copied from the earlier task, and the
    file's bytes (none when not copied). The file is the first one, at most `depth`
    directories below `earlier_task_dir/under`, whose `name(file name, session id)` holds;
    it is copied to each of `targets(its parts below the task dir)` (0600, as the launch's
    own files). The request comes back without `resume_session` when the id is no UUID or
    the file is missing or refused: the run then starts a session of its own."""
    session = request.resume_session
    if session is None:
        return request, b""
    if not _UUID.fullmatch(session):
        return _fresh(request, "the session id is not a UUID"), b""
    found = _walk(earlier_task_dir.joinpath(*under), depth)
    source = next((under + rel for rel in found if name(rel[-1], session)), None)
    try:
        data = _read(earlier_task_dir, source) if source is not None else None
    except (UnsafePath, OSError) as exc:
        return _fresh(request, f"its file was not copied: {exc}"), b""
    if source is None or data is None:
        return _fresh(request, f"no session file in {earlier_task_dir}"), b""
    for target in targets(source):
        _write(target, data)
    return request, data


def _walk(directory: Path, depth: int) -> Iterable[tuple[str, ...]]:
    """Every file below `directory` (parts relative to it), at most `depth` directories
    down, in name order; links are never followed."""
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError:  # missing, or not a directory
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False) and depth > 0:
            yield from ((entry.name, *rest) for rest in _walk(Path(entry.path), depth - 1))
        elif entry.is_file(follow_symlinks=False):
            yield (entry.name,)


def _write(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(target, flags, 0o600)
    try:
        write_all(fd, data)
    finally:
        os.close(fd)


def _read(task_dir: Path, parts: tuple[str, ...]) -> bytes | None:
    fd = open_beneath(task_dir, parts, MAX_SESSION_BYTES)
    if fd is None:
        return None
    try:
        with os.fdopen(fd, "rb", closefd=False) as file:
            data = file.read(MAX_SESSION_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_SESSION_BYTES:  # grew after the check
        raise UnsafePath(task_dir.joinpath(*parts), "grew over the limit while read")
    return data


def _fresh(request: AgentRequest, why: str) -> AgentRequest:
    log.warning(
        "session %s not resumed: %s",
        request.resume_session,
        why,
        extra={"task_id": request.task_id},
    )
    return replace(request, resume_session=None)
