"""An in-process taskyard HTTP app on a real store, and deliveries signed as each platform does."""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from taskyard.config import Settings
from taskyard.intake import make_adapter
from taskyard.intake.app import IntakeApp
from taskyard.intake.discord import public_key_hex
from taskyard.intake.writer import EventWriter
from taskyard.observe.metrics import Metrics
from taskyard.store import SQLStore
from taskyard.web.app import build_app

SECRETS = {
    "github": "gh-secret-1",
    "linear": "lin_wh_secret",
    "slack": "8f742231b10e8888abcd99yyyzzz85a5",
    "sentry": "sentry-client-secret",
}
DISCORD_SEED = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
GENERIC_SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


def signing_secret(source: str) -> str:
    if source == "discord":
        return DISCORD_SEED
    if source.startswith("generic:"):
        return GENERIC_SECRET
    return SECRETS[source]


def settings_for(home: Path, store_url: str, **overrides: Any) -> Settings:
    sources: dict[str, Any] = {name: {"secrets": [s]} for name, s in SECRETS.items()}
    sources["discord"] = {"secrets": [public_key_hex(DISCORD_SEED)]}
    data: dict[str, Any] = {
        "home": home,
        "database_url": store_url,
        "sources": sources,
        "generic": {"billing": {"secrets": [GENERIC_SECRET]}},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            for inner, v in value.items():
                merged = dict(data[key].get(inner) or {})
                merged.update(v)
                data[key][inner] = merged
        else:
            data[key] = value
    return Settings.model_validate(data)


@dataclass
class Harness:
    settings: Settings
    store: SQLStore
    metrics: Metrics
    client: httpx.AsyncClient

    def signed(
        self,
        source: str,
        body: bytes,
        headers: Mapping[str, str] | None = None,
        now: float | None = None,
    ) -> tuple[bytes, dict[str, str]]:
        signed = make_adapter(source).sign(
            signing_secret(source), body, time.time() if now is None else now, headers or {}
        )
        return signed.body, signed.headers

    async def deliver(
        self,
        source: str,
        body: bytes,
        headers: Mapping[str, str] | None = None,
        now: float | None = None,
    ) -> tuple[httpx.Response, bytes, dict[str, str]]:
        sent, sent_headers = self.signed(source, body, headers, now)
        return await self.post(source, sent, sent_headers), sent, sent_headers

    async def post(self, source: str, body: Any, headers: Mapping[str, str]) -> httpx.Response:
        path = "generic/" + source.split(":", 1)[1] if source.startswith("generic:") else source
        return await self.client.post(f"/webhooks/{path}", content=body, headers=dict(headers))

    def count(self) -> int:
        return sum(self.store.count_events().values())

    def metric(self, source: str, outcome: str) -> float:
        value = self.metrics.registry.get_sample_value(
            "taskyard_webhooks_received_total", {"source": source, "outcome": outcome}
        )
        return value or 0.0


@asynccontextmanager
async def running_intake(home: Path, store_url: str, **overrides: Any) -> AsyncIterator[Harness]:
    settings = settings_for(home, store_url, **overrides)
    store = SQLStore.open(store_url)
    store.migrate()
    metrics = Metrics()
    metrics.watch_queue(store.count_events)
    writer = EventWriter(store)
    await writer.start()
    app = build_app(store, metrics, IntakeApp(settings, writer, metrics))
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://taskyard") as client:
            yield Harness(settings, store, metrics, client)
    finally:
        await writer.stop()
        store.close()
