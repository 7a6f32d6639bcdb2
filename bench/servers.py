"""The pieces of a benchmark run around the load: databases, server processes, CPU use."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
from psycopg import sql


class ServerError(Exception):
    """A server under test did not start or stopped answering."""


# --------------------------------------------------------------- databases


class Databases:
    """Fresh PostgreSQL databases for one run; all dropped at the end."""

    def __init__(self, admin_url: str) -> None:
        self._admin_url = admin_url
        self._names: list[str] = []

    def create(self, name: str) -> str:
        with psycopg.connect(self._admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self._names.append(name)
        return urlsplit(self._admin_url)._replace(path=f"/{name}").geturl()

    def drop_all(self) -> None:
        if not self._names:
            return
        with psycopg.connect(self._admin_url, autocommit=True) as conn:
            for name in self._names:
                query = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                conn.execute(query.format(sql.Identifier(name)))
        self._names.clear()


def count_postgres(url: str, table: str) -> int | None:
    try:
        with psycopg.connect(url) as conn:
            query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
            row = conn.execute(query).fetchone()
    except psycopg.Error:
        return None
    return int(row[0]) if row else None


def count_sqlite(path: Path, table: str) -> int | None:
    if not path.exists():
        return None
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    except sqlite3.Error:
        return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ------------------------------------------------------------------ server


@dataclass(frozen=True)
class Server:
    url: str
    pid: int


@dataclass(frozen=True)
class CpuSample:
    """CPU seconds used so far by one process with its children (all threads) and by the
    whole machine."""

    wall: float
    process: float | None
    machine: float | None

    @classmethod
    def take(cls, pid: int) -> CpuSample:
        return cls(time.monotonic(), _process_cpu(pid), _machine_cpu())

    def since(self, before: CpuSample) -> str:
        wall = self.wall - before.wall
        if self.process is None or before.process is None:
            return "not measurable (no /proc)"
        server = (self.process - before.process) / wall
        text = f"server processes {server:.2f} cores"
        if self.machine is not None and before.machine is not None:
            machine = (self.machine - before.machine) / wall
            text += f", whole machine {machine:.2f} of {os.cpu_count()} cores busy"
        return text


def _process_cpu(pid: int) -> float | None:
    """utime + stime of `pid` and of its live children from /proc (Linux), in seconds."""
    stats: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stats[int(entry.name)] = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
    if pid not in stats:
        return None
    tree, total = {pid}, 0
    for child, fields in sorted(stats.items()):  # parents start before their children
        if child in tree or int(fields[1]) in tree:
            tree.add(child)
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def _machine_cpu() -> float | None:
    """Busy (not idle, not iowait) CPU seconds of the whole machine from /proc/stat."""
    try:
        ticks = [int(t) for t in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return None
    busy = sum(ticks[:8]) - ticks[3] - ticks[4]  # user..steal minus idle and iowait
    return busy / os.sysconf("SC_CLK_TCK")


@contextmanager
def running_server(
    command: list[str], env: dict[str, str], port: int, log_path: Path, cwd: Path
) -> Iterator[Server]:
    """Start the server (output to `log_path`), wait for /healthz, yield it; stop it on exit."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=cwd,
            start_new_session=True,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(base, process, log_path)
            yield Server(base, process.pid)
        finally:
            stop(process)


def wait_healthy(base: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerError(f"exited with {process.returncode}: {tail(log_path)}")
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:  # URLError and connection errors
            pass  # not listening yet
        time.sleep(0.2)
    raise ServerError(f"no 200 from {base}/healthz within 60 s: {tail(log_path)}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group, SIGKILL it if it is still there after 20 s."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=20)


def tail(path: Path, lines: int = 15) -> str:
    text = path.read_text(errors="replace").splitlines()[-lines:]
    return "\n".join(["", *text]) if text else "(no output)"


def machine_busy(seconds: float = 1.0) -> float | None:
    """The share of all CPUs busy over the next `seconds` (None without /proc)."""
    before = _machine_cpu()
    time.sleep(seconds)
    after = _machine_cpu()
    if before is None or after is None:
        return None
    return (after - before) / seconds / (os.cpu_count() or 1)
