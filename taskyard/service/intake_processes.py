"""Several processes answering webhooks on one port (`intake.processes` > 1).

Python answers one request at a time per process, so past ~2,000 deliveries/s the answer is
more processes. The server process binds the port, creates the shared state (rate limits and
counts, `taskyard.intake.shared`) and starts the intake processes, which all accept on the
same port (SO_REUSEPORT): the kernel spreads connections evenly over them. An intake process
verifies, normalises and stores events and answers; it never runs jobs. The server process
keeps the dispatcher and the workers, restarts an intake process that dies, and stops them all
on its way out. An intake process dies with the server process (a parent-death signal), so a
kill -9 of the server leaves nothing listening behind; every 2xx was committed before it was
sent, so nothing answered is lost either.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import multiprocessing
import multiprocessing.process
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from taskyard.approvals.service import Approvals
from taskyard.config import Settings
from taskyard.exceptions import ConfigError
from taskyard.intake.shared import SharedIntakeState
from taskyard.intake.writer import EventWriter
from taskyard.observe.metrics import Metrics, setup_logging
from taskyard.observe.tracing import Tracing
from taskyard.run.workspace import Workspaces
from taskyard.store import SQLStore
from taskyard.web.app import server_config, site

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
_RESTART_MAX_SECONDS = 30.0
_STOP_SECONDS = 10.0


def reserve_port(host: str, port: int) -> socket.socket:
    """Bind (not listen) the port for this server: it fails here if the port is taken, and
    port 0 picks the one every intake process then binds too."""
    sock = _reuseport_socket(host)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    return sock


def _reuseport_socket(host: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    return sock


def _listen(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """This intake process's own listening socket on the shared port (SO_REUSEPORT): the kernel
    spreads new connections evenly over the processes."""
    sock = _reuseport_socket(host)
    sock.bind((host, port))
    sock.listen(backlog)
    return sock


@dataclass(frozen=True)
class IntakeProcessSpec:
    """Everything an intake process is given: plain values only (it is started by spawn)."""

    settings: Settings
    state_path: Path
    buckets: tuple[str, ...]
    metrics_dir: Path | None
    verify_only: bool
    parent_pid: int
    host: str
    port: int


def intake_process_main(spec: IntakeProcessSpec, slot: int) -> None:
    """Entry point of one intake process."""
    _die_with_parent(spec.parent_pid)
    setup_logging(spec.settings.log_level, spec.settings.log_format, spec.settings.secrets())
    sock = _listen(spec.host, spec.port)
    try:
        import uvloop
    except ImportError:
        asyncio.run(_serve_intake(spec, slot, sock))
    else:
        uvloop.run(_serve_intake(spec, slot, sock))


def _die_with_parent(parent_pid: int) -> None:
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os._exit(0)


async def _serve_intake(spec: IntakeProcessSpec, slot: int, sock: socket.socket) -> None:
    settings = spec.settings
    state = SharedIntakeState.attach(spec.state_path, spec.buckets, settings.intake.processes)
    store = SQLStore.open(settings.store_url)
    metrics = Metrics(spec.metrics_dir)
    metrics.watch_store(  # /metrics is answered here
        store.count_events,
        store.count_dead_letters,
        Workspaces.from_settings(settings, {}).disk_bytes,
        settings.metrics.workspace_disk_seconds,
    )
    tracing = Tracing.from_settings(settings)
    writer = None
    if not spec.verify_only:
        writer = EventWriter(
            store,
            settings.intake.write_batch_max,
            on_commit=lambda stored: state.add_stored(slot, stored),
        )
        await writer.start()
    try:
        approvals = None
        if settings.approvals.enabled:
            approvals = Approvals.from_settings(settings, store)
        app, _ = site(
            settings,
            store,
            metrics,
            writer,
            approvals,
            verify_only=spec.verify_only,
            shared=state,
            tracing=tracing,
        )
        log.info("intake process listening", extra={"slot": slot, "pid": os.getpid()})
        await uvicorn.Server(server_config(app, settings, metrics)).serve(sockets=[sock])
    finally:
        if writer is not None:
            await writer.stop()
        tracing.shutdown()
        store.close()
        state.close()


class IntakePool:
    """The intake processes of one server, kept at `intake.processes`."""

    def __init__(
        self,
        settings: Settings,
        port: int,
        state: SharedIntakeState,
        metrics_dir: Path | None,
        verify_only: bool = False,
    ) -> None:
        self.state = state
        self.spec = IntakeProcessSpec(
            settings,
            state.path,
            state.buckets,
            metrics_dir,
            verify_only,
            os.getpid(),
            settings.host,
            port,
        )
        self.size = settings.intake.processes
        self._context = multiprocessing.get_context("spawn")
        self._procs: dict[int, multiprocessing.process.BaseProcess] = {}
        self._restarts: dict[int, int] = {}
        self._stopping = False

    def start(self) -> None:
        """Start every intake process. Call from the main thread: the parent-death signal
        is tied to the thread that started the process."""
        for slot in range(self.size):
            self._start(slot)

    def _start(self, slot: int) -> None:
        proc = self._context.Process(
            target=intake_process_main,
            args=(self.spec, slot),
            name=f"taskyard-intake-{slot}",
            daemon=False,
        )
        proc.start()
        self._procs[slot] = proc

    def pids(self) -> list[int]:
        return [p.pid for p in self._procs.values() if p.pid is not None]

    async def supervise(self) -> None:
        """Restart intake processes that exit while the server runs (backing off when one keeps
        dying)."""
        while not self._stopping:
            await asyncio.sleep(0.5)
            for slot, proc in list(self._procs.items()):
                if proc.is_alive() or self._stopping:
                    continue
                restarts = self._restarts.get(slot, 0)
                delay = min(_RESTART_MAX_SECONDS, 0.5 * 2**restarts)
                log.error(
                    "intake process exited; restarting it",
                    extra={"slot": slot, "exitcode": proc.exitcode, "in_seconds": delay},
                )
                self._restarts[slot] = restarts + 1
                await asyncio.sleep(delay)
                if not self._stopping:
                    self._start(slot)

    def stop(self) -> None:
        """Ask every intake process to finish its requests and exit; kill what is left."""
        self._stopping = True
        for proc in self._procs.values():
            if proc.is_alive() and proc.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + _STOP_SECONDS
        for proc in self._procs.values():
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                log.warning("intake process did not stop; killing it", extra={"pid": proc.pid})
                proc.kill()
                proc.join()
