"""The agent runner interface: one adapter per agent CLI, one supervisor for all of them.

An adapter is pure: it says how to launch its CLI for a task (`launch`) and how to read what
the CLI prints (`new_parser`, `outcome`). The supervisor (`taskyard.agents.supervisor`) does
everything with processes: writes the adapter's files, spawns the argv in its own process
group with a parent-death signal and resource limits, streams stdout lines into
`outputs/log.jsonl`, counts tool calls, enforces the timeout and the tool-call budget, and
asks the adapter for the outcome once the process has exited.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from taskyard.tools.base import McpLaunch


@dataclass(frozen=True, slots=True)
class AgentRequest:
    """Everything an adapter needs to launch one run of one task."""

    task_id: str
    task_dir: Path  # <root>/task-<id>
    workspace: Path  # <root>/task-<id>/workspace: the agent's cwd (repo/ inside when needed)
    context_dir: Path  # <root>/task-<id>/context
    output_dir: Path  # <root>/task-<id>/outputs
    prompt_file: Path  # <root>/task-<id>/prompts/<name>.md
    result_schema: Mapping[str, Any]  # JSON Schema the result must satisfy
    timeout_seconds: float = 300.0
    max_tool_calls: int = 50
    # The environment the supervisor starts from (PATH, LANG, …, already allowlisted) plus
    # CONTEXT_DIR, OUTPUT_DIR, TASK_ID, PROMPT_FILE. Never platform tokens or taskyard secrets.
    base_env: Mapping[str, str] = field(default_factory=dict)
    # taskyard's MCP server for this run (tools for actions and reads), if it offers one.
    mcp: McpLaunch | None = None
    # True when taskyard's own sandbox wraps the run (`taskyard.agents.sandbox`): an adapter
    # then turns its CLI's own sandbox off (nested, it fails or adds nothing); False, the CLI
    # keeps its own sandbox, made to work.
    sandboxed: bool = False
    # The session of an earlier run to continue (its `AgentOutcome.session_id`): the agent
    # starts from that conversation instead of a new one. Its files must be in this task's
    # config home first (`AgentAdapter.carry_session`). Agents without sessions ignore it.
    resume_session: str | None = None
    # True: the run's logs go on after an earlier run's of the same attempt (a change task's
    # gates), instead of starting over.
    append_logs: bool = False
    # What that session had used before this run, when the agent reports a session's total
    # rather than a run's (codex): set by `carry_session`, taken off the run's usage.
    resumed_usage: Usage | None = None


@dataclass(frozen=True, slots=True)
class Launch:
    """How to start the agent: the supervisor writes `files`, then runs `argv` in `cwd` with
    exactly `env`, feeding `stdin_file` (if any) on standard input."""

    argv: tuple[str, ...]
    env: Mapping[str, str]
    cwd: Path
    stdin_file: Path | None = None
    files: Mapping[Path, str] = field(default_factory=dict)
    # For taskyard's sandbox (`taskyard.agents.sandbox`): URLs the agent must reach (its
    # model provider; `*_BASE_URL` values of `env` are added), and paths it must read (the
    # CLI's install dirs). Everything else stays outside the box.
    egress: tuple[str, ...] = ()
    read_only: tuple[Path, ...] = ()


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float | None = None
    # Tool calls that failed: a command's non-zero exit or failed start, an MCP tool's error,
    # a denied permission. A refusal by taskyard's action policy ("not allowed: …") is an
    # answer, not a failure.
    tool_errors: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "input_tokens": self.input_tokens,
            "cached_input_tokens": self.cached_input_tokens,
            "output_tokens": self.output_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "cost_usd": self.cost_usd,
            "tool_errors": self.tool_errors,
        }


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """What one line of the agent's stdout meant to taskyard."""

    kind: str  # "tool_call" | "message" | "usage" | "error" | "other"
    detail: str = ""


class StreamParser(abc.ABC):
    """Reads the agent's stdout line by line, for one run. Keeps what `outcome` needs."""

    @abc.abstractmethod
    def feed(self, line: str) -> list[StreamEvent]:
        """Interpret one line (without its newline). Never raises on odd input."""

    def usage_so_far(self) -> Usage | None:
        """What the run has used up to the last line fed, with its cost when the stream
        tells it or the agent's prices give it; None while the stream has said nothing about
        usage. The supervisor reads it for the per-task cost ceiling, and for the usage of a
        run it stopped."""
        return None


@dataclass(frozen=True, slots=True)
class AgentOutcome:
    """How the run ended, by the agent's own account (not the exit code alone)."""

    success: bool
    result: Mapping[str, Any] | None  # the structured result, if the agent gave one
    error: str | None  # why it failed, in words a person can act on
    usage: Usage = Usage()
    tool_calls: int = 0
    session_id: str | None = None  # the agent's session (codex thread), for a later resume


def flag_failed_tools(outcome: AgentOutcome, first_error: str | None) -> AgentOutcome:
    """A run that used tools and saw every one of them fail fails, whatever it answered: the
    sign of a broken environment (commands that cannot start, a sandbox refusing everything),
    never something to pass silently. The reason counts them and quotes the first error."""
    calls, errors = outcome.tool_calls, outcome.usage.tool_errors
    if not outcome.success or calls == 0 or errors < calls:
        return outcome
    why = f"every tool call failed ({errors} of {calls})"
    return replace(outcome, success=False, error=f"{why}: {first_error}" if first_error else why)


class AgentAdapter(abc.ABC):
    """One agent CLI. Adapters are looked up by `kind` in `taskyard.agents.ADAPTERS`."""

    kind: str = ""

    @abc.abstractmethod
    def launch(self, request: AgentRequest) -> Launch: ...

    @abc.abstractmethod
    def new_parser(self) -> StreamParser: ...

    @abc.abstractmethod
    def outcome(
        self, request: AgentRequest, parser: StreamParser, exit_code: int, stderr_tail: str
    ) -> AgentOutcome:
        """Called once the process has exited on its own (not killed by the supervisor).
        Reads `outputs/result.json` or the agent's structured output; does not validate it
        against the schema (the caller does)."""

    def session_files(self, task_dir: Path) -> Path | None:
        """Where the agent keeps its sessions for the task at `task_dir` (in the task's config
        home), or None: it keeps none, and ignores `AgentRequest.resume_session`."""
        return None

    def carry_session(self, earlier_task_dir: Path, request: AgentRequest) -> AgentRequest:
        """Makes `request.resume_session`, a session of the task at `earlier_task_dir`,
        resumable in `request`'s task: its files copied into the new task's config home,
        before the run. Returns the request to run: without `resume_session` when that
        session cannot be resumed (no files, or refused), so the run starts a new one."""
        return request
