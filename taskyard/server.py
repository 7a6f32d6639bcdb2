"""Putting the parts together: `serve` (intake + dispatcher + workers) and `worker` (workers)."""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import uvicorn

from taskyard.config import Settings
from taskyard.exceptions import ConfigError
from taskyard.intake.app import IntakeApp
from taskyard.intake.writer import EventWriter
from taskyard.observe import Metrics
from taskyard.queue.dispatcher import Dispatcher
from taskyard.queue.durable import DurableQueue, system_database_url
from taskyard.queue.identity import claim_executor_id
from taskyard.queue.jobs import ROUTE_JOB, Handler, JobRuntime
from taskyard.routing import route_event
from taskyard.store import SQLStore, Store
from taskyard.store.backends import redact_url
from taskyard.web.app import build_app

log = logging.getLogger(__name__)


def load_handlers(settings: Settings) -> dict[str, Handler]:
    """The job handlers: routing by default; `handlers:` in config may name others."""
    handlers: dict[str, Handler] = {ROUTE_JOB: route_event}
    for job, target in settings.handlers.items():
        module, _, name = target.partition(":")
        try:
            handlers[job] = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"handler {job!r}: cannot load {target!r}: {exc}") from exc
    return handlers


def open_migrated_store(settings: Settings) -> Store:
    settings.home.mkdir(parents=True, exist_ok=True)
    store = SQLStore.open(settings.store_url)
    applied = store.migrate()
    if applied:
        log.info("migrations applied", extra={"versions": applied})
    return store


@dataclass
class Services:
    store: Store
    metrics: Metrics
    dispatcher: Dispatcher
    queue: DurableQueue
    writer: EventWriter | None


@asynccontextmanager
async def running(settings: Settings, role: str, intake: bool) -> AsyncIterator[Services]:
    store = await asyncio.to_thread(open_migrated_store, settings)
    executor = claim_executor_id(settings.home, role, settings.worker_id)
    metrics = Metrics()
    metrics.watch_queue(store.count_events)
    runtime = JobRuntime(store, load_handlers(settings), settings.queue.retry)
    runtime.on_outcome.append(metrics.job_finished)
    queue = DurableQueue(
        runtime,
        system_database_url(settings.store_url, str((settings.home / "queue.db").resolve())),
        executor.value,
        settings.queue.concurrency,
        settings.queue.polling_interval_sec,
    )
    await asyncio.to_thread(
        store.register_worker, executor.value, role, socket.gethostname(), os.getpid(), time.time()
    )
    await queue.start()
    dispatcher = Dispatcher(store, queue, settings.queue, executor.value)
    await dispatcher.start()
    writer = None
    if intake:
        writer = EventWriter(store, settings.intake.write_batch_max, on_commit=dispatcher.notify)
        await writer.start()
    log.info(
        "taskyard running",
        extra={
            "role": role,
            "executor_id": executor.value,
            "database": redact_url(settings.store_url),
        },
    )
    try:
        yield Services(store, metrics, dispatcher, queue, writer)
    finally:
        if writer is not None:
            await writer.stop()
        await dispatcher.stop()
        await queue.stop()
        store.close()
        executor.release()


async def serve(settings: Settings, verify_only: bool = False) -> None:
    async with running(settings, "serve", intake=True) as services:
        intake = IntakeApp(settings, services.writer, services.metrics, verify_only=verify_only)
        app = build_app(services.store, services.metrics, intake)
        config = uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            access_log=False,
            log_config=None,
            lifespan="off",
            http="auto",
            timeout_graceful_shutdown=5,
        )
        enabled = sorted(s.name for s in intake.sources.values())
        log.info(
            "listening", extra={"host": settings.host, "port": settings.port, "sources": enabled}
        )
        await uvicorn.Server(config).serve()


async def work(settings: Settings) -> None:
    async with running(settings, "worker", intake=False):
        await _forever()


async def _forever() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    import signal

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def run(coro: Any) -> None:
    try:
        import uvloop
    except ImportError:
        asyncio.run(coro)
    else:
        uvloop.run(coro)
