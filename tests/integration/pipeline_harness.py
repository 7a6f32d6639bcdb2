"""A whole taskyard, wired as `taskyard serve` wires it (`server.running` + the HTTP app), on a
temporary home, with command agents and the recording GitHub server; deliveries signed as
GitHub signs them, `/metrics` scraped and parsed."""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from taskyard.config import Settings, load_settings
from taskyard.intake import make_adapter
from taskyard.intake.app import IntakeApp
from taskyard.models import Task
from taskyard.observe.tracing import Tracing
from taskyard.service.server import Services, running
from taskyard.store.base import TaskFilter
from taskyard.web.app import build_app
from tests.platform_servers import (
    PlatformServer,
    Recorded,
    Reply,
    github_example,
    github_operation,
    github_problems,
)

SHARED = Path(__file__).resolve().parents[3] / "shared" / "webhooks" / "github"
WEBHOOK_SECRET = "whs-pipeline-metrics-secret-7781"
TOKEN = "ghp_PIPELINEtokenTHATmustNEVERleak0123456"
MODEL_KEY = "sk-pipeline-model-key-never-logged-42"
REPO = "Codertocat/Hello-World"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def closing(reply: Reply) -> Reply:
    """`reply`, telling the client to close the connection after it."""
    return replace(reply, headers={**reply.headers, "connection": "close"})


def _github_answer(server: PlatformServer, request: Recorded) -> Reply:
    found = github_operation(request.method, request.path)
    return closing(
        Reply(404, {"message": "Not Found"}) if found is None else github_example(found[1])
    )


@pytest.fixture
def github() -> Iterator[PlatformServer]:
    """The recording GitHub server (tests/platform_servers.py), closing every connection
    after its answer. The platform clients' pooled connections belong to the durable queue's
    event loop (DBOS runs the jobs on its own), which is gone when `running` closes the
    clients; an open one would make that close fail ("Event loop is closed")."""
    server = PlatformServer(_github_answer, check=github_problems)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def delivery(name: str) -> dict[str, Any]:
    """One of GitHub's sample deliveries (shared/webhooks/github/<name>.json)."""
    return dict(json.loads((SHARED / f"{name}.json").read_text()))


def agent_script(result: Mapping[str, Any], usage: Mapping[str, Any] | None = None) -> list[str]:
    """A command agent that reports `usage` on its stream and writes `result`."""
    lines = []
    if usage is not None:
        lines.append(f"print(json.dumps({dict(usage, type='usage')!r}), flush=True)")
    lines.append(
        "pathlib.Path(os.environ['OUTPUT_DIR'], 'result.json')"
        f".write_text(json.dumps({dict(result)!r}))"
    )
    return [sys.executable, "-c", "import json, os, pathlib\n" + "\n".join(lines)]


def failing_agent(flag: Path, code: int = 3) -> list[str]:
    """A command agent that waits for `flag` to exist, says its key on stderr (a leak the
    logs must redact) and exits `code`."""
    script = (
        "import os, pathlib, sys, time\n"
        f"flag = pathlib.Path({str(flag)!r})\n"
        "while not flag.exists():\n"
        "    time.sleep(0.02)\n"
        "sys.stderr.write('gave up; key ' + os.environ.get('AGENT_API_KEY', ''))\n"
        f"sys.exit({code})\n"
    )
    return [sys.executable, "-c", script]


def settings_for(home: Path, github_url: str, token: bool = True, **data: Any) -> Settings:
    config: dict[str, Any] = {
        "home": str(home),
        "sources": {"github": {"secrets": [WEBHOOK_SECRET]}},
        "queue": {"polling_interval_sec": 0.05},
        "runs": {"kill_grace_seconds": 0.5, "keep_workspaces": True},
        "platforms": {
            "github": {"base_url": github_url},
            "backoff_seconds": 0.01,
            "rate_limit_max_wait_seconds": 10,
        },
        "metrics": {"workspace_disk_seconds": 0},
        **data,
    }
    home.mkdir(parents=True, exist_ok=True)
    path = home / "taskyard.yaml"
    path.write_text(json.dumps(config))
    return load_settings(path, {"TASKYARD_GITHUB_TOKEN": TOKEN} if token else {})


@dataclass
class Yard:
    settings: Settings
    services: Services
    client: httpx.AsyncClient

    async def send(
        self,
        event: str,
        payload: Mapping[str, Any],
        delivery_id: str | None = None,
        secret: str = WEBHOOK_SECRET,
    ) -> httpx.Response:
        body = json.dumps(payload).encode()
        headers = {"x-github-event": event, "x-github-delivery": delivery_id or str(uuid.uuid4())}
        signed = make_adapter("github").sign(secret, body, time.time(), headers)
        return await self.client.post(
            "/webhooks/github", content=signed.body, headers=signed.headers
        )

    async def scrape(self) -> Samples:
        answer = await self.client.get("/metrics")
        assert answer.status_code == 200
        return parse_metrics(answer.text)

    def tasks_of(self, event_id: str) -> list[Task]:
        return self.services.store.list_tasks(TaskFilter(event_id=event_id, limit=50))

    async def until(self, check: Callable[[], bool], what: str, seconds: float = 40) -> None:
        deadline = time.monotonic() + seconds
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            await asyncio.sleep(0.05)


def parse_metrics(text: str) -> Samples:
    """Every sample of a Prometheus text exposition: (name, labels) → value."""
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(samples: Samples, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    assert key in samples, f"{name}{labels} is not exposed"
    return samples[key]


def series(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: v for (n, labels), v in samples.items() if n == name}


@asynccontextmanager
async def yard(settings: Settings, tracing: Tracing | None = None) -> AsyncIterator[Yard]:
    """`running(...)` and the app `serve` builds over it, reached in-process (ASGI)."""
    async with running(settings, "serve", intake=True, tracing=tracing) as services:
        intake = IntakeApp(settings, services.writer, services.metrics, tracing=services.tracing)
        app = build_app(services.store, services.metrics, intake, services.approvals, None)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://taskyard") as client:
            yield Yard(settings, services, client)
