"""Claude Code (`claude -p --output-format stream-json`) as an agent runner.

Each task gets its own HOME (`<task>/home`) and `CLAUDE_CONFIG_DIR` in it (`home/.claude`:
taskyard's sandbox keeps HOME writable, and claude writes its state there); settings come
only from there (`--setting-sources user`, so a repository's `.claude/settings.json` and its
hooks are not loaded) and MCP servers only from the command line (`--strict-mcp-config`).
Non-essential traffic and retries are off. Tools are an explicit allowlist, which also works
as root (where skipping permissions refuses to start). The prompt goes in on stdin; the
result comes back through claude's `StructuredOutput` tool (`--json-schema`).

Success is the final `result` event's `is_error == false`, not its `subtype` nor the exit code.
Tool results with `is_error` and the result's `permission_denials` are counted into
`Usage.tool_errors` (a refusal by taskyard's action policy excepted); a run whose tool calls
all failed fails (`flag_failed_tools`).

Sessions: claude keeps each session in `$CLAUDE_CONFIG_DIR/projects/<project>/<id>.jsonl`,
`<project>` being its cwd's real path as a name (`project_name`), and every event names it
(`session_id`, the outcome's). A run with `AgentRequest.resume_session` continues it
(`--resume <id>`, the same id, the new prompt on stdin); claude looks for the file only in
its cwd's project, so `carry_session` copies it there, into the new task's config dir (else:
"No conversation found with session ID: …", exit 1).

claude's own sandbox (bubblewrap around its Bash tool, `sandbox.enabled` in settings) stays
off: `settings.json` in the task's `CLAUDE_CONFIG_DIR` says so explicitly, so a default that
changes cannot nest it inside taskyard's sandbox (`AgentRequest.sandboxed`), where its
bubblewrap adds nothing. Without taskyard's sandbox, claude's Bash runs unsandboxed, limited by
its tool allowlist only.
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
    StreamEvent,
    StreamParser,
    Usage,
    flag_failed_tools,
)
from taskyard.agents.cli_support import (
    Pricing,
    as_dict,
    as_int,
    cli_launch,
    json_line,
    json_object,
    pricing_of,
    resolve_binary,
    shorten,
)
from taskyard.agents.sessions import carry_session_file, checked_session_id
from taskyard.config import AgentConfig
from taskyard.exceptions import ConfigError
from taskyard.tools.base import NOT_ALLOWED, McpLaunch

ALLOWED_TOOLS = ("Bash", "Write", "Edit", "Read")
DEFAULT_BASE_URL = "https://api.anthropic.com"  # claude's model API when base_url is unset
STRUCTURED_OUTPUT = "StructuredOutput"  # the tool --json-schema adds; the answer, not a tool call
_API_ERROR_PREFIX = "API Error: "
_OUT_OF_MEMORY = "MemoryExhaustion"  # how Bun's JavaScriptCore aborts under a low RLIMIT_AS
# The task's settings.json: claude's own (bubblewrap) sandbox off; see the module docstring.
SETTINGS = {"sandbox": {"enabled": False}}
PROJECTS = ("home", ".claude", "projects")  # below the task dir: claude's sessions, by cwd
_MAX_NAME = 200  # a longer project name is cut there, with a hash of the path after it


class ClaudeParser(StreamParser):
    """Reads `claude -p --output-format stream-json --verbose` lines."""

    def __init__(self, pricing: Pricing | None = None) -> None:
        self.pricing = pricing  # the agent's prices (its own, else the budget's price table)
        # Each model message's usage so far, by message id (a message may come in pieces).
        self.messages: dict[str, dict[str, int]] = {}
        self.session_id: str | None = None
        self.result: dict[str, Any] | None = None  # the final `result` event
        self.last_text: str | None = None
        self.structured: dict[str, Any] | None = None  # the StructuredOutput tool's input
        self.tool_calls = 0
        self.failed_tools: dict[str, str] = {}  # tool_use_id → why it failed, in order
        self._tool_names: dict[str, str] = {}  # tool_use_id → tool name
        self._handlers: dict[str, Callable[[dict[str, Any]], list[StreamEvent]]] = {
            "system": self._system,
            "assistant": self._assistant,
            "user": self._user,
            "result": self._result,
        }

    @property
    def tool_errors(self) -> int:
        return len(self.failed_tools)

    @property
    def first_tool_error(self) -> str | None:
        return next(iter(self.failed_tools.values()), None)

    def feed(self, line: str) -> list[StreamEvent]:
        if not line.strip():
            return []
        event = json_line(line)
        if event is None:
            return [StreamEvent("other", shorten(line, 200))]
        handler = self._handlers.get(str(event.get("type")))
        return handler(event) if handler else [StreamEvent("other", str(event.get("type")))]

    def usage_so_far(self) -> Usage | None:
        """The final `result`'s usage once it came; before, the tokens of each model message
        so far, priced by the agent's prices (claude tells its own cost only at the end, and
        a message's output tokens only partly while it streams)."""
        if self.result is not None:
            usage = result_usage(self.result, self.pricing)
        elif self.messages:
            total = {k: sum(m.get(k, 0) for m in self.messages.values()) for k in _TOKEN_KEYS}
            usage = tokens_usage(total, self.pricing)
        else:
            return None
        return replace(usage, tool_errors=self.tool_errors)

    def _system(self, event: dict[str, Any]) -> list[StreamEvent]:
        if event.get("session_id"):
            self.session_id = str(event["session_id"])
        return [StreamEvent("other", f"system.{event.get('subtype')}")]

    def _assistant(self, event: dict[str, Any]) -> list[StreamEvent]:
        message = event.get("message")
        self._count(message)
        content = message.get("content") if isinstance(message, dict) else None
        blocks = [b for b in content or [] if isinstance(b, dict)]
        found = [e for block in blocks for e in self._block(block)]
        if event.get("error"):
            found.append(StreamEvent("error", f"{event['error']}: {shorten(self.last_text or '')}"))
        return found or [StreamEvent("other", "assistant")]

    def _count(self, message: Any) -> None:
        if not isinstance(message, dict) or not isinstance(message.get("usage"), dict):
            return
        key = str(message.get("id") or len(self.messages))
        seen = self.messages.setdefault(key, {})
        for name in _TOKEN_KEYS:
            seen[name] = max(seen.get(name, 0), as_int(message["usage"].get(name)))

    def _block(self, block: dict[str, Any]) -> list[StreamEvent]:
        kind = block.get("type")
        if kind == "text":
            self.last_text = str(block.get("text") or "")
            return [StreamEvent("message", shorten(self.last_text, 200))]
        if kind != "tool_use":
            return []
        name = str(block.get("name"))
        tool_input = block.get("input")
        tool_input = tool_input if isinstance(tool_input, dict) else {}
        if name == STRUCTURED_OUTPUT:
            self.structured = tool_input
            return [StreamEvent("message", "structured output")]
        self.tool_calls += 1
        what = tool_input.get("command") or tool_input.get("file_path") or ""
        described = f"{name}: {what}" if what else name
        self._tool_names[str(block.get("id"))] = shorten(str(described), 120)
        return [StreamEvent("tool_call", described)]

    def _user(self, event: dict[str, Any]) -> list[StreamEvent]:
        """Tool results come back as a `user` message; counts the ones that failed."""
        message = event.get("message")
        content = message.get("content") if isinstance(message, dict) else None
        found = []
        for block in content if isinstance(content, list) else []:
            if not isinstance(block, dict) or block.get("type") != "tool_result":
                continue
            text = _result_text(block.get("content"))
            if block.get("is_error") is True and not text.startswith(NOT_ALLOWED):
                found.append(self._tool_failed(str(block.get("tool_use_id")), text))
        return found or [StreamEvent("other", "user")]

    def _tool_failed(self, tool_use_id: str, text: str) -> StreamEvent:
        if tool_use_id not in self._tool_names:  # not a counted call (StructuredOutput)
            return StreamEvent("other", "tool_result")
        why = f"{self._tool_names[tool_use_id]}: {shorten(text or 'failed', 200)}"
        self.failed_tools.setdefault(tool_use_id, why)
        return StreamEvent("error", why)

    def _result(self, event: dict[str, Any]) -> list[StreamEvent]:
        self.result = event
        denials = event.get("permission_denials")
        for denial in denials if isinstance(denials, list) else []:
            if isinstance(denial, dict) and denial.get("tool_use_id"):
                self._tool_failed(str(denial["tool_use_id"]), "permission denied")
        if event.get("session_id"):
            self.session_id = str(event["session_id"])
        usage = as_dict(event.get("usage"))
        detail = (
            f"input={as_int(usage.get('input_tokens'))} output={as_int(usage.get('output_tokens'))}"
        )
        found = [StreamEvent("usage", detail)]
        if event.get("is_error") is not False:
            found.append(
                StreamEvent("error", shorten(str(event.get("result") or event.get("subtype"))))
            )
        return found


class ClaudeAdapter(AgentAdapter):
    kind = "claude"

    def __init__(self, config: AgentConfig) -> None:
        self.config = config

    def launch(self, request: AgentRequest) -> Launch:
        binary = resolve_binary(self.config, "claude", request.base_env)
        if self.config.api_key is None and "ANTHROPIC_API_KEY" not in self.config.env:
            raise ConfigError("agent claude: api_key (its model provider's key) is not set")
        home = request.task_dir / "home"
        config_dir = home / ".claude"
        mcp_file = request.task_dir / "mcp-config.json"
        argv = [binary, "-p", "--output-format", "stream-json", "--verbose"]
        argv += ["--max-turns", str(self.config.max_turns)]
        argv += ["--json-schema", json.dumps(dict(request.result_schema))]
        argv += ["--setting-sources", "user", "--strict-mcp-config"]
        argv += ["--model", self.config.model] if self.config.model else []
        argv += ["--allowedTools", *ALLOWED_TOOLS, *_mcp_tools(request.mcp)]
        argv += ["--mcp-config", str(mcp_file)] if request.mcp is not None else []
        if request.resume_session is not None:
            argv += ["--resume", checked_session_id(request.resume_session)]
        env = {
            **request.base_env,
            "HOME": str(home),
            "CLAUDE_CONFIG_DIR": str(config_dir),
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "CLAUDE_CODE_MAX_RETRIES": "0",
            # Wait for the MCP servers before the first turn (as codex's `required = true`):
            # in -p mode claude would otherwise let the model call taskyard's tools while the
            # server still connects ("No such tool available").
            "MCP_CONNECTION_NONBLOCKING": "0",
            **({"ANTHROPIC_BASE_URL": self.config.base_url} if self.config.base_url else {}),
            **({"ANTHROPIC_API_KEY": self.config.api_key} if self.config.api_key else {}),
            **self.config.env,
        }
        files = {
            home / ".taskyard": "the agent's HOME\n",
            config_dir / "settings.json": json.dumps(SETTINGS) + "\n",
            **({mcp_file: _mcp_config(request.mcp)} if request.mcp is not None else {}),
        }
        model_url = self.config.base_url or DEFAULT_BASE_URL
        return cli_launch(request, argv, env, files, binary=binary, model_url=model_url)

    def new_parser(self) -> StreamParser:
        return ClaudeParser(pricing_of(self.config))

    def session_files(self, task_dir: Path) -> Path:
        return task_dir.joinpath(*PROJECTS)

    def carry_session(self, earlier_task_dir: Path, request: AgentRequest) -> AgentRequest:
        """The session's file, into the project of the new task's workspace (named by its
        path as given and by its real path, when they differ: claude resolves its cwd)."""
        projects = self.session_files(request.task_dir)
        names = {project_name(request.workspace), project_name(request.workspace.resolve())}
        carried, _ = carry_session_file(
            earlier_task_dir,
            request,
            PROJECTS,
            lambda name, session: name == f"{session}.jsonl",
            lambda source: [projects / name / source[-1] for name in sorted(names)],
            depth=1,  # <project>/<id>.jsonl
        )
        return carried  # claude's `result` counts this run's tokens only

    def outcome(
        self, request: AgentRequest, parser: StreamParser, exit_code: int, stderr_tail: str
    ) -> AgentOutcome:
        if not isinstance(parser, ClaudeParser):
            raise TypeError(f"claude outcome needs a ClaudeParser, got {type(parser).__name__}")
        usage = result_usage(parser.result or {}, pricing_of(self.config))
        failed = AgentOutcome(
            False,
            None,
            None,
            replace(usage, tool_errors=parser.tool_errors),
            parser.tool_calls,
            parser.session_id,
        )
        error = self._failure(parser, exit_code, stderr_tail)
        if error is not None:
            return replace(failed, error=error)
        result = _structured(parser)
        if result is None:
            text = str((parser.result or {}).get("result") or "(empty)")
            return replace(failed, error=f"claude gave no structured result: {shorten(text)}")
        succeeded = replace(failed, success=True, result=result)
        return flag_failed_tools(succeeded, parser.first_tool_error)

    def _failure(self, p: ClaudeParser, exit_code: int, stderr_tail: str) -> str | None:
        event = p.result
        if event is None:
            if _OUT_OF_MEMORY in stderr_tail:
                return (
                    f"claude exited {exit_code}: out of memory ({_OUT_OF_MEMORY}); it needs "
                    "about 2.5 GiB of address space: raise the agent's address_space_bytes"
                )
            why = stderr_tail or p.last_text or "(no output)"
            return f"claude exited {exit_code} without a result: {shorten(why)}"
        if event.get("is_error") is False:
            return None
        text = str(event.get("result") or "")
        if event.get("subtype") == "error_max_turns":
            return f"max turns exceeded ({self.config.max_turns})"
        if event.get("api_error_status") is not None or text.startswith(_API_ERROR_PREFIX):
            return f"model API error: {shorten(text.removeprefix(_API_ERROR_PREFIX))}"
        errors = event.get("errors")
        detail = "; ".join(map(str, errors)) if isinstance(errors, list) and errors else text
        return f"claude failed ({event.get('subtype')}): {shorten(detail or stderr_tail)}"


_TOKEN_KEYS = (
    "input_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
    "output_tokens",
)


def tokens_usage(usage: dict[str, Any], pricing: Pricing | None) -> Usage:
    """Anthropic's token counts (fresh, cache writes and cache reads are apart) as `Usage`,
    priced by `pricing` when it has prices."""
    cached = as_int(usage.get("cache_read_input_tokens"))
    total_input = (
        as_int(usage.get("input_tokens"))
        + as_int(usage.get("cache_creation_input_tokens"))
        + cached
    )
    output = as_int(usage.get("output_tokens"))
    cost = pricing(total_input, cached, output) if pricing is not None else None
    return Usage(total_input, cached, output, 0, cost)


def result_usage(event: dict[str, Any], pricing: Pricing | None) -> Usage:
    """The final `result` event's usage: priced by the agent's prices when it has them, else
    the cost claude reports (`total_cost_usd`)."""
    usage = tokens_usage(as_dict(event.get("usage")), pricing)
    reported = event.get("total_cost_usd")
    if usage.cost_usd is not None or isinstance(reported, bool):
        return usage
    if isinstance(reported, int | float):
        return replace(usage, cost_usd=float(reported))
    return usage


def project_name(cwd: Path) -> str:
    """claude's name for the project of `cwd` (a directory in `projects/`), as claude 2.1
    makes it in JavaScript: every UTF-16 code unit but an ASCII letter or digit as `-`; a name
    over 200 units is cut there and ends in `-` and the path's string hash in base 36."""
    units = _utf16_units(str(cwd))
    name = "".join(chr(u) if chr(u).isascii() and chr(u).isalnum() else "-" for u in units)
    if len(name) <= _MAX_NAME:
        return name
    value = 0
    for unit in units:  # JavaScript's `h = (h << 5) - h + code | 0`
        value = (value * 31 + unit) & 0xFFFFFFFF
    signed = value - (1 << 32) if value >= 1 << 31 else value
    return f"{name[:_MAX_NAME]}-{_base36(abs(signed))}"


def _utf16_units(text: str) -> list[int]:
    raw = text.encode("utf-16-le", "surrogatepass")
    return [int.from_bytes(raw[i : i + 2], "little") for i in range(0, len(raw), 2)]


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        number, digit = divmod(number, 36)
        out = digits[digit] + out
        if number == 0:
            return out


def _result_text(content: Any) -> str:
    """A tool_result's content: a string, or a list of text blocks."""
    if isinstance(content, str):
        return content
    blocks = content if isinstance(content, list) else []
    return " ".join(str(b.get("text") or "") for b in blocks if isinstance(b, dict))


def _mcp_tools(mcp: McpLaunch | None) -> list[str]:
    """claude names an MCP tool `mcp__<server>__<tool>`; each must be allowed by name."""
    return [f"mcp__{mcp.name}__{tool}" for tool in mcp.tools] if mcp is not None else []


def _mcp_config(mcp: McpLaunch) -> str:
    """The `--mcp-config` file: taskyard's stdio MCP server and nothing else."""
    server = {"type": "stdio", "command": mcp.command, "args": list(mcp.args), "env": dict(mcp.env)}
    return json.dumps({"mcpServers": {mcp.name: server}}, indent=2) + "\n"


def _structured(p: ClaudeParser) -> dict[str, Any] | None:
    event = p.result or {}
    given = event.get("structured_output")
    if isinstance(given, dict):
        return given
    return p.structured or json_object(str(event.get("result") or ""))
