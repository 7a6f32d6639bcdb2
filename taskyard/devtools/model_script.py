"""What the scripted model says, turn by turn: the script format and its loader.

A script file (YAML or JSON) lists conversations the fake model can hold::

    scripts:
      - name: pr-review            # for logs (default: "script N")
        match: "pr-review"         # optional: a substring of the prompt (the text of the
                                   # conversation's user messages); the first script that
                                   # matches wins; a script without `match` matches anything
        usage: {input_tokens: 120, output_tokens: 40}   # optional, reported for every turn
        turns:
          - shell: "git -C repo log --oneline | head -3"  # the model runs a shell command
          - final: {success: true, actions: [], analysis: "…", summary: "…"}

Turn kinds, one key per turn:

- `shell: COMMAND` — the model calls its shell tool (codex: `exec_command`; claude: `Bash`)
  with this command, and reads the output on the next turn.
- `tool: {name: add_labels, arguments: {labels: [bug]}, server: taskyard}` — the model calls
  a tool of an MCP server (`server` defaults to `taskyard`; `arguments` to `{}`): codex gets a
  `function_call` in the namespace `mcp__<server>`, claude a `tool_use` of
  `mcp__<server>__<name>`. The tool's answer comes back on the next turn.
- `final: MAPPING | STRING` — the model's final answer. A mapping is the structured result:
  codex gets it as the JSON text of the final message (`--output-schema`), claude through its
  `StructuredOutput` tool (`--json-schema`; the server ends the turn afterwards by itself). A
  string is a plain text answer.
- `error: {status: 500, message: "overloaded"}` — the HTTP request fails with this status.
- `hang: true` — the request is accepted and never answered, until the client goes away
  (or the server stops: then it gets a 503).

Turns are chosen without server-side state: the turn number of a request is the number of
model turns already in the conversation it sends (function calls for codex, assistant messages
for claude), so any number of agents can follow the same script at the same time. For the same
reason an `error` or `hang` turn repeats when the client retries: the conversation has not
advanced. Past the last turn the model answers "script exhausted" (and the server logs it).

`usage` defaults to 100 input and 20 output tokens per turn, so runs always report usage.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from taskyard.exceptions import ConfigError

EXHAUSTED = "script exhausted"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TurnKind(enum.StrEnum):
    SHELL = "shell"
    TOOL = "tool"
    FINAL = "final"
    ERROR = "error"
    HANG = "hang"


class ScriptedError(_Frozen):
    status: int = Field(default=500, ge=400, le=599)
    message: str = "scripted error"


class ScriptedTool(_Frozen):
    """A call of an MCP tool."""

    name: str = Field(min_length=1)
    arguments: dict[str, Any] = Field(default_factory=dict)
    server: str = Field(default="taskyard", min_length=1)


class ScriptedUsage(_Frozen):
    input_tokens: int = Field(default=100, ge=0)
    cached_input_tokens: int = Field(default=0, ge=0)
    output_tokens: int = Field(default=20, ge=0)


class Turn(_Frozen):
    """One model turn. Exactly one of the fields is given."""

    shell: str | None = None
    tool: ScriptedTool | None = None
    final: dict[str, Any] | str | None = None
    error: ScriptedError | None = None
    hang: bool | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Turn:
        given = [name for name in self.model_fields_set if getattr(self, name) is not None]
        if len(given) != 1:
            kinds = ", ".join(k.value for k in TurnKind)
            raise ValueError(f"a turn needs exactly one of {kinds}; got {sorted(given) or 'none'}")
        if self.hang is False:
            raise ValueError("hang: only `hang: true` is a turn")
        return self

    @property
    def kind(self) -> TurnKind:
        return next(
            TurnKind(name) for name in self.model_fields_set if getattr(self, name) is not None
        )

    def final_text(self) -> str:
        """The final answer as message text: JSON for a mapping."""
        if isinstance(self.final, dict):
            return json.dumps(self.final, ensure_ascii=False)
        return self.final or ""


class Conversation(_Frozen):
    """One scripted conversation."""

    name: str = ""
    match: str | None = None
    usage: ScriptedUsage = ScriptedUsage()
    turns: tuple[Turn, ...] = Field(min_length=1)

    def matches(self, prompt: str) -> bool:
        return self.match is None or self.match in prompt

    def turn(self, index: int) -> Turn | None:
        """The turn at `index`, or None past the last one."""
        return self.turns[index] if 0 <= index < len(self.turns) else None


class Script(_Frozen):
    scripts: tuple[Conversation, ...] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _default_names(cls, data: Any) -> Any:
        if not isinstance(data, Mapping) or not isinstance(data.get("scripts"), list):
            return data
        named = [
            {**c, "name": c.get("name") or f"script {i + 1}"} if isinstance(c, Mapping) else c
            for i, c in enumerate(data["scripts"])
        ]
        return {**data, "scripts": named}

    def pick(self, prompt: str) -> Conversation | None:
        """The first conversation whose `match` is in the prompt."""
        return next((c for c in self.scripts if c.matches(prompt)), None)


def parse_script(data: Any, origin: str = "script") -> Script:
    """A script from already-parsed data (a mapping with `scripts`)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{origin}: a model script must be a mapping with a `scripts` list")
    try:
        return Script.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{origin}: invalid model script: {exc}") from exc


def load_script(path: Path | str) -> Script:
    """Read a script file (YAML, or JSON, which YAML also reads)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read model script {path}: {exc}") from exc
    return parse_script(data, str(path))


def as_script(source: Script | Mapping[str, Any] | Path | str) -> Script:
    """A script given as a Script, parsed data or a file path."""
    if isinstance(source, Script):
        return source
    if isinstance(source, Mapping):
        return parse_script(source)
    return load_script(source)
