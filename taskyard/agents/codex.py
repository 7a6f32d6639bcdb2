"""The OpenAI Codex CLI (`codex exec --json`) as an agent runner.

Each task gets its own `CODEX_HOME` (`<task>/home/.codex/config.toml`, inside the agent's
HOME, which taskyard's sandbox keeps writable: codex writes its state there) naming one model
provider — `config.base_url`, the Responses API, no retries — with update checks, analytics
and plugins off, so codex talks to nothing but that provider. The prompt goes in on stdin;
the final message must match the result schema (`--output-schema`) and is also written to
`outputs/last_message.txt`.

Success is read from the JSONL stream, not the exit code: a `turn.completed` and no
`turn.failed`. Tool calls that failed (a command's non-zero exit, an MCP tool's error) are
counted into `Usage.tool_errors`; a run whose tool calls all failed fails
(`flag_failed_tools`).

Sessions: codex keeps each run's thread in `$CODEX_HOME/sessions/YYYY/MM/DD/
rollout-<time>-<thread id>.jsonl` (so no `--ephemeral`), and its `thread.started` event names
the thread (`AgentOutcome.session_id`). A run with `AgentRequest.resume_session` continues
that thread (`codex exec [OPTIONS] resume <id> -`: the options go before `resume`, which
takes no `--sandbox` nor `-C` of its own), with the new prompt, in the new workspace; the
thread's file must be in the task's own CODEX_HOME first (`carry_session`), else codex
exits 1 ("no rollout found for thread id …"). A resumed thread's `turn.completed` usage is the
thread's total, earlier runs included (seen: 200 input tokens after the first run, 300 after
a one-request resume): `carry_session` reads the total the rollout ends with
(`resumed_usage`), and the outcome takes it off. `usage_so_far`, which has no request, still
counts the earlier runs, once the turn completes.

codex's own sandbox: inside taskyard's sandbox (`AgentRequest.sandboxed`) it is off
(`--sandbox danger-full-access`, and `sandbox_mode` in config.toml): taskyard's sandbox wraps
the whole process tree, and codex's bubblewrap nested in it adds nothing. Without taskyard's
sandbox codex keeps its own (`workspace-write`: bubblewrap with a read-only system, only the
workspace and the task's `TMPDIR` writable, not /tmp, no network). That needs its
`codex-linux-sandbox` helper, an alias of its own binary it makes under `$CODEX_HOME/tmp` on
every start but refuses to make when `CODEX_HOME` lies under the temporary directory
(`$TMPDIR`, else /tmp): then every command fails (`bwrap: execvp codex-linux-sandbox: No such
file or directory`) and codex reports no item for it at all, so the run looked like a success
with 0 tool calls. Hence the task's own `TMPDIR` (`<task>/home/.tmp`, beside `CODEX_HOME`),
and a warning that codex could not make its helper fails the run. (Under its own sandbox,
codex also reports no item for a command the sandbox denied: only taskyard's sandbox, with
codex's off, lets such failures be counted.)
"""

from __future__ import annotations

import json
import logging
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
    price,
    pricing_of,
    resolve_binary,
    shorten,
)
from taskyard.agents.outfiles import read_output
from taskyard.agents.sessions import carry_session_file, checked_session_id
from taskyard.config import AgentConfig
from taskyard.exceptions import AgentOutputRefused, ConfigError
from taskyard.tools.base import NOT_ALLOWED, McpLaunch

log = logging.getLogger(__name__)

API_KEY_ENV = "TASKYARD_MODEL_API_KEY"  # the variable codex reads the provider's key from
LAST_MESSAGE = "last_message.txt"
DEFAULT_BASE_URL = "https://api.openai.com/v1"
PROVIDER = "taskyard"
# Items that are the agent using a tool; each is counted once, on its first event.
TOOL_ITEMS = frozenset({"command_execution", "mcp_tool_call", "file_change", "web_search"})
# codex's own sandbox, by whether taskyard's sandbox wraps the run (see the module docstring).
INNER_SANDBOX = {True: "danger-full-access", False: "workspace-write"}
# What codex prints when it could not make its sandbox helper: its commands will all fail.
NO_HELPER = "could not create PATH aliases"
SESSIONS = ("home", ".codex", "sessions")  # below the task dir: where codex keeps its threads


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


def config_toml(
    config: AgentConfig, mcp: McpLaunch | None = None, sandbox_mode: str = "workspace-write"
) -> str:
    """`config.toml` for one task's CODEX_HOME."""
    top: dict[str, str | bool | int] = {"model_provider": PROVIDER}
    if config.model:
        top["model"] = config.model
    top |= {
        "approval_policy": "never",
        "sandbox_mode": sandbox_mode,
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
    if sandbox_mode == "workspace-write":  # writable: the workspace and the task's TMPDIR only
        tables["sandbox_workspace_write"] = {"exclude_slash_tmp": True, "network_access": False}
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
        self.tool_errors = 0
        self.first_tool_error: str | None = None
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
        return Usage(inputs, cached, output, self.reasoning_tokens, cost, self.tool_errors)

    def _thread_started(self, event: dict[str, Any]) -> list[StreamEvent]:
        self.session_id = str(event.get("thread_id") or "") or None
        return [StreamEvent("other", "thread.started")]

    def _item(self, event: dict[str, Any]) -> list[StreamEvent]:
        item = event.get("item")
        if not isinstance(item, dict):
            return [StreamEvent("other", str(event.get("type")))]
        kind = str(item.get("type"))
        if kind in TOOL_ITEMS:
            if event.get("type") == "item.completed":
                self._tool_done(item, kind)
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

    def _tool_done(self, item: dict[str, Any], kind: str) -> None:
        """Counts a finished tool item that failed (each item completes once)."""
        error = _tool_error(item, kind)
        if error is None:
            return
        self.tool_errors += 1
        if self.first_tool_error is None:
            self.first_tool_error = error

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


def _tool_error(item: dict[str, Any], kind: str) -> str | None:
    """Why a completed tool item failed, or None if it did not. A refusal by taskyard's
    action policy is the tool's answer, not its failure."""
    what = _describe_tool(item, kind)
    if kind == "mcp_tool_call":
        error = item.get("error")
        message = error.get("message") if isinstance(error, dict) else error
        text = str(message or _mcp_text(item.get("result")) or "")
        if text.startswith(NOT_ALLOWED) or (not error and item.get("status") != "failed"):
            return None
        return f"{what}: {shorten(text or 'failed', 200)}"
    code = item.get("exit_code")
    failed = item.get("status") == "failed" or (isinstance(code, int) and code != 0)
    if not failed:
        return None
    output = shorten(str(item.get("aggregated_output") or ""), 200)
    exited = f"exited {code}" if isinstance(code, int) else "failed"
    return f"{what} {exited}" + (f": {output}" if output else "")


def _mcp_text(result: Any) -> str:
    """The text of an MCP tool result (`{"content": [{"type": "text", "text": …}]}`)."""
    content = result.get("content") if isinstance(result, dict) else None
    texts = [c.get("text") for c in content or [] if isinstance(c, dict)]
    return " ".join(str(t) for t in texts if t)


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
        home = request.task_dir / "home"
        codex_home, tmp = home / ".codex", home / ".tmp"
        schema_file = request.task_dir / "result-schema.json"
        last_message = request.output_dir / LAST_MESSAGE
        argv = [binary, "exec", "--json", "--skip-git-repo-check"]
        inner = INNER_SANDBOX[request.sandboxed]
        argv += ["--sandbox", inner, "-C", str(request.workspace)]
        argv += ["-o", str(last_message), "--output-schema", str(schema_file)]
        argv += ["-m", self.config.model] if self.config.model else []
        if request.resume_session is not None:
            argv += ["resume", checked_session_id(request.resume_session)]
        argv.append("-")
        env = {
            **request.base_env,
            "HOME": str(home),
            "CODEX_HOME": str(codex_home),
            "TMPDIR": str(tmp),  # see the module docstring
            **({API_KEY_ENV: self.config.api_key} if self.config.api_key is not None else {}),
            **self.config.env,
        }
        files = {
            codex_home / "config.toml": config_toml(self.config, request.mcp, inner),
            schema_file: json.dumps(dict(request.result_schema), indent=2),
            last_message: "",  # a run never reads an earlier run's answer
            home / ".taskyard": "the agent's HOME\n",
            tmp / ".taskyard": "the agent's TMPDIR\n",
        }
        if request.sandboxed:
            log.info(
                "codex's own sandbox is off: taskyard's sandbox wraps it",
                extra={"task_id": request.task_id},
            )
        model_url = self.config.base_url or DEFAULT_BASE_URL
        return cli_launch(request, argv, env, files, binary=binary, model_url=model_url)

    def new_parser(self) -> StreamParser:
        return CodexParser(pricing_of(self.config))

    def session_files(self, task_dir: Path) -> Path:
        return task_dir.joinpath(*SESSIONS)

    def carry_session(self, earlier_task_dir: Path, request: AgentRequest) -> AgentRequest:
        """The thread's rollout file, at the same place in the new task's CODEX_HOME (codex
        finds a thread by its id in the file's name)."""
        carried, rollout = carry_session_file(
            earlier_task_dir,
            request,
            SESSIONS,
            lambda name, thread: name.startswith("rollout-") and name.endswith(f"-{thread}.jsonl"),
            lambda source: [request.task_dir.joinpath(*source)],
            depth=3,  # YYYY/MM/DD
        )
        if carried.resume_session is None:
            return carried
        return replace(carried, resumed_usage=thread_usage(rollout))

    def outcome(
        self, request: AgentRequest, parser: StreamParser, exit_code: int, stderr_tail: str
    ) -> AgentOutcome:
        if not isinstance(parser, CodexParser):
            raise TypeError(f"codex outcome needs a CodexParser, got {type(parser).__name__}")
        usage = self._usage(parser, request.resumed_usage or Usage())
        failed = AgentOutcome(False, None, None, usage, parser.tool_calls, parser.session_id)
        error = _failure(parser, exit_code, stderr_tail, inner_sandbox=not request.sandboxed)
        if error is not None:
            return replace(failed, error=error)
        answer = _read_answer(request.output_dir / LAST_MESSAGE) or parser.last_message
        result = json_object(answer)
        if result is None:
            error = f"codex's final message is not a JSON object: {shorten(answer or '(empty)')}"
            return replace(failed, error=error)
        succeeded = replace(failed, success=True, result=result)
        return flag_failed_tools(succeeded, parser.first_tool_error)

    def _usage(self, p: CodexParser, before: Usage) -> Usage:
        """The run's usage: the thread's, less what it had used `before` this run."""
        inputs = max(p.input_tokens - before.input_tokens, 0)
        cached = max(p.cached_input_tokens - before.cached_input_tokens, 0)
        output = max(p.output_tokens - before.output_tokens, 0)
        reasoning = max(p.reasoning_tokens - before.reasoning_tokens, 0)
        cost = price(self.config, inputs, cached, output)
        return Usage(inputs, cached, output, reasoning, cost, p.tool_errors)


def thread_usage(rollout: bytes) -> Usage:
    """The thread's total usage as its rollout file last records it (its last `token_count`
    event), or nothing used."""
    found = Usage()
    for line in rollout.decode("utf-8", "replace").splitlines():
        event = json_line(line)
        payload = as_dict(event.get("payload")) if event else {}
        if payload.get("type") != "token_count":
            continue
        total = as_dict(as_dict(payload.get("info")).get("total_token_usage"))
        found = Usage(
            as_int(total.get("input_tokens")),
            as_int(total.get("cached_input_tokens")),
            as_int(total.get("output_tokens")),
            as_int(total.get("reasoning_output_tokens")),
        )
    return found


def _failure(
    p: CodexParser, exit_code: int, stderr_tail: str, *, inner_sandbox: bool
) -> str | None:
    if inner_sandbox and NO_HELPER in stderr_tail:
        line = next(x for x in stderr_tail.splitlines() if NO_HELPER in x)
        return (
            "codex's own sandbox could not start, so none of its commands could run: "
            f"{shorten(line)}"
        )
    if p.failure is not None:
        return f"model API error: {p.failure}"
    if exit_code != 0:
        return f"codex exited {exit_code}: {shorten(stderr_tail or p.last_error or '(no output)')}"
    if not p.turn_completed:
        why = p.last_error or "no turn.completed event"
        return f"codex stopped before finishing its turn: {shorten(why)}"
    return None


def _read_answer(path: Path) -> str | None:
    """The last message codex wrote; None when missing, unreadable or not a plain file of
    its own (a link to a server's file is never read: see `taskyard.agents.outfiles`)."""
    try:
        raw = read_output(path.parent, path.name)
        text = raw.decode("utf-8") if raw is not None else ""
    except (OSError, UnicodeDecodeError, AgentOutputRefused) as exc:
        log.warning("codex's last message not read: %s", exc)
        return None
    return text if text.strip() else None
