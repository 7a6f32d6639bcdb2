"""Small pieces the agent CLI adapters (codex, claude) share: finding the binary, the shape of
its launch, reading JSON lines and answers, pricing tokens."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from taskyard.agents.base import AgentRequest, Launch
from taskyard.config import AgentConfig
from taskyard.exceptions import ConfigError

# (input tokens, of them cached, output tokens) → USD, or None when the agent has no price.
Pricing = Callable[[int, int, int], float | None]

_FENCE = re.compile(r"^\s*```(?:json)?\s*\n(.*)\n\s*```\s*$", re.DOTALL)


def resolve_binary(config: AgentConfig, default: str, env: Mapping[str, str]) -> str:
    """The agent's executable: `config.binary` (or `default`) as a path, or looked up on the
    PATH the agent will run with."""
    name = config.binary or default
    if os.sep in name:
        if os.access(name, os.X_OK) and Path(name).is_file():
            return str(Path(name).resolve())
        raise ConfigError(f"{config.kind} binary {name!r} is not an executable file")
    search = env.get("PATH", "")
    found = shutil.which(name, path=search)
    if found is None:
        raise ConfigError(
            f"{config.kind} binary {name!r} not found on PATH={search!r}; "
            "install it or set the agent's `binary` to its path"
        )
    return found


def install_dirs(binary: str) -> tuple[Path, ...]:
    """What an agent CLI needs to read besides its executable, for taskyard's sandbox: an npm
    install's scope directory (`node_modules/@openai` holds both `codex` and the platform
    package its launcher execs), else the directory of the resolved executable."""
    real = Path(binary).resolve()
    parts = real.parts
    if "node_modules" in parts[:-2]:
        top = len(parts) - 1 - parts[::-1].index("node_modules")  # the innermost one
        return (Path(*parts[: top + 2]),)  # node_modules/@scope, or node_modules/package
    return (real.parent,)


def cli_launch(
    request: AgentRequest,
    argv: list[str],
    env: Mapping[str, str],
    files: Mapping[Path, str],
    *,
    binary: str,
    model_url: str,
) -> Launch:
    """An agent CLI's launch: run in the workspace with the prompt on stdin; in taskyard's
    sandbox it reaches only its model provider (`model_url`) and reads, besides the task's
    own paths, only its install (`install_dirs`)."""
    return Launch(
        tuple(argv),
        env,
        request.workspace,
        request.prompt_file,
        files,
        egress=(model_url,),
        read_only=install_dirs(binary),
    )


def price(config: AgentConfig, input_tokens: int, cached: int, output: int) -> float | None:
    """USD from the configured prices per million tokens; None unless input and output
    prices are set. Cached input costs the cached price (default: the input price)."""
    if config.input_usd_per_mtok is None or config.output_usd_per_mtok is None:
        return None
    cached_price = config.cached_input_usd_per_mtok
    if cached_price is None:
        cached_price = config.input_usd_per_mtok
    fresh = max(input_tokens - cached, 0)
    total = (
        fresh * config.input_usd_per_mtok
        + cached * cached_price
        + output * config.output_usd_per_mtok
    )
    return round(total / 1_000_000, 6)


def pricing_of(config: AgentConfig) -> Pricing:
    """The agent's prices as a function of its token counts (see `price`)."""
    return lambda input_tokens, cached, output: price(config, input_tokens, cached, output)


def json_line(line: str) -> dict[str, Any] | None:
    """One JSONL line as a mapping, or None if it is not one (or nests too deep to parse:
    a model can answer `[[[…]]]` thousands of levels deep)."""
    try:
        value = json.loads(line)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def json_object(text: str | None) -> dict[str, Any] | None:
    """The JSON object an answer holds (bare, or in one ```json fence), or None."""
    if not text or not text.strip():
        return None
    fenced = _FENCE.match(text)
    return json_line(fenced.group(1) if fenced else text.strip())


def shorten(text: str, limit: int = 300) -> str:
    """One line, at most `limit` characters, for error messages."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def as_int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
