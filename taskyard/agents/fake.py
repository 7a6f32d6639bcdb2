"""Fakes of the agent layer, for tests of the rest of taskyard.

- `FakeAdapter`: a scripted agent that really runs (a `python -c` program of this interpreter,
  or any argv), so the supervisor streams, limits, times out and kills it like a real CLI.
  It speaks the `command` protocol: `{"type": "tool_call"}` lines count as tool calls, the
  result is `$OUTPUT_DIR/result.json`. A canned `AgentOutcome` can replace the real one.
- `ScriptedSupervisor`: an in-memory stand-in for `supervise` (same call shape), for unit
  tests that must not start processes. It returns the reports it was given, in order (the
  last one repeats), writes their result to `outputs/result.json`, and records every call.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from taskyard.agents.base import (
    AgentAdapter,
    AgentOutcome,
    AgentRequest,
    Launch,
    StreamParser,
    Usage,
)
from taskyard.agents.command import JsonLineParser, command_outcome, expand_argv
from taskyard.agents.process import ProcessRecord
from taskyard.agents.stops import Stop
from taskyard.agents.supervisor import Limits, RunReport, RunStatus
from taskyard.config import AgentConfig

# A pid above any pid_max (2**22), so no process can ever have it: killing it is a no-op.
FAKE_PROCESS = ProcessRecord(pid=2**22 + 1, pgid=2**22 + 1, start_time=0)

_PROGRAM = """
import json, os, sys, time
script = json.loads(sys.argv[1])
for line in script["lines"]:
    print(line if isinstance(line, str) else json.dumps(line), flush=True)
if script["stderr"]:
    sys.stderr.write(script["stderr"])
    sys.stderr.flush()
time.sleep(script["sleep_seconds"])
if script["result"] is not None:
    with open(os.path.join(os.environ["OUTPUT_DIR"], "result.json"), "w") as out:
        json.dump(script["result"], out)
sys.exit(script["exit_code"])
"""


@dataclass(frozen=True, slots=True)
class FakeScript:
    """What the fake agent process does, in this order."""

    lines: tuple[str | Mapping[str, Any], ...] = ()  # stdout lines; mappings printed as JSON
    stderr: str = ""
    sleep_seconds: float = 0.0
    result: Mapping[str, Any] | None = None  # written to $OUTPUT_DIR/result.json
    exit_code: int = 0

    def to_json(self) -> str:
        return json.dumps(
            {
                "lines": [line if isinstance(line, str) else dict(line) for line in self.lines],
                "stderr": self.stderr,
                "sleep_seconds": self.sleep_seconds,
                "result": None if self.result is None else dict(self.result),
                "exit_code": self.exit_code,
            }
        )


class FakeAdapter(AgentAdapter):
    """Runs `argv` if given (placeholders as for `command`), else `config.argv` if set,
    else the `script` in this Python interpreter. Records every request it launched."""

    kind = "fake"

    def __init__(
        self,
        config: AgentConfig | None = None,
        *,
        script: FakeScript | None = None,
        argv: Sequence[str] | None = None,
        outcome: AgentOutcome | None = None,
    ) -> None:
        self.config = config or AgentConfig(kind="fake")
        self.script = script or FakeScript(result={})
        self.argv = tuple(argv or self.config.argv)
        self.canned = outcome
        self.requests: list[AgentRequest] = []

    @classmethod
    def succeeding(
        cls, result: Mapping[str, Any], *, tool_calls: int = 0, lines: Sequence[str] = ()
    ) -> FakeAdapter:
        calls = tuple({"type": "tool_call", "name": f"tool{i}"} for i in range(tool_calls))
        return cls(script=FakeScript(lines=(*lines, *calls), result=result))

    @classmethod
    def failing(cls, stderr: str = "fake agent failed", exit_code: int = 1) -> FakeAdapter:
        return cls(script=FakeScript(stderr=stderr, exit_code=exit_code))

    @classmethod
    def hanging(cls, seconds: float = 3600.0) -> FakeAdapter:
        return cls(script=FakeScript(sleep_seconds=seconds, result={}))

    def launch(self, request: AgentRequest) -> Launch:
        self.requests.append(request)
        argv = expand_argv(self.argv, request) if self.argv else self._script_argv()
        env = {**request.base_env, **self.config.env}
        env.update(
            CONTEXT_DIR=str(request.context_dir),
            OUTPUT_DIR=str(request.output_dir),
            TASK_ID=request.task_id,
            PROMPT_FILE=str(request.prompt_file),
        )
        return Launch(argv=argv, env=env, cwd=request.workspace)

    def _script_argv(self) -> tuple[str, ...]:
        return (sys.executable, "-S", "-c", _PROGRAM, self.script.to_json())

    def new_parser(self) -> StreamParser:
        return JsonLineParser()

    def outcome(
        self, request: AgentRequest, parser: StreamParser, exit_code: int, stderr_tail: str
    ) -> AgentOutcome:
        if self.canned is not None:
            return self.canned
        return command_outcome(request, parser, exit_code, stderr_tail)


_STOPPED_BY = {RunStatus.TIMED_OUT: Stop.TIMEOUT, RunStatus.CANCELLED: Stop.CANCEL}


def fake_report(
    status: RunStatus = RunStatus.SUCCEEDED,
    *,
    result: Mapping[str, Any] | None = None,
    reason: str | None = None,
    usage: Usage | None = None,
    tool_calls: int = 0,
    stopped_by: Stop | None = None,
) -> RunReport:
    """A RunReport as `supervise` would give it: an outcome for runs that ended on their own
    (succeeded or failed), none for timed out or cancelled runs (stopped by the timeout or
    the cancel, unless `stopped_by` says otherwise)."""
    ended_alone = status in (RunStatus.SUCCEEDED, RunStatus.FAILED)
    stopped_by = stopped_by or _STOPPED_BY.get(status)
    if status is not RunStatus.SUCCEEDED and reason is None:
        reason = f"fake {status}"
    outcome = AgentOutcome(
        success=status is RunStatus.SUCCEEDED,
        result=result if result is not None or status is not RunStatus.SUCCEEDED else {},
        error=reason,
        usage=usage or Usage(),
        tool_calls=tool_calls,
    )
    now = datetime.now(UTC)
    return RunReport(
        status=status,
        reason=reason,
        exit_code=(0 if status is RunStatus.SUCCEEDED else 1) if ended_alone else -15,
        outcome=outcome if ended_alone else None,
        started_at=now,
        ended_at=now,
        pgid=FAKE_PROCESS.pgid,
        tool_calls=tool_calls,
        stopped_by=stopped_by,
    )


@dataclass(frozen=True, slots=True)
class SupervisedCall:
    adapter: AgentAdapter
    request: AgentRequest
    limits: Limits


@dataclass
class ScriptedSupervisor:
    """Stands in for `supervise`: `await fake(adapter, request, limits, on_spawn=...,
    cancel=...)`. A report may be a callable of the request, for answers that depend on it.
    A cancel event already set gives a cancelled report, as the real one does."""

    reports: list[RunReport | Callable[[AgentRequest], RunReport]] = field(
        default_factory=lambda: [fake_report()]
    )
    calls: list[SupervisedCall] = field(default_factory=list)
    delay_seconds: float = 0.0  # how long each fake run "takes" (cancel is honoured meanwhile)

    async def __call__(
        self,
        adapter: AgentAdapter,
        request: AgentRequest,
        limits: Limits,
        *,
        on_spawn: Callable[[ProcessRecord], Awaitable[None]] | None = None,
        cancel: asyncio.Event | None = None,
    ) -> RunReport:
        self.calls.append(SupervisedCall(adapter, request, limits))
        if on_spawn is not None:
            await on_spawn(FAKE_PROCESS)
        if await _cancelled(cancel, self.delay_seconds):
            return replace(fake_report(RunStatus.CANCELLED), reason="cancelled")
        planned = self.reports[min(len(self.calls), len(self.reports)) - 1]
        report = planned(request) if callable(planned) else planned
        request.output_dir.mkdir(parents=True, exist_ok=True)
        if report.outcome is not None and report.outcome.result is not None:
            text = json.dumps(dict(report.outcome.result))
            (request.output_dir / "result.json").write_text(text, encoding="utf-8")
        return report


async def _cancelled(cancel: asyncio.Event | None, delay: float) -> bool:
    if cancel is None:
        await asyncio.sleep(delay)
        return False
    if cancel.is_set():
        return True
    try:
        await asyncio.wait_for(cancel.wait(), timeout=delay)
    except TimeoutError:
        return False
    return True
