"""Putting the parts together: `serve` (intake + dispatcher + workers) and `worker` (workers)."""

from __future__ import annotations

import asyncio
import importlib
import ipaddress
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import uvicorn

from taskyard.actions.build import action_service
from taskyard.agents.box import log_sandbox
from taskyard.approvals.channels.build import build_channels
from taskyard.approvals.service import ApprovalHooks, Approvals, Sweeper
from taskyard.config import Settings
from taskyard.exceptions import ConfigError
from taskyard.ideas.events import relay_from_settings
from taskyard.ideas.intake import IdeaIntake
from taskyard.intake.app import build_sources
from taskyard.intake.shared import SharedIntakeState
from taskyard.intake.writer import EventWriter
from taskyard.models import Task
from taskyard.observe.metrics import Metrics, redact_in_logs
from taskyard.observe.tracing import ApprovalSpans, Tracing
from taskyard.platforms import Platforms
from taskyard.platforms.clients import writers_from_settings
from taskyard.platforms.github_write import GitHubWriter
from taskyard.platforms.writes import PlatformWriter
from taskyard.queue.dispatcher import Dispatcher
from taskyard.queue.durable import DurableQueue, system_database_url
from taskyard.queue.identity import claim_executor_id
from taskyard.queue.jobs import ROUTE_JOB, Handler, JobRuntime
from taskyard.routing import PermissionLookup
from taskyard.routing.job import Pipeline
from taskyard.run.attempt import DeliverFor
from taskyard.run.delivery import Delivery, GitRemote
from taskyard.run.executor import TaskExecutor
from taskyard.run.mirrors import git_environment, url_resolver
from taskyard.run.prdelivery import PullRequestDelivery
from taskyard.run.taskspec import ContextGatherer
from taskyard.run.workspace import Workspaces
from taskyard.service.ideas import build_ideas, first_of
from taskyard.service.intake_processes import IntakePool, reserve_port
from taskyard.service.startup import (
    announce_when_started,
    base_url,
    bind_listener,
    warn_unready_routes,
)
from taskyard.store import Store
from taskyard.store.backends import redact_url
from taskyard.store.migrated import open_migrated_store
from taskyard.tools.actions import tools_for
from taskyard.util.loops import AppliedSignals, Wakeup, applied_wait, close_clients
from taskyard.util.private import QUEUE_DB, private_database
from taskyard.web.app import api_token, metrics_app, server_config, site

__all__ = ["Services", "api_token", "loopback_unless_token", "running", "serve", "work"]

log = logging.getLogger(__name__)


def load_handlers(settings: Settings, route: Handler) -> dict[str, Handler]:
    """The job handlers: routing by default; `handlers:` in config may name others."""
    handlers: dict[str, Handler] = {ROUTE_JOB: route}
    for job, target in settings.handlers.items():
        module, _, name = target.partition(":")
        try:
            handlers[job] = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"handler {job!r}: cannot load {target!r}: {exc}") from exc
    return handlers


@dataclass
class Services:
    store: Store
    metrics: Metrics
    dispatcher: Dispatcher
    queue: DurableQueue
    writer: EventWriter | None
    approvals: Approvals | None = None
    tracing: Tracing = field(default_factory=Tracing.off)


@dataclass(frozen=True)
class _Common:
    """What most parts are built with."""

    settings: Settings
    store: Store
    metrics: Metrics
    tracing: Tracing
    wakeup: Wakeup
    applied: AppliedSignals


def _permission_lookup(platforms: Platforms) -> PermissionLookup | None:
    """GitHub's collaborator permission, when a GitHub client is configured; without one,
    who-may-trigger decides from the payload's author association alone."""
    return platforms.permission_lookup() if platforms.github is not None else None


@asynccontextmanager
async def running(
    settings: Settings,
    role: str,
    intake: bool,
    metrics_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
    tracing: Tracing | None = None,
) -> AsyncIterator[Services]:
    """Everything but the HTTP server. `tracing` (tests) replaces the configured one.

    Every part is given what it needs as it is built. The dispatcher needs the queue, which
    needs the routing job and the task runs, which nudge the dispatcher: they are given the
    `Wakeup` instead, made first, which the dispatcher binds as it starts."""
    environ = environ or {}
    redact_in_logs(settings.secrets())
    own_tracing = tracing is None
    tracing = Tracing.from_settings(settings) if tracing is None else tracing
    store = await asyncio.to_thread(open_migrated_store, settings)
    executor = claim_executor_id(settings.home, role, settings.worker_id)
    wakeup = Wakeup()
    applied = AppliedSignals()
    metrics = Metrics(metrics_dir)
    platforms = Platforms.from_settings(settings.platforms, observer=metrics)
    writers = writers_from_settings(settings.platforms, observer=metrics)
    workspaces = Workspaces.from_settings(settings, environ)
    log_sandbox(settings.runs)  # which agent sandbox and task limits are in force
    metrics.watch_store(
        store.count_events,
        store.count_dead_letters,
        workspaces.disk_bytes,
        settings.metrics.workspace_disk_seconds,
    )
    swept = await workspaces.sweep_stale()
    if swept:
        log.info("stale workspaces removed", extra={"count": len(swept)})
    common = _Common(settings, store, metrics, tracing, wakeup, applied)
    approvals = _approvals(common, writers, platforms)
    prs = _pull_request_delivery(settings, store, platforms, writers, environ)
    ideas = IdeaIntake.from_settings(settings, store, writers.get("github"))
    pipeline = Pipeline(
        settings,
        _permission_lookup(platforms),
        on_tasks=wakeup.set,
        tracing=tracing,
        interceptors=[
            *([approvals.channels.intercept] if approvals and approvals.channels else []),
            ideas.intercept,  # GitHub idea issues and Discord's /idea
        ],
        on_fix_refused=prs.refused if prs else None,
    )
    idea_loop, idea_delivery = build_ideas(settings, store, writers, environ, wakeup.set)
    tasks = _tasks(
        common,
        workspaces,
        platforms,
        writers,
        approvals,
        executor.value,
        environ,
        first_of(idea_delivery, prs),
        idea_loop.task_ended,
    )
    runtime = JobRuntime(
        store,
        load_handlers(settings, pipeline.route_event),
        settings.queue.retry,
        on_outcome=[metrics.job_finished],
        run_task=tasks.run,
    )
    queue = await _queue(settings, runtime, executor.value)
    dispatcher = Dispatcher(
        store,
        queue,
        settings.queue,
        executor.value,
        task_room=tasks.room,
        claim=tasks.claim,
        release=tasks.release,
        wakeup=wakeup,
    )
    sweeper = _sweeper(common, approvals)
    relay = relay_from_settings(settings.events, store)  # ideas' events out, when configured
    writer = None
    if intake:
        writer = EventWriter(store, settings.intake.write_batch_max, on_commit=dispatcher.notify)

    await asyncio.to_thread(
        store.register_worker, executor.value, role, socket.gethostname(), os.getpid(), time.time()
    )
    await queue.start()
    await dispatcher.start()
    if sweeper is not None:
        await sweeper.start()
    if writer is not None:
        await writer.start()
    if relay is not None:
        await relay.start()
    await idea_loop.start()
    _say_running(settings, role, executor.value, writers)
    try:
        yield Services(store, metrics, dispatcher, queue, writer, approvals, tracing)
    finally:
        if sweeper is not None:
            await sweeper.stop()
        if writer is not None:
            await writer.stop()
        if relay is not None:
            await relay.stop()
        await idea_loop.stop()
        await dispatcher.stop()
        await queue.stop()
        if own_tracing:
            await asyncio.to_thread(tracing.shutdown)  # exports what is left
        await close_clients([platforms.aclose, ideas.aclose, *(w.aclose for w in writers.values())])
        store.close()
        executor.release()


def _approvals(
    common: _Common, writers: Mapping[str, PlatformWriter], platforms: Platforms
) -> Approvals | None:
    """Approvals posted on the configured channels, when on: a decision nudges the dispatcher
    (and starts its task at once), and is counted (and traced)."""
    settings, store, metrics = common.settings, common.store, common.metrics
    if not settings.approvals.enabled:
        return None
    spans = _approval_spans(common)
    hooks = ApprovalHooks(
        wake=common.wakeup.set,
        resume=common.wakeup.dispatch_now,
        on_created=[metrics.approval_created],
        on_decided=[metrics.approval_decided, *([spans.decided] if spans else [])],
        on_refused=[metrics.approval_refused],
        channels=partial(build_channels, settings, writers, platforms),
        wait_applied=applied_wait(common.applied),
    )
    approvals = Approvals.from_settings(settings, store, hooks=hooks)
    metrics.watch_approvals(lambda: store.approval_stats(time.time()))
    return approvals


def _approval_spans(common: _Common) -> ApprovalSpans | None:
    """`approval_wait` spans, while tracing is on."""
    if not common.tracing.enabled:
        return None
    store = common.store
    return ApprovalSpans(common.tracing, lambda task_id: store.get_task(task_id).event_id)


def _sweeper(common: _Common, approvals: Approvals | None) -> Sweeper | None:
    """Expiries and reminders, when approvals are on; said on the server's loop's clients."""
    if approvals is None:
        return None
    spans = _approval_spans(common)
    return Sweeper(
        common.store,
        common.settings.approvals.sweep_seconds,
        wake=common.wakeup.set,
        on_expired=[common.metrics.approval_expired, *([spans.expired] if spans else [])],
        tell=approvals.tell_apart,  # on clients of this loop's own (taskyard.util.loops)
        remind=approvals.remind_apart,
    )


def _tasks(
    common: _Common,
    workspaces: Workspaces,
    platforms: Platforms,
    writers: Mapping[str, PlatformWriter],
    approvals: Approvals | None,
    worker_id: str,
    environ: Mapping[str, str],
    deliver_for: DeliverFor | None = None,
    task_ended: Callable[[Task], None] = lambda _task: None,
) -> TaskExecutor:
    """The task runs, with their actions: a task that ends leaves room, so the dispatcher
    looks again at once."""
    settings, store, metrics, wakeup = common.settings, common.store, common.metrics, common.wakeup
    actions = action_service(
        settings,
        store,
        platforms,
        writers,
        risk_policy=approvals.policy if approvals else None,
        gate=approvals.gate if approvals else None,
        on_outcome=[metrics.action_recorded],
    )
    tasks = TaskExecutor(
        settings,
        store,
        workspaces,
        ContextGatherer(platforms, settings.platforms.context_timeout_seconds),
        environ,
        worker_id,
        actions=actions,
        tools_for=tools_for(platforms),
        tracing=common.tracing,
        # room again: look now; an idea's task ended: its scheduler looks
        on_finished=[metrics.task_finished, lambda _task: wakeup.set(), task_ended],
        on_agent_failure=[metrics.agent_failed],
        applied=common.applied,
        deliver_for=deliver_for,
    )
    metrics.routes_known((r.name, r.agent) for r in settings.routes)
    metrics.watch_tasks(store.count_tasks)
    metrics.watch_budget(tasks.budget.gauges)
    metrics.watch_agents(settings.agents, tasks.limiter.in_use_by, tasks.limiter.waiting_for)
    tasks.warm_up(settings.routes)
    return tasks


def _pull_request_delivery(
    settings: Settings,
    store: Store,
    platforms: Platforms,
    writers: Mapping[str, PlatformWriter],
    environ: Mapping[str, str],
) -> PullRequestDelivery | None:
    """Where change tasks' commits go: their pull requests, when taskyard can write to
    GitHub (else they stay in the task's worktree, and its record says so)."""
    github = writers.get("github")
    if not isinstance(github, GitHubWriter):
        return None
    remote = GitRemote(url_resolver(settings.runs), None, git_environment(environ))
    reader = platforms.github
    read_pull = (lambda repo, n: reader.pull_request(repo, n)) if reader is not None else None
    return PullRequestDelivery(Delivery(github, settings.changes, remote), read_pull, store)


async def _queue(settings: Settings, runtime: JobRuntime, executor_id: str) -> DurableQueue:
    """The durable queue (DBOS) in its own database: the store's, or a private SQLite file."""
    queue_url = system_database_url(settings.store_url, str((settings.home / QUEUE_DB).resolve()))
    if queue_url.startswith("sqlite:"):
        await asyncio.to_thread(private_database, settings.home / QUEUE_DB)  # 0600, as ours
    return DurableQueue(
        runtime,
        queue_url,
        executor_id,
        settings.queue.concurrency,
        settings.queue.polling_interval_sec,
    )


def _say_running(
    settings: Settings, role: str, executor_id: str, writers: Mapping[str, PlatformWriter]
) -> None:
    log.info(
        "taskyard running",
        extra={
            "role": role,
            "executor_id": executor_id,
            "database": redact_url(settings.store_url),
            # without write credentials, actions are recorded, never sent
            "actions_dry_run": settings.actions.dry_run_for("", settings.platforms.can_write),
            "writers": sorted(writers),
            "idea_events": _events_said(settings),
        },
    )


def _events_said(settings: Settings) -> str:
    """Where ideas' events are published, in words (never the URL: it may hold a token)."""
    events = settings.events
    if not events.nats_url:
        return "not published (events.nats_url is not set)"
    return f"published to NATS at {events.server}, stream {events.stream}"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def loopback_unless_token(settings: Settings) -> Settings:
    """Without an API token the management API (and the UI) is open: listen on loopback only,
    whatever `host` asked, and say so."""
    if api_token(settings) is not None:
        return settings
    if _is_loopback(settings.host):
        log.warning(
            "no API token (TASKYARD_API_TOKEN): the management API is unauthenticated and "
            "listens on loopback only",
            extra={"host": settings.host},
        )
        return settings
    log.warning(
        "no API token (TASKYARD_API_TOKEN): the management API is unauthenticated, so taskyard "
        "listens on 127.0.0.1 only, not on the host asked; set a token to listen there",
        extra={"host": "127.0.0.1", "host_refused": settings.host},
    )
    return settings.model_copy(update={"host": "127.0.0.1"})


async def serve(
    settings: Settings,
    verify_only: bool = False,
    metrics_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> None:
    settings = loopback_unless_token(settings)
    if settings.intake.processes > 1:
        await _serve_with_intake_processes(settings, verify_only, metrics_dir, environ)
        return
    sock = bind_listener(settings.host, settings.port)  # a taken port stops here, before all
    try:
        await _serve_on(sock, settings, verify_only, environ)
    finally:
        sock.close()


async def _serve_on(
    sock: socket.socket, settings: Settings, verify_only: bool, environ: Mapping[str, str] | None
) -> None:
    warn_unready_routes(settings, environ or {})
    async with running(settings, "serve", intake=True, environ=environ) as services:
        app, intake = site(
            settings,
            services.store,
            services.metrics,
            services.writer,
            services.approvals,
            verify_only=verify_only,
            tracing=services.tracing,
        )
        config = server_config(
            app, settings, services.metrics, host=settings.host, port=settings.port
        )
        enabled = sorted(s.name for s in intake.sources.values())
        server = uvicorn.Server(config)
        said = asyncio.create_task(announce_when_started(server, base_url(sock), enabled))
        try:
            await server.serve(sockets=[sock])
        finally:
            said.cancel()


async def _serve_with_intake_processes(
    settings: Settings,
    verify_only: bool,
    metrics_dir: Path | None,
    environ: Mapping[str, str] | None,
) -> None:
    """`intake.processes` processes answer webhooks; this one dispatches and runs jobs."""
    sources = sorted(build_sources(settings))  # refuses unusable secrets before anything starts
    store = await asyncio.to_thread(open_migrated_store, settings)  # before the intake opens it
    store.close()
    sock = reserve_port(settings.host, settings.port)
    state = SharedIntakeState.create(
        settings.home / "run" / "intake.state", sources, settings.intake.processes
    )
    pool = IntakePool(settings, sock.getsockname()[1], state, metrics_dir, verify_only)
    try:
        pool.start()
        log.info(
            "listening",
            extra={
                "host": settings.host,
                "port": sock.getsockname()[1],
                "sources": sorted(s.split("/")[-1] for s in sources),
                "intake_processes": pool.size,
            },
        )
        async with running(
            settings, "serve", intake=False, metrics_dir=metrics_dir, environ=environ
        ) as services:
            tasks = [
                asyncio.create_task(pool.supervise(), name="intake-pool"),
                asyncio.create_task(_feed_dispatcher(state, services.dispatcher), name="feed"),
            ]
            try:
                await _forever()
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                pool.stop()
    finally:
        pool.stop()
        sock.close()
        state.close()


async def _feed_dispatcher(state: SharedIntakeState, dispatcher: Dispatcher) -> None:
    """Tell the dispatcher what the intake processes stored (its burst policy needs the rate)."""
    seen = state.stored_total()
    while True:
        await asyncio.sleep(0.05)
        total = state.stored_total()
        if total != seen:
            dispatcher.notify(total - seen)
            seen = total


async def work(
    settings: Settings,
    environ: Mapping[str, str] | None = None,
    metrics_at: tuple[str, int] | None = None,
) -> None:
    """Workers only; with `metrics_at` (host, port), `/metrics` and `/healthz` served there
    for Prometheus (a worker takes no webhooks and has no API)."""
    async with running(settings, "worker", intake=False, environ=environ) as services:
        if metrics_at is None:
            await _forever()
            return
        host, port = metrics_at
        config = uvicorn.Config(
            metrics_app(services.metrics),
            host=host,
            port=port,
            access_log=False,
            log_config=None,
            lifespan="off",
        )
        listener = uvicorn.Server(config)
        log.info("worker metrics listening", extra={"host": host, "port": port})
        await listener.serve()  # until SIGINT/SIGTERM, which uvicorn handles


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
