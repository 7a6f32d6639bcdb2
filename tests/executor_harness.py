"""One task executor over a one-route, one-agent configuration, as the executor tests build it:
the route `r` on `github:issues.opened`, its agent `a`, a memory store unless given one."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from taskyard.config import Settings, load_settings
from taskyard.platforms import Platforms
from taskyard.run.executor import TaskExecutor
from taskyard.run.taskspec import ContextGatherer
from taskyard.run.workspace import Workspaces
from taskyard.store import MemoryStore
from taskyard.store.base import Store


def build_executor(
    tmp_path: Path,
    agent: Mapping[str, Any],
    *,
    store: Store | None = None,
    runs: Mapping[str, Any] | None = None,
    budget: Mapping[str, Any] | None = None,
    clock: Callable[[], float] = time.time,
) -> tuple[TaskExecutor, Store, Settings]:
    """`agent`: the agent's config (e.g. `{"kind": "command", "argv": [...]}`); `runs` and
    `budget`: those sections (runs' `kill_grace_seconds` is 0.5 unless given)."""
    data: dict[str, Any] = {
        "home": str(tmp_path / "home"),
        "agents": {"a": dict(agent)},
        "routes": [{"name": "r", "on": ["github:issues.opened"], "agent": "a"}],
        "runs": {"kill_grace_seconds": 0.5, **(runs or {})},
    }
    if budget is not None:
        data["budget"] = dict(budget)
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "taskyard.yaml"
    path.write_text(json.dumps(data))
    settings = load_settings(path, {})
    used = store if store is not None else MemoryStore()
    ex = TaskExecutor(
        settings,
        used,
        Workspaces.from_settings(settings, os.environ),
        ContextGatherer(Platforms.from_settings(settings.platforms), 5),
        {"PATH": os.environ["PATH"]},
        "worker-1",
        clock=clock,
    )
    return ex, used, settings
