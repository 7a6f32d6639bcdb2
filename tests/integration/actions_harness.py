"""The executor wired like `taskyard serve` wires it (actions, tools and, when asked,
approvals) on one store, with a command agent that proposes a fixed result, and the real
GitHub writer pointed at the recording GitHub server (tests/platform_servers.py)."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from taskyard.actions.build import action_service
from taskyard.approvals.channels.build import build_channels
from taskyard.approvals.service import Approvals
from taskyard.config import Settings, load_settings
from taskyard.models import Event, Priority, Task, TaskStatus, new_id
from taskyard.platforms import Platforms
from taskyard.platforms.clients import writers_from_settings
from taskyard.platforms.writes import PlatformWriter
from taskyard.run.executor import TaskExecutor
from taskyard.run.taskspec import ContextGatherer, TaskSpec
from taskyard.run.workspace import Workspaces
from taskyard.store.base import NewEvent, Store
from taskyard.tools.actions import tools_for
from tests.platform_servers import PlatformServer, Reply, github_server

__all__ = ["PlatformServer", "Reply"]

SHARED = Path(__file__).resolve().parents[3] / "shared" / "webhooks"
TOKEN = "ghp_ACTIONStokenTHATmustNEVERleak0123456789"
MODEL_KEY = "sk-model-key-for-the-agent-only"
REPO = "Codertocat/Hello-World"  # the sample payload's repository and issue
NUMBER = 1
LABELS = {"type": "add_labels", "params": {"labels": ["bug"]}, "reasoning": "it is a bug"}
COMMENT = {"type": "comment", "params": {"body": "Thanks, looking."}, "reasoning": "ack"}


def result(*actions: dict[str, Any], summary: str = "Labelled it.") -> dict[str, Any]:
    return {"success": True, "actions": list(actions), "analysis": "a bug", "summary": summary}


def agent_writing(res: dict[str, Any]) -> list[str]:
    """A command agent that dumps its environment and writes `res` as its result."""
    script = (
        "import json, os, pathlib; out = pathlib.Path(os.environ['OUTPUT_DIR']); "
        "(out / 'env.json').write_text(json.dumps(dict(os.environ))); "
        f"(out / 'result.json').write_text(json.dumps({res!r}))"
    )
    return [sys.executable, "-c", script]


@pytest.fixture
def gh() -> Iterator[PlatformServer]:
    with github_server() as server:
        yield server


@pytest.fixture
async def yards() -> AsyncIterator[Callable[..., Yard]]:
    made: list[Yard] = []

    def make(settings: Settings, store: Store, wrap: Any = None, **kw: Any) -> Yard:
        made.append(Yard(settings, store, wrap, **kw))
        return made[-1]

    yield make
    for yard in made:
        await yard.aclose()


def settings_for(
    tmp_path: Path, gh: PlatformServer, res: dict[str, Any], token: bool = True, **extra: Any
) -> Settings:
    data: dict[str, Any] = {
        "home": str(tmp_path / "home"),
        "agents": {"a": {"kind": "command", "argv": agent_writing(res), "api_key": MODEL_KEY}},
        "routes": [{"name": "r", "on": ["github:issues.opened"], "agent": "a"}],
        "runs": {"kill_grace_seconds": 0.5, "keep_workspaces": True},
        "platforms": {
            "github": {"base_url": gh.base_url},
            "backoff_seconds": 0.01,
            "rate_limit_max_wait_seconds": 5,
        },
        "actions": {"allow": {"r": ["add_labels", "comment", "review"]}},
        **extra,
    }
    path = tmp_path / "taskyard.yaml"
    tmp_path.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return load_settings(path, {"TASKYARD_GITHUB_TOKEN": TOKEN} if token else {})


class Yard:
    """An executor wired like `taskyard serve` wires it, on one store."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        wrap: Any = None,
        approvals: bool = False,
        clock: Callable[[], float] = time.time,
        channels: bool = False,
    ) -> None:
        self.settings = settings
        self.store = store
        self.platforms = Platforms.from_settings(settings.platforms)
        writers: dict[str, PlatformWriter] = dict(writers_from_settings(settings.platforms))
        if wrap is not None:
            writers = {name: wrap(w) for name, w in writers.items()}
        self.writers = writers
        # Approvals as `taskyard serve` builds them (off unless asked: most tests here are
        # about applying, not gating).
        self.approvals = (
            Approvals.from_settings(settings, store, clock=clock) if approvals else None
        )
        if self.approvals is not None and channels:  # announce where `serve` would
            policies = self.approvals.gate.policies
            self.approvals.post_to(build_channels(settings, writers, self.platforms, policies))
        self.executor = TaskExecutor(
            settings,
            store,
            Workspaces.from_settings(settings, os.environ),
            ContextGatherer(self.platforms, 5),
            {"PATH": os.environ["PATH"]},
            "worker-1",
            actions=action_service(
                settings,
                store,
                self.platforms,
                writers,
                risk_policy=self.approvals.policy if self.approvals else None,
                gate=self.approvals.gate if self.approvals else None,
            ),
            tools_for=tools_for(self.platforms),
        )

    def queue_task(self) -> Task:
        body = (SHARED / "github" / "issues.opened.json").read_bytes()
        now = time.time()
        eid = new_id()
        event = Event(eid, "github", "github:issues.opened", eid, f"{REPO}#{NUMBER}", "octocat",
                      now, Priority.P2, {}, body, eid)  # fmt: skip
        self.store.insert_events([NewEvent(event, eid, now + 60)], now)
        task = Task(new_id(), event.id, "r", "a", TaskStatus.QUEUED, Priority.P2, now, now,
                    "wf", TaskSpec("r", "a", "default").to_json())  # fmt: skip
        self.store.record_routing([], [task])
        return task

    async def aclose(self) -> None:
        await self.platforms.aclose()
        for writer in self.writers.values():
            close = getattr(writer, "aclose", None)
            if close is not None:
                await close()

    def actions(self, task_id: str) -> dict[int, Any]:
        return {a.index: a for a in self.store.actions_of(task_id)}


def posts(gh: PlatformServer, suffix: str) -> list[Any]:
    return [r for r in gh.requests if r.method == "POST" and r.path.endswith(suffix)]


ISSUE = f"/repos/{REPO}/issues/{NUMBER}"
