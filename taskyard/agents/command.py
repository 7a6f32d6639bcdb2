"""The `command` agent: any argv, run in the task's workspace.

Configuration (`agents:` in taskyard.yaml):

    agents:
      my-script:
        kind: command
        argv: ["python", "agent.py", "--prompt", "{prompt_file}"]
        env: {MY_MODEL_KEY: "..."}     # extra variables, passed as they are
        api_key: "..."                 # optional: given to the command as AGENT_API_KEY
        base_url: "http://127.0.0.1:8000/v1"  # optional: the model provider the sandbox lets
                                       # it reach (so do env values named *_BASE_URL)

Placeholders in argv: `{prompt_file}`, `{context_dir}`, `{output_dir}`, `{workspace}`,
`{task_dir}`, `{task_id}`; any other brace is left alone. The command also gets CONTEXT_DIR,
OUTPUT_DIR, TASK_ID, PROMPT_FILE and HOME in its environment, and the prompt on stdin.

Protocol:
- The result is `$OUTPUT_DIR/result.json`, written by the command. Success is exit 0 and a
  result file that parses as a JSON object. A non-zero exit is a failure carrying the exit
  code and the tail of stderr.
- Each stdout line goes to `outputs/log.jsonl` (JSON objects as they are, other lines wrapped).
  A JSON line `{"type": "tool_call", "name": ...}` counts as one tool call against the budget
  (`max_tool_calls`); `{"type": "usage", "input_tokens": n, "output_tokens": n,
  "cached_input_tokens": n, "cost_usd": x}` adds to the run's usage; `{"type": "message",
  "text": ...}` and `{"type": "error", "message": ...}` are reported as such.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import orjson

from taskyard.agents.base import (
    AgentAdapter,
    AgentOutcome,
    AgentRequest,
    Launch,
    StreamEvent,
    StreamParser,
    Usage,
)
from taskyard.agents.outfiles import read_output
from taskyard.agents.supervisor import describe_exit
from taskyard.config import AgentConfig
from taskyard.exceptions import AgentOutputRefused, ConfigError

_PLACEHOLDER = re.compile(r"\{(prompt_file|context_dir|output_dir|workspace|task_dir|task_id)\}")
_REASON_TAIL_CHARS = 1000
_USAGE_FIELDS = ("input_tokens", "cached_input_tokens", "output_tokens", "reasoning_tokens")


def task_values(request: AgentRequest) -> dict[str, str]:
    """What the argv placeholders stand for."""
    return {
        "prompt_file": str(request.prompt_file),
        "context_dir": str(request.context_dir),
        "output_dir": str(request.output_dir),
        "workspace": str(request.workspace),
        "task_dir": str(request.task_dir),
        "task_id": request.task_id,
    }


def expand_argv(argv: tuple[str, ...], request: AgentRequest) -> tuple[str, ...]:
    values = task_values(request)
    return tuple(_PLACEHOLDER.sub(lambda m: values[m.group(1)], arg) for arg in argv)


class JsonLineParser(StreamParser):
    """Reads the command protocol's JSON lines (see the module docstring)."""

    def __init__(self) -> None:
        self.tool_calls = 0
        self.usage = Usage()
        self.usage_lines = 0  # `usage` lines read so far
        self.messages: list[str] = []
        self.errors: list[str] = []

    def usage_so_far(self) -> Usage | None:
        """The `usage` lines added up so far (their `cost_usd` is the run's cost)."""
        return self.usage if self.usage_lines else None

    def feed(self, line: str) -> list[StreamEvent]:
        try:
            data = orjson.loads(line)
        except orjson.JSONDecodeError:
            return [StreamEvent("other")]
        if not isinstance(data, dict):
            return [StreamEvent("other")]
        handler = self._HANDLERS.get(str(data.get("type", "")))
        return [handler(self, data)] if handler else [StreamEvent("other")]

    def _tool_call(self, data: dict[str, Any]) -> StreamEvent:
        self.tool_calls += 1
        return StreamEvent("tool_call", str(data.get("name", "")))

    def _usage(self, data: dict[str, Any]) -> StreamEvent:
        changes: dict[str, Any] = {
            name: getattr(self.usage, name) + _count(data.get(name)) for name in _USAGE_FIELDS
        }
        cost = data.get("cost_usd")
        if isinstance(cost, int | float) and not isinstance(cost, bool):
            changes["cost_usd"] = (self.usage.cost_usd or 0.0) + float(cost)
        self.usage = replace(self.usage, **changes)
        self.usage_lines += 1
        return StreamEvent("usage")

    def _message(self, data: dict[str, Any]) -> StreamEvent:
        text = str(data.get("text", ""))
        self.messages.append(text)
        return StreamEvent("message", text)

    def _error(self, data: dict[str, Any]) -> StreamEvent:
        text = str(data.get("message", data.get("text", "")))
        self.errors.append(text)
        return StreamEvent("error", text)

    _HANDLERS = {
        "tool_call": _tool_call,
        "usage": _usage,
        "message": _message,
        "error": _error,
    }


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def read_result(request: AgentRequest) -> tuple[dict[str, Any] | None, str | None]:
    """`outputs/result.json` as a JSON object, or why it is not one."""
    try:
        raw = read_output(request.output_dir, "result.json")
    except AgentOutputRefused as exc:
        return None, str(exc)
    except OSError as exc:
        return None, f"cannot read outputs/result.json: {exc}"
    if raw is None:
        return None, "the agent wrote no outputs/result.json"
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return None, f"outputs/result.json is not valid JSON: {exc}"
    if not isinstance(data, dict):
        return None, f"outputs/result.json is a JSON {type(data).__name__}, not an object"
    return data, None


def command_outcome(
    request: AgentRequest, parser: StreamParser, exit_code: int, stderr_tail: str
) -> AgentOutcome:
    """Success = exit 0 and a result.json that is a JSON object."""
    stats = parser if isinstance(parser, JsonLineParser) else JsonLineParser()
    common: dict[str, Any] = {"usage": stats.usage, "tool_calls": stats.tool_calls}
    if exit_code != 0:
        tail = stderr_tail.strip()[-_REASON_TAIL_CHARS:]
        error = f"agent {describe_exit(exit_code)}" + (f": {tail}" if tail else "")
        return AgentOutcome(success=False, result=None, error=error, **common)
    result, problem = read_result(request)
    return AgentOutcome(success=result is not None, result=result, error=problem, **common)


class CommandAdapter(AgentAdapter):
    kind = "command"

    def __init__(self, config: AgentConfig) -> None:
        if not config.argv:
            raise ConfigError("a command agent needs a non-empty argv")
        self.config = config

    def launch(self, request: AgentRequest) -> Launch:
        env = dict(request.base_env)
        env.update(self.config.env)
        if self.config.api_key:
            env["AGENT_API_KEY"] = self.config.api_key
        env.setdefault("HOME", str(request.task_dir / "home"))
        env.update(
            CONTEXT_DIR=str(request.context_dir),
            OUTPUT_DIR=str(request.output_dir),
            TASK_ID=request.task_id,
            PROMPT_FILE=str(request.prompt_file),
        )
        return Launch(
            argv=expand_argv(self.config.argv, request),
            env=env,
            cwd=request.workspace,
            stdin_file=request.prompt_file,
            egress=(self.config.base_url,) if self.config.base_url else (),
        )

    def new_parser(self) -> StreamParser:
        return JsonLineParser()

    def outcome(
        self, request: AgentRequest, parser: StreamParser, exit_code: int, stderr_tail: str
    ) -> AgentOutcome:
        return command_outcome(request, parser, exit_code, stderr_tail)
