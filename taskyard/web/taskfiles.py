"""The files of a task the UI shows: its context and prompts (from the workspace, opened as
safely as its log: `taskyard.util.safeopen`), the tail of the agent's log (`TaskLogs`:
redacted, the kept copy once the workspace is gone) and its knowledge-log note."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from taskyard.exceptions import LogRefused
from taskyard.models import Task
from taskyard.run.tasklogs import LogPage, TaskLogs, workspace_roots
from taskyard.util.safeopen import UnsafePath, open_beneath

FILE_MAX = 256 * 1024  # of one context or prompt file, or an event's body, shown in a page
LOG_MAX = 1 << 20  # the last MiB of the agent's log is shown in the page; the stream goes on


def pretty(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode()


def pretty_json(text: str | bytes) -> str | None:
    """JSON text indented, or None when it is not JSON."""
    try:
        return pretty(orjson.loads(text))
    except orjson.JSONDecodeError:
        return None


@dataclass(frozen=True, slots=True)
class ShownFile:
    name: str
    text: str
    size: int
    truncated: bool


@dataclass(frozen=True, slots=True)
class LogLine:
    kind: str
    text: str


def _inside(path: Path, root: Path) -> bool:
    """A regular file under `root`, reached through no symbolic link."""
    if path.is_symlink() or not path.is_file():
        return False
    return path.resolve().is_relative_to(root.resolve())


def _show_file(path: Path, as_json: bool) -> ShownFile:
    size = path.stat().st_size
    with path.open("rb") as f:
        data = f.read(FILE_MAX)
    return _shown(path.name, data, size, as_json)


def _shown(name: str, data: bytes, size: int, as_json: bool) -> ShownFile:
    shown = pretty_json(data) if as_json and size <= FILE_MAX else None
    return ShownFile(name, shown or data.decode("utf-8", "replace"), size, size > FILE_MAX)


def _show_task_file(root: Path, folder: str, name: str, as_json: bool) -> ShownFile | None:
    """A file the agent could have replaced, opened as safely as its log; None (not listed)
    when it is not there or not safe (a link, a hard link, not taskyard's)."""
    try:
        fd = open_beneath(root, (folder, name))
    except UnsafePath:
        return None
    if fd is None:
        return None
    try:
        size = os.fstat(fd).st_size
        data = os.pread(fd, FILE_MAX, 0)
    finally:
        os.close(fd)
    return _shown(name, data, size, as_json)


def _files(root: Path, folder: str, pattern: str) -> list[ShownFile]:
    where = root / folder
    if where.is_symlink() or not where.is_dir():
        return []
    names = [p.name for p in sorted(where.glob(pattern))]
    found = [_show_task_file(root, folder, n, pattern.endswith(".json")) for n in names]
    return [f for f in found if f is not None]


def _log_line(raw: bytes) -> LogLine:
    text = raw.decode("utf-8", "replace").replace("\r", "")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return LogLine("", text)
    kind = data.get("type") or data.get("stream") if isinstance(data, dict) else None
    return LogLine(str(kind or ""), text)


def workspace_of(task: Task) -> Path | None:
    """The task's workspace directory, if it is still on disk: where the task says, or in the
    archive beside it (`<root>/archive/task-<id>`), where a task that paused for an approval
    has its workspace moved."""
    for root in workspace_roots(task):
        if not root.is_symlink() and root.is_dir():
            return root
    return None


_NO_LOG: dict[str, Any] = {
    "log_lines": [],
    "log_offset": 0,
    "log_cut": False,
    "log_kept": False,
    "log_refused": None,
}


def read_log(logs: TaskLogs, task: Task) -> dict[str, Any]:
    """The page's log fields: the lines of the agent's log (its last `LOG_MAX` bytes,
    redacted), the byte offset just after the last (where a live stream goes on), whether
    earlier lines were left out, whether it is the copy kept with the task, and why it is not
    shown when it is not safe to open."""
    try:
        page: LogPage | None = logs.tail(task, LOG_MAX)
    except LogRefused as exc:
        return {**_NO_LOG, "log_refused": str(exc)}
    if page is None:
        return dict(_NO_LOG)
    lines = [_log_line(line) for line, _ in page.lines() if line.strip()]
    return {
        "log_lines": lines,
        "log_offset": page.next_offset,
        "log_cut": page.offset > 0,
        "log_kept": page.kept,
        "log_refused": None,
    }


def _note(notes_dir: Path | None, task: Task) -> ShownFile | None:
    """The task's knowledge-log note (`$TASKYARD_HOME/tasks/…-<id[-6:]>.md`)."""
    if notes_dir is None or not notes_dir.is_dir():
        return None
    for path in sorted(notes_dir.glob(f"*-{task.id[-6:]}.md")):
        if _inside(path, notes_dir):
            shown = _show_file(path, as_json=False)
            if f"`{task.id}`" in shown.text:
                return shown
    return None


def task_files(task: Task, notes_dir: Path | None, logs: TaskLogs | None = None) -> dict[str, Any]:
    root = workspace_of(task)
    return {
        "workspace_exists": root is not None,
        "workspace_dir": str(root) if root else None,
        "context": _files(root, "context", "*.json") if root else [],
        "prompts": _files(root, "prompts", "*.md") if root else [],
        **read_log(logs or TaskLogs(), task),
        "note": _note(notes_dir, task),
    }
