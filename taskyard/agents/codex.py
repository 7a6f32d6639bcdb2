"""The OpenAI Codex CLI (`codex exec --json`) as an agent runner.

Each task gets its own `CODEX_HOME` (`<task>/codex-home/config.toml`) naming one model
provider — `config.base_url`, the Responses API, no retries — with update checks, analytics
and plugins off, so codex talks to nothing but that provider. The prompt goes in on stdin;
the final message must match the result schema (`--output-schema`) and is also written to
`outputs/last_message.txt`.

Success is read from the JSONL stream, not the exit code: a `turn.completed` and no
`turn.failed`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from taskyard.agents.base import (
    AgentAdapter,
    AgentOutcome,
    AgentRequest,
    Launch,
    McpLaunch,
    StreamEvent,
    StreamParser,
    Usage,
)
from taskyard.agents.cli_support import (
    Pricing,
    as_dict,
    as_int,
    json_line,
    json_object,
    price,
    pricing_of,
    resolve_binary,
    shorten,
)
from taskyard.config import AgentConfig
from taskyard.exceptions import ConfigError

API_KEY_ENV = "TASKYARD_MODEL_API_KEY"  # the variable codex reads the provider's key from
LAST_MESSAGE = "last_message.txt"
DEFAULT_BASE_URL = "https://api.openai.com/v1"
PROVIDER = "taskyard"
# Items that are the agent using a tool; each is counted once, on its first event.
TOOL_ITEMS = frozenset({"command_execution", "mcp_tool_call", "file_change", "web_search"})


TomlValue = str | bool | int | tuple[str, ...]


def _toml(value: TomlValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, tuple):
        return "[" + ", ".join(map(json.dumps, value)) + "]"
    return json.dumps(value)  # JSON string escapes are valid TOML basic-string escapes


def _mcp_tables(mcp: McpLaunch) -> dict[str, dict[str, TomlValue]]:
    """taskyard's MCP server; its tools run without asking (approval is taskyard's job)."""
    server = f"mcp_servers.{mcp.name}"
    return {
        server: {
            "command": mcp.command,
            "args": mcp.args,
            "default_tools_approval_mode": "approve",
            "required": True,
        },
        f"{server}.env": {json.dumps(k): v for k, v in mcp.env.items()},
    }


def config_toml(config: AgentConfig, mcp: McpLaunch | None = None) -> str:
    """`config.toml` for one task's CODEX_HOME."""
    top: dict[str, str | bool | int] = {"model_provider": PROVIDER}
    if config.model:
        top["model"] = config.model
    top |= {
        "approval_policy": "never",
        "sandbox_mode": "workspace-write",
        "check_for_update_on_startup": False,
    }
    tables: dict[str, dict[str, TomlValue]] = {
        f"model_providers.{PROVIDER}": {
            "name": PROVIDER,
            "base_url": config.base_url or DEFAULT_BASE_URL,
            "env_key": API_KEY_ENV,
            "wire_api": "responses",
            "request_max_retries": 0,
            "stream_max_retries": 0,
        },
        "analytics": {"enabled": False},
        "features": {"plugins": False},
        **(_mcp_tables(mcp) if mcp is not None else {}),
    }
    lines = ["# Written by taskyard for one task."]
    lines += [f"{key} = {_toml(value)}" for key, value in top.items()]
    for name, table in tables.items():
        lines += ["", f"[{name}]"] + [f"{key} = {_toml(value)}" for key, value in table.items()]
    return "\n".join(lines) + "\n"


class CodexParser(StreamParser):
    """Reads `codex exec --json` lines."""

    def __init__(self, pricing: Pricing | None = None) -> None:
        self.pricing = pricing  # prices the tokens for `usage_so_far` (the cost ceiling)
        self.session_id: str | None = None
        self.turn_completed = False
        self.failure: str | None = None  # turn.failed's message
        self.last_error: str | None = None  # the latest `error` event or item
        self.last_message: str | None = None
        self.tool_calls = 0
        self.input_tokens = 0
        self.cached_input_tokens = 0
        self.output_tokens = 0
        self.reasoning_tokens = 0
        self._tool_items: set[str] = set()
        self._handlers: dict[str, Callable[[dict[str, Any]], list[StreamEvent]]] = {
            "thread.started": self._thread_started,
            "item.started": self._item,
            "item.updated": self._item,
            "item.completed": self._item,
            "turn.completed": self._turn_completed,
            "turn.failed": self._turn_failed,
            "error": self._error,
        }

    def feed(self, line: str) -> list[StreamEvent]:
        if not line.strip():
            return []
        event = json_line(line)
        if event is None:
            return [StreamEvent("other", shorten(line, 200))]
        handler = self._handlers.get(str(event.get("type")))
        return handler(event) if handler else [StreamEvent("other", str(event.get("type")))]

    def usage_so_far(self) -> Usage | None:
        """codex reports tokens only when its turn ends (`turn.completed`): until then, None."""
        if not self.turn_completed:
            return None
        inputs, cached, output = self.input_tokens, self.cached_input_tokens, self.output_tokens
        cost = self.pricing(inputs, cached, output) if self.pricing is not None else None
        return Usage(inputs, cached, output, self.reasoning_tokens, cost)

    def _thread_started(self, event: dict[str, Any]) -> list[StreamEvent]:
        self.session_id = str(event.get("thread_id") or "") or None
        return [StreamEvent("other", "thread.started")]

    def _item(self, event: dict[str, Any]) -> list[StreamEvent]:
        item = event.get("item")
        if not isinstance(item, dict):
            return [StreamEvent("other", str(event.get("type")))]
        kind = str(item.get("type"))
        if kind in TOOL_ITEMS:
            return self._tool_item(item, kind)
        if kind == "agent_message" and event.get("type") == "item.completed":
            self.last_message = str(item.get("text") or "")
            return [StreamEvent("message", shorten(self.last_message, 200))]
        if kind == "error":
            self.last_error = str(item.get("message") or "")
            return [StreamEvent("error", self.last_error)]
        return [StreamEvent("other", kind)]

    def _tool_item(self, item: dict[str, Any], kind: str) -> list[StreamEvent]:
        item_id = str(item.get("id") or id(item))
        if item_id in self._tool_items:
            return [StreamEvent("other", kind)]
        self._tool_items.add(item_id)
        self.tool_calls += 1
        return [StreamEvent("tool_call", _describe_tool(item, kind))]

    def _turn_completed(self, event: dict[str, Any]) -> list[StreamEvent]:
        self.turn_completed = True
        usage = as_dict(event.get("usage"))
        self.input_tokens += as_int(usage.get("input_tokens"))
        self.cached_input_tokens += as_int(usage.get("cached_input_tokens"))
        self.output_tokens += as_int(usage.get("output_tokens"))
        self.reasoning_tokens += as_int(usage.get("reasoning_output_tokens"))
        detail = f"input={self.input_tokens} output={self.output_tokens}"
        return [StreamEvent("usage", detail)]

    def _turn_failed(self, event: dict[str, Any]) -> list[StreamEvent]:
        error = event.get("error")
        message = error.get("message") if isinstance(error, dict) else error
        self.failure = _api_message(str(message or "the turn failed"))
        return [StreamEvent("error", self.failure)]

    def _error(self, event: dict[str, Any]) -> list[StreamEvent]:
        self.last_error = str(event.get("message") or "")
        return [StreamEvent("error", self.last_error)]


def _describe_tool(item: dict[str, Any], kind: str) -> str:
    if kind == "command_execution":
        return str(item.get("command") or kind)
    if kind == "mcp_tool_call":
        return f"mcp {item.get('server')}.{item.get('tool')}"
    if kind == "file_change":
        changes = item.get("changes")
        paths = [c.get("path") for c in changes if isinstance(c, dict)] if changes else []
        return "edit " + ", ".join(str(p) for p in paths) if paths else kind
    return kind


def _api_message(message: str) -> str:
    """codex passes some API error bodies through as JSON; keep only their message."""
    body = json_line(message)
    error = body.get("error") if body else None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    return message


class CodexAdapter(AgentAdapter):
    kind = "codex"

    def __init__(self, config: AgentConfig) -> None:
        self.config = config

    def launch(self, request: AgentRequest) -> Launch:
        binary = resolve_binary(self.config, "codex", request.base_env)
        if self.config.api_key is None and API_KEY_ENV not in self.config.env:
            raise ConfigError("agent codex: api_key (its model provider's key) is not set")
        codex_home = request.task_dir / "codex-home"
        schema_file = request.task_dir / "result-schema.json"
        last_message = request.output_dir / LAST_MESSAGE
        argv = [binary, "exec", "--json", "--skip-git-repo-check", "--ephemeral"]
        argv += ["--sandbox", "workspace-write", "-C", str(request.workspace)]
        argv += ["-o", str(last_message), "--output-schema", str(schema_file)]
        argv += ["-m", self.config.model] if self.config.model else []
        argv.append("-")
        env = {
            **request.base_env,
            "HOME": str(request.task_dir / "home"),
            "CODEX_HOME": str(codex_home),
            **({API_KEY_ENV: self.config.api_key} if self.config.api_key is not None else {}),
            **self.config.env,
        }
        files = {
            codex_home / "config.toml": config_toml(self.config, request.mcp),
            schema_file: json.dumps(dict(request.result_schema), indent=2),
            last_message: "",  # a run never reads an earlier run's answer
            request.task_dir / "home" / ".taskyard": "the agent's HOME\n",
        }
        return Launch(tuple(argv), env, request.workspace, request.prompt_file, files)

    def new_parser(self) -> StreamParser:
        return CodexParser(pricing_of(self.config))

    def outcome(
        self, request: AgentRequest, parser: StreamParser, exit_code: int, stderr_tail: str
    ) -> AgentOutcome:
        if not isinstance(parser, CodexParser):
            raise TypeError(f"codex outcome needs a CodexParser, got {type(parser).__name__}")
        failed = AgentOutcome(
            False, None, None, self._usage(parser), parser.tool_calls, parser.session_id
        )
        error = _failure(parser, exit_code, stderr_tail)
        if error is not None:
            return replace(failed, error=error)
        answer = _read_answer(request.output_dir / LAST_MESSAGE) or parser.last_message
        result = json_object(answer)
        if result is None:
            error = f"codex's final message is not a JSON object: {shorten(answer or '(empty)')}"
            return replace(failed, error=error)
        return replace(failed, success=True, result=result)

    def _usage(self, p: CodexParser) -> Usage:
        cost = price(self.config, p.input_tokens, p.cached_input_tokens, p.output_tokens)
        return Usage(
            p.input_tokens, p.cached_input_tokens, p.output_tokens, p.reasoning_tokens, cost
        )


def _failure(p: CodexParser, exit_code: int, stderr_tail: str) -> str | None:
    if p.failure is not None:
        return f"model API error: {p.failure}"
    if exit_code != 0:
        return f"codex exited {exit_code}: {shorten(stderr_tail or p.last_error or '(no output)')}"
    if not p.turn_completed:
        why = p.last_error or "no turn.completed event"
        return f"codex stopped before finishing its turn: {shorten(why)}"
    return None


def _read_answer(path: Path) -> str | None:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    return text if text.strip() else None
