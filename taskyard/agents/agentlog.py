"""What the supervisor keeps of an agent's output: redacted, capped, private.

An agent prints whatever it likes, as much as it likes. Before anything of it is stored:

- `LineSplitter` cuts the byte stream into lines (a line longer than its limit into pieces,
  never through a configured secret, so no piece holds half of one);
- every line goes through the `Redactor` (`taskyard.util.redaction`) — the same values taskyard's
  own logs hide: platform tokens, webhook secrets, the API token, model keys, the database
  password. The stream parser is fed the redacted line too, so a result or reason taken from
  the stream (and stored with the task) holds no secret either; usage and cost are numbers and
  read the same;
- `OutputFile` writes it to `outputs/log.jsonl` or `outputs/stderr.log`, created 0600, up to
  `max_bytes` of the agent's lines. Later lines are dropped (the parser still sees them, so
  usage and the result still work) and, when the run ends, one line of taskyard's own says how
  much was dropped: `{"stream": "taskyard", "log_capped": true, "dropped_lines": …,
  "dropped_bytes": …, "max_bytes": …}` in log.jsonl, a `[taskyard: …]` line in stderr.log.
  taskyard's own lines (that note, the run's summary) are always written, so the file ends at
  most a few hundred bytes past the cap.

The agent's result and error (`redact_outcome`) are redacted the same way before the task
stores them.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path

import orjson

from taskyard.agents.base import AgentOutcome
from taskyard.util.redaction import Redactor

log = logging.getLogger(__name__)

__all__ = ["TRUSTED_LOG", "LineSplitter", "OutputFile", "log_record", "redact_outcome"]

# The log's copy in the task directory, outside `outputs/` (read-only in the agent's box): the
# one `taskyard.run.tasklogs` trusts.
TRUSTED_LOG = "agent-log.jsonl"


def redact_outcome(outcome: AgentOutcome, redactor: Redactor) -> AgentOutcome:
    """The agent's account with every configured secret hidden: its result (from result.json
    or the stream) is stored with the task and may become a comment on a platform, its error
    the task's reason."""
    if not redactor:
        return outcome
    result = outcome.result
    if result is not None:
        try:
            text = orjson.dumps(result).decode()
        except orjson.JSONEncodeError:  # nested past 255 levels: the schema refuses it anyway
            text = ""
        hidden = redactor.redact(text)
        if hidden != text:  # "[redacted]" needs no escape: still the same JSON shape
            result = orjson.loads(hidden)
    error = redactor.redact(outcome.error) if outcome.error else outcome.error
    return replace(outcome, result=result, error=error)


def log_record(text: str, redactor: Redactor) -> bytes:
    """A (redacted) stdout line as it goes into log.jsonl: a JSON object as it is, anything
    else wrapped as `{"stream": "stdout", "text": …}`. An object that hides a secret in a way
    the text does not show (`\\u` escapes) is written re-encoded, redacted."""
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        return orjson.dumps({"stream": "stdout", "text": text}) + b"\n"
    if redactor:
        plain = orjson.dumps(data).decode()
        hidden = redactor.redact(plain)
        if hidden != plain:
            return hidden.encode() + b"\n"
    return text.encode() + b"\n"


class LineSplitter:
    """Cuts a byte stream into lines (without their `\\n`); a line longer than `max_line`
    bytes comes in pieces, each cut where it splits no secret of `redactor`."""

    def __init__(self, max_line: int, redactor: Redactor) -> None:
        self.max_line = max_line
        self.redactor = redactor
        self._pending = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        *lines, self._pending = (self._pending + chunk).split(b"\n")
        while len(self._pending) > self.max_line:
            cut = self.redactor.safe_cut(self._pending, self.max_line)
            lines.append(self._pending[:cut])
            self._pending = self._pending[cut:]
        return lines

    def end(self) -> list[bytes]:
        """What is left once the stream closed: its unfinished last line, if any."""
        rest, self._pending = self._pending, b""
        return [rest] if rest else []


def _create(path: Path, append: bool = False) -> int:
    keep = os.O_APPEND if append else os.O_TRUNC
    flags = os.O_WRONLY | os.O_CREAT | keep | os.O_CLOEXEC | os.O_NOFOLLOW
    fd = os.open(path, flags, 0o600)
    os.fchmod(fd, 0o600)  # a file an earlier attempt left with a wider mode
    return fd


class OutputFile:
    """One output file of a run, created 0600 (truncated if it was there): at most
    `max_bytes` of the agent's lines; `write_own` lines (taskyard's) always go in. `twin`:
    the same lines also go there (the log's copy outside `outputs/`, which the agent can
    rewrite: `TRUSTED_LOG`). `append`: added to what the files hold (a later run of the same
    attempt: a change task's gates), not truncated."""

    def __init__(
        self, path: Path, max_bytes: int, twin: Path | None = None, append: bool = False
    ) -> None:
        self.path = path
        self.fd = _create(path, append)
        self.fds = [self.fd]
        if twin is not None:
            try:
                self.fds.append(_create(twin, append))
            except OSError:
                os.close(self.fd)
                raise
        self.open_fds = list(self.fds)  # closed by `close`
        self.max_bytes = max_bytes
        self.written = 0
        self.dropped_lines = 0
        self.dropped_bytes = 0

    def write(self, data: bytes) -> bool:
        """Write one whole line of the agent's; False (and counted) once past the cap."""
        if self.written + len(data) > self.max_bytes:
            self.dropped_lines += 1
            self.dropped_bytes += len(data)
            return False
        self.write_own(data)
        self.written += len(data)
        return True

    def write_own(self, data: bytes) -> None:
        """Writes `data` to every file. A file that cannot take it (the disk full, most
        likely: an agent filling it) is no longer written, with one warning: the run goes on,
        judged on the stream the parser saw, and is stopped by the disk floor
        (`taskyard.agents.diskfloor`), not by a crash of its supervisor."""
        for fd in list(self.fds):
            view = memoryview(data)
            try:
                while view:
                    view = view[os.write(fd, view) :]
            except OSError as exc:
                self.fds.remove(fd)
                log.warning(
                    "agent output no longer written: %s",
                    exc.strerror or exc,
                    extra={"path": str(self.path)},
                )

    def capped_note(self) -> dict[str, object] | None:
        """What was dropped, as the log's closing note; None when nothing was."""
        if not self.dropped_lines:
            return None
        return {
            "stream": "taskyard",
            "log_capped": True,
            "dropped_lines": self.dropped_lines,
            "dropped_bytes": self.dropped_bytes,
            "max_bytes": self.max_bytes,
        }

    def close_json(self) -> None:
        """log.jsonl: the closing note (if anything was dropped)."""
        note = self.capped_note()
        if note is not None:
            self.write_own(orjson.dumps(note) + b"\n")
            self.dropped_lines = 0  # said once

    def close_text(self) -> None:
        """stderr.log: the closing note as a plain line."""
        note = self.capped_note()
        if note is not None:
            text = f"[taskyard: {self.dropped_bytes} more bytes of stderr dropped "
            self.write_own(f"{text}(cap {self.max_bytes} bytes)]\n".encode())
            self.dropped_lines = 0

    def close(self) -> None:
        for fd in self.open_fds:
            os.close(fd)
