"""`taskyard serve --intake-processes 2`: two processes answer on one port, beside the queue."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from taskyard.intake import make_adapter
from taskyard.models import EventStatus
from tests.acceptance.test_serve import CONFIG, SECRET, Taskyard, _lines, wait_for

pytestmark = pytest.mark.slow

LIMIT = 12


@pytest.fixture(params=["sqlite", "postgres"])
def pooled(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Taskyard]:
    url = request.getfixturevalue("pg_url") if request.param == "postgres" else None
    ty = Taskyard(tmp_path, url)
    ty.config.write_text(CONFIG + f"sources:\n  github:\n    rate_limit_per_hour: {LIMIT}\n")
    ty.serve_args = ["--intake-processes", "2"]
    yield ty
    ty.stop()


def _post(ty: Taskyard, n: int) -> httpx.Response:
    """One signed delivery on a new connection (so the kernel picks a process each time)."""
    body = json.dumps({"zen": f"pooled {n}", "behaviour": "ok"}).encode()
    signed = make_adapter("github").sign(
        SECRET, body, time.time(), {"x-github-event": "ping", "x-github-delivery": f"d-{n}"}
    )
    return httpx.post(f"{ty.url}/webhooks/github", content=body, headers=signed.headers)


def _children(pid: int) -> set[int]:
    """The intake processes of server `pid` (not multiprocessing's resource tracker)."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                command = Path(f"/proc/{child}/cmdline").read_bytes()
            except OSError:
                continue
            if b"spawn_main" in command:
                found.add(int(child))
    return found


def _metric(ty: Taskyard, outcome: str) -> float:
    for line in httpx.get(f"{ty.url}/metrics").text.splitlines():
        if line.startswith("taskyard_webhooks_received_total{") and f'"{outcome}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_processes_share_the_port_the_rate_limit_and_the_metrics(pooled: Taskyard) -> None:
    pooled.start()
    assert pooled.proc is not None
    wait_for(lambda: len(_children(pooled.proc.pid)) >= 2, 20, "two intake processes")
    answers = [_post(pooled, n) for n in range(LIMIT + 6)]
    statuses = [a.status_code for a in answers]
    # One bucket for the source, whichever process took each connection.
    assert statuses.count(202) == LIMIT and statuses.count(429) == 6, statuses
    assert all(a.headers["retry-after"].isdigit() for a in answers if a.status_code == 429)
    ids = [a.json()["event_id"] for a in answers if a.status_code == 202]
    wait_for(lambda: all(pooled.status(i) == EventStatus.PROCESSED for i in ids), 40, "processing")
    assert all(len(_lines(pooled, "done", i)) == 1 for i in ids)
    # Counted together: any process answers /metrics with the totals of all of them.
    for _ in range(4):
        assert _metric(pooled, "accepted") == LIMIT
        assert _metric(pooled, "rate_limited") == 6
    log = (pooled.home / "serve.log").read_text()
    assert '"slot": 0' in log.replace('"slot":0', '"slot": 0')
    assert '"slot": 1' in log.replace('"slot":1', '"slot": 1')


def test_kill9_of_the_server_takes_its_intake_processes_and_loses_nothing(
    pooled: Taskyard,
) -> None:
    pooled.start()
    assert pooled.proc is not None
    wait_for(lambda: len(_children(pooled.proc.pid)) >= 2, 20, "two intake processes")
    children = _children(pooled.proc.pid)
    ids = [_post(pooled, n).json()["event_id"] for n in range(8)]
    pooled.kill9()
    wait_for(lambda: not _listening(pooled.port), 10, "the intake processes to exit")
    for pid in children:
        wait_for(lambda pid=pid: not Path(f"/proc/{pid}").exists(), 10, f"process {pid} to end")
    pooled.start()
    wait_for(lambda: all(pooled.status(i) == EventStatus.PROCESSED for i in ids), 40, "processing")
    # Every answered delivery ran. A job the kill caught between its last line and DBOS's
    # checkpoint runs again (handlers are at least once), so "done" may appear twice for it.
    assert all(_lines(pooled, "done", i) for i in ids)


def test_a_dead_intake_process_is_replaced(pooled: Taskyard) -> None:
    pooled.start()
    assert pooled.proc is not None
    wait_for(lambda: len(_children(pooled.proc.pid)) >= 2, 20, "two intake processes")
    first = _children(pooled.proc.pid)
    victim = min(first)
    os.kill(victim, signal.SIGKILL)
    wait_for(
        lambda: (
            len(_children(pooled.proc.pid) - first) == 1 and len(_children(pooled.proc.pid)) >= 2
        ),
        20,
        "a new intake process",
    )
    assert "intake process exited; restarting it" in (pooled.home / "serve.log").read_text()
    answers = [_post(pooled, n) for n in range(6)]
    assert [a.status_code for a in answers] == [202] * 6
