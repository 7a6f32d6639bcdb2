"""Agent runners: one adapter per agent CLI (`command`, `codex`, `claude`), one supervisor."""

from __future__ import annotations

import importlib

from taskyard.agents.base import AgentAdapter
from taskyard.config import AgentConfig
from taskyard.exceptions import ConfigError

__all__ = ["ADAPTERS", "build_adapter"]

# kind → "module:Class"; each class is built with its AgentConfig.
ADAPTERS: dict[str, str] = {
    "command": "taskyard.agents.command:CommandAdapter",
    "codex": "taskyard.agents.codex:CodexAdapter",
    "claude": "taskyard.agents.claude:ClaudeAdapter",
}


def build_adapter(config: AgentConfig) -> AgentAdapter:
    try:
        target = ADAPTERS[config.kind]
    except KeyError:
        raise ConfigError(
            f"unknown agent kind {config.kind!r}; known: {', '.join(sorted(ADAPTERS))}"
        ) from None
    module, _, name = target.partition(":")
    cls = getattr(importlib.import_module(module), name)
    adapter: AgentAdapter = cls(config)
    return adapter
