"""A task's agent log: where it is, opened safely, read in pages, redacted, and kept.

Where. While the task's workspace is on disk (running, or archived at `<root>/archive/task-<id>`)
its `agent-log.jsonl` there (`TRUSTED_LOG`: the supervisor writes the same lines to it and to
`outputs/log.jsonl`, but the agent can rewrite, replace or hard-link anything in `outputs/`,
and the task's directory is read-only in its box); `outputs/log.jsonl` only for a workspace
without one (made before it existed). When the workspace is finished (archived or removed), the
executor first copies the log beside the task's record: `$TASKYARD_HOME/logs/task-<id>.jsonl`
(directory 0700, file 0600), redacted again and capped at `runs.log_max_bytes` (plus a closing
note saying how much was left out). Once the workspace is gone, that copy is what `tasks logs`,
the API and the UI show. The copy lives as long as the home directory (a file of at most
`log_max_bytes` per task); a rerun of the task replaces it when its own workspace is finished.

Safe open. The agent can write in `outputs/`, so what is there is not trusted: the task
directory and `outputs/` are opened without following links, and the log is opened only after
an `lstat` (no open) shows a regular file with exactly one link, owned by taskyard's own user;
it is opened with `O_NOFOLLOW | O_NONBLOCK` (a FIFO cannot block it) and `fstat` must show the
same file. Anything else raises `LogRefused` and the file is never opened: opening and closing
a planted hard link to `taskyard.db` would make SQLite drop its locks (POSIX locks belong to
the process and the inode). What is left is a race between the `lstat` and the open, which
needs an agent that can reach the database's path at all: the sandbox takes that away.

Pages. A log is read `limit` bytes (at most `PAGE_LIMIT_MAX`) at a time from a byte `offset`;
a page holds whole lines only (a line longer than a page comes in pieces), redacted with the
configured secrets, and says where the next page starts. Nothing reads a log whole.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from taskyard.agents.agentlog import TRUSTED_LOG
from taskyard.exceptions import LogRefused
from taskyard.models import Task
from taskyard.util.redaction import Redactor
from taskyard.util.safeopen import UnsafePath, open_beneath, write_all

if TYPE_CHECKING:
    from taskyard.config import Settings

__all__ = [
    "PAGE_LIMIT_MAX",
    "PAGE_MAX",
    "TRUSTED_LOG",
    "LogPage",
    "TaskLogs",
    "open_log",
    "workspace_roots",
]

log = logging.getLogger(__name__)

PAGE_MAX = 1 << 20  # a page's default size
PAGE_LIMIT_MAX = 4 << 20  # the largest page a caller may ask for
KEEP_SLACK = 64 << 10  # room past the cap for taskyard's own closing lines
_WORKSPACE_LOGS = ((TRUSTED_LOG,), ("outputs", "log.jsonl"))  # the first there is read
_TASK_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")  # as `workspace.check_task_id`


@dataclass(frozen=True, slots=True)
class LogPage:
    """Whole lines of a log from `offset`, and where the next page starts. `raw`: as stored
    (`data` and `lines()` give them redacted); `size`: the file's size when read; `kept`: read
    from the copy kept with the task."""

    raw: bytes
    offset: int
    next_offset: int
    size: int
    kept: bool = False
    redactor: Redactor = field(default_factory=Redactor)

    @property
    def more(self) -> bool:
        return self.next_offset < self.size

    @property
    def data(self) -> bytes:
        return self.redactor.redact_bytes(self.raw)

    def lines(self) -> list[tuple[bytes, int]]:
        """Each line (redacted, without its line break) and the byte offset just after it."""
        found, at = [], self.offset
        *whole, last = self.raw.split(b"\n")
        for line in whole:
            at += len(line) + 1
            found.append((self.redactor.redact_bytes(line), at))
        if last:  # a piece of a long line, or the unfinished end of an ended task's log
            found.append((self.redactor.redact_bytes(last), at + len(last)))
        return found


def open_log(root: Path, parts: tuple[str, ...]) -> int | None:
    """A read-only fd of `root/parts...`, reached through no link, if it is a safe log (see
    the module docstring); None if something on the way does not exist. Raises LogRefused,
    with the file unopened, for anything else."""
    try:
        return open_beneath(root, parts)
    except UnsafePath as exc:
        if exc.directory:
            raise LogRefused(f"{exc.path} {exc.why}: the log is not read") from None
        shown = "not shown" if exc.changed else "not opened, not shown"
        raise LogRefused(f"{exc.path} {exc.why}: {shown}") from None


def workspace_roots(task: Task) -> tuple[Path, ...]:
    """Where the task's workspace may be: where the task says, or in the archive beside it
    (`<root>/archive/task-<id>`), where a finished or paused task's workspace is moved."""
    if not task.workspace:
        return ()
    given = Path(task.workspace)
    return (given, given.parent / "archive" / given.name)


def _open_workspace_log(root: Path) -> int | None:
    for parts in _WORKSPACE_LOGS:
        fd = open_log(root, parts)
        if fd is not None:
            return fd
    return None


def read_page(
    fd: int, offset: int, limit: int, final: bool, redactor: Redactor
) -> tuple[bytes, int, int]:
    """(whole lines from `offset`, the next offset, the file's size). An unfinished last line
    is left for later unless `final` (the task has ended); a line longer than `limit` comes in
    pieces, cut where no secret of `redactor` is split."""
    size = os.fstat(fd).st_size
    if offset >= size:
        return b"", offset, size
    data = os.pread(fd, min(limit, size - offset), offset)
    end = data.rfind(b"\n") + 1
    if final and offset + len(data) >= size:
        end = len(data)  # the log's end, finished or not
    elif end == 0 and len(data) >= limit:
        end = redactor.safe_cut(data, len(data))  # a line longer than a page: a piece
    return data[:end], offset + end, size


class TaskLogs:
    """Finds, reads and keeps tasks' agent logs. `kept_dir`: where logs are kept once the
    workspace is gone (None: not kept, e.g. a test app); `redactor`: the secrets hidden when a
    log is kept or shown; `max_bytes`: the kept copy's cap."""

    def __init__(
        self,
        kept_dir: Path | None = None,
        redactor: Redactor | None = None,
        max_bytes: int = 10 << 20,
    ) -> None:
        self.kept_dir = kept_dir
        self.redactor = redactor or Redactor()
        self.max_bytes = max_bytes

    @classmethod
    def from_settings(cls, settings: Settings) -> TaskLogs:
        redactor = Redactor(settings.secrets())
        return cls(settings.home / "logs", redactor, settings.runs.log_max_bytes)

    def kept_path(self, task_id: str) -> Path | None:
        if self.kept_dir is None or not _TASK_ID.fullmatch(task_id):
            return None
        return self.kept_dir / f"task-{task_id}.jsonl"

    def open(self, task: Task) -> tuple[int, bool] | None:
        """(fd, kept) of the task's log: its workspace's (live or archived), else the kept
        copy; None when there is none. Raises LogRefused (see `open_log`)."""
        for root in workspace_roots(task):
            fd = _open_workspace_log(root)
            if fd is not None:
                return fd, False
        kept = self.kept_path(task.id)
        if kept is not None:
            fd = open_log(kept.parent, (kept.name,))
            if fd is not None:
                return fd, True
        return None

    def page(
        self, task: Task, offset: int = 0, limit: int = PAGE_MAX, final: bool | None = None
    ) -> LogPage | None:
        """A page of the task's log from `offset`; None when it has none. `final`: give an
        unfinished last line too (default: once the task has ended)."""
        opened = self.open(task)
        if opened is None:
            return None
        fd, kept = opened
        ended = task.status.terminal if final is None else final
        try:
            data, next_offset, size = read_page(
                fd, offset, min(limit, PAGE_LIMIT_MAX), ended, self.redactor
            )
        finally:
            os.close(fd)
        return LogPage(data, offset, next_offset, size, kept, self.redactor)

    def tail(self, task: Task, max_bytes: int) -> LogPage | None:
        """The last `max_bytes` of the task's log, from a line's start (the page's `offset`
        is then past 0: earlier lines were left out)."""
        opened = self.open(task)
        if opened is None:
            return None
        fd, kept = opened
        try:
            size = os.fstat(fd).st_size
            start = max(0, size - max_bytes)
            if start:  # begin at a whole line
                start += os.pread(fd, min(max_bytes, size - start), start).find(b"\n") + 1
            final = task.status.terminal
            data, next_offset, size = read_page(fd, start, max_bytes, final, self.redactor)
        finally:
            os.close(fd)
        return LogPage(data, start, next_offset, size, kept, self.redactor)

    def keep(self, task_id: str, task_root: Path) -> Path | None:
        """Copy the workspace's log beside the task's record (redacted, capped), before the
        workspace goes; returns where, or None when there was no log to keep. Raises
        LogRefused for a log that is not safe to open, OSError if the copy fails."""
        target = self.kept_path(task_id)
        if target is None:
            return None
        fd = _open_workspace_log(task_root)
        if fd is None:
            return None
        try:
            target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            partial = target.with_name(target.name + ".part")
            partial.unlink(missing_ok=True)
            out = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                self._copy(fd, out)
            finally:
                os.close(out)
            os.replace(partial, target)
        finally:
            os.close(fd)
        return target

    def _copy(self, src: int, out: int) -> None:
        """Whole lines, redacted, up to the cap; then a note of what was left out."""
        offset, written, limit = 0, 0, self.max_bytes + KEEP_SLACK
        size = os.fstat(src).st_size
        while written < limit:
            room = min(PAGE_MAX, limit - written)
            data, next_offset, size = read_page(src, offset, room, True, self.redactor)
            if next_offset == offset:
                return  # all of it copied
            if not data.endswith(b"\n") and next_offset < size and room < PAGE_MAX:
                break  # the next line does not fit whole
            data = self.redactor.redact_bytes(data)
            write_all(out, data)
            written, offset = written + len(data), next_offset
        if offset < size:
            note = {"stream": "taskyard", "log_capped": True, "kept_bytes": written}
            note |= {"dropped_bytes": size - offset, "max_bytes": self.max_bytes}
            write_all(out, orjson.dumps(note) + b"\n")
