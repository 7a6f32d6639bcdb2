"""What a task's tools are: the handler interface the MCP bridge serves.

A `ToolHandler` lives in the worker process, next to the platform clients and the action
policy; it lists its tools and answers calls. The agent reaches it only through
`taskyard.tools.bridge.ToolBridge` (a unix socket in the task directory) and the stdio MCP
server (`taskyard.tools.mcp_stdio`) its CLI starts, so it never holds a token.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

NOT_ALLOWED = "not allowed: "


@dataclass(frozen=True, slots=True)
class McpLaunch:
    """How the agent CLI starts taskyard's per-task MCP server as a stdio subprocess (see
    `taskyard.tools.mcp_stdio`). `env` is the server's whole environment: never a token."""

    command: str
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    tools: tuple[str, ...] = ()  # the tool names, for allowlists (claude's --allowedTools)
    name: str = "taskyard"  # the server's name in the agent's config

    def argv(self) -> tuple[str, ...]:
        return (self.command, *self.args)


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """One tool as the agent sees it. `input_schema` is a JSON Schema object."""

    name: str
    description: str
    input_schema: Mapping[str, Any] = field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "input_schema": dict(self.input_schema),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ToolSpec:
        return cls(str(data["name"]), str(data["description"]), dict(data["input_schema"]))


@dataclass(frozen=True, slots=True)
class ToolAnswer:
    """What the agent is told: the outcome in words, and optional structured data."""

    ok: bool
    text: str
    data: Mapping[str, Any] | None = None

    @classmethod
    def refused(cls, why: str) -> ToolAnswer:
        """A call policy refused: the agent reads "not allowed: <why>"."""
        return cls(False, NOT_ALLOWED + why)

    def to_json(self) -> dict[str, Any]:
        data = dict(self.data) if self.data is not None else None
        return {"ok": self.ok, "text": self.text, "data": data}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ToolAnswer:
        extra = data.get("data")
        return cls(bool(data["ok"]), str(data["text"]), extra if isinstance(extra, dict) else None)


class ToolHandler(Protocol):
    """The tools of one task. `call` gets arguments already valid for the tool's schema and
    answers; it raises only on a bug (the bridge then answers "tool failed")."""

    def tools(self) -> list[ToolSpec]: ...

    async def call(self, name: str, arguments: dict[str, Any]) -> ToolAnswer: ...
