"""Pipeline benchmark: event → agent started, taskyard's overhead per task, tasks/s.

    python -m bench.pipeline [--only sqlite|postgres] [--events 60] [--burst 300]
                             [--sandbox auto|bwrap|none]

For each database, a real `taskyard serve` with one route (`github:issues.opened`) whose
`command` agent exits at once after writing its result:
1. latency: `--events` deliveries at `--rate`/s with the default cap (3); event → agent
   started is the task's `started_at` minus the event's `received_at`, both stamped by the
   server; taskyard's overhead per task is each attempt's wall time minus the agent's own, from
   the server's `task finished` log lines.
2. throughput: `--burst` deliveries sent at once with the cap raised to `--cap`; tasks/s is
   the number of tasks over the time from the first delivery to the last task's end.
Targets (the Run issue): p50 ≤ 100 ms, p99 ≤ 300 ms, overhead ≤ 30 ms, ≥ 100 tasks/s on
PostgreSQL, ≥ 20 on SQLite. Prints numbers; never fails on a miss.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from bench.sandbox import measure as sandbox_measure
from bench.servers import Databases, free_port, running_server
from taskyard.intake.app import make_adapter
from taskyard.store import SQLStore
from taskyard.store.base import TaskFilter

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "webhooks" / "github" / "issues.opened.json"
SECRET = "bench-secret"
AGENT = (
    'printf \'%s\' \'{"success":true,"actions":[],"analysis":"","summary":"ok"}\' '
    '> "$OUTPUT_DIR/result.json"'
)
CONFIG = """
log_level: INFO
queue: {{max_in_flight: 512, concurrency: 16}}
sources: {{github: {{rate_limit_per_hour: 0}}}}
runs: {{concurrency: {cap}, sandbox: {sandbox}}}
agents:
  instant: {{kind: command, argv: ["/bin/sh", "-c", {agent}]}}
routes:
  - name: bench
    on: ["github:issues.opened"]
    agent: instant
    prompt: default
    who: {{min_permission: none}}
"""


WARM_UP = 5


def signed_delivery(n: int) -> tuple[bytes, dict[str, str]]:
    payload = json.loads(SHARED.read_text())
    payload["issue"]["number"] = n
    payload["issue"]["title"] = f"bench issue {n} {uuid.uuid4().hex}"
    body = json.dumps(payload).encode()
    headers = {"x-github-event": "issues", "x-github-delivery": str(uuid.uuid4())}
    signed = make_adapter("github").sign(SECRET, body, time.time(), headers)
    return signed.body, dict(signed.headers)


async def send(base: str, count: int, rate: float | None, clients: int = 16) -> float:
    """Send `count` deliveries (paced at `rate`/s, or as fast as `clients` allow); returns
    when the first one was sent."""
    deliveries = [signed_delivery(n) for n in range(count)]
    first = time.time()
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        if rate:
            for n, (body, headers) in enumerate(deliveries):
                await asyncio.sleep(max(0.0, first + n / rate - time.time()))
                r = await client.post("/webhooks/github", content=body, headers=headers)
                assert r.status_code == 202, r.text
            return first
        pending = iter(deliveries)

        async def worker() -> None:
            for body, headers in pending:
                r = await client.post("/webhooks/github", content=body, headers=headers)
                assert r.status_code == 202, r.text

        await asyncio.gather(*(worker() for _ in range(clients)))
    return first


def wait_tasks(url: str, count: int, seconds: float) -> list[Any]:
    store = SQLStore.open(url)
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            tasks = store.list_tasks(TaskFilter(limit=count + 10))
            if len(tasks) >= count and all(t.status.terminal for t in tasks):
                return [(t, store.get_event(t.event_id)) for t in tasks]
            time.sleep(0.2)
        raise SystemExit(f"only {len(tasks)} of {count} tasks ended within {seconds} s")
    finally:
        store.close()


@contextlib.contextmanager
def worker_process(serve_cmd: list[str], env: dict[str, str], home: Path, n: int) -> Any:
    """`taskyard worker` beside the server, with a data directory of its own."""
    cmd = [c for c in serve_cmd if c != "serve"]
    at = cmd.index("--port")
    cmd = [*cmd[:at], "worker", *cmd[at + 2 :]]
    own = {**env, "TASKYARD_HOME": str(home / f"worker-{n}")}
    with (home / f"worker-{n}.log").open("wb") as log:
        proc = subprocess.Popen(cmd, env=own, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        try:
            time.sleep(3)  # let it start before the load
            yield proc
        finally:
            proc.terminate()
            proc.wait(20)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_phase(
    db_url: str | None,
    home: Path,
    cap: int,
    count: int,
    rate: float | None,
    workers: int = 0,
    sandbox: str = "auto",
) -> dict[str, Any]:
    home.mkdir(parents=True)
    config = CONFIG.format(cap=cap, agent=json.dumps(AGENT), sandbox=sandbox)
    (home / "taskyard.yaml").write_text(config)
    port = free_port()
    env = {**os.environ, "TASKYARD_HOME": str(home), "TASKYARD_GITHUB_SECRET": SECRET}
    cmd = [sys.executable, "-m", "taskyard", "serve", "--port", str(port),
           "--config", str(home / "taskyard.yaml"),
           *(["--database-url", db_url] if db_url else [])]  # fmt: skip
    url = db_url or f"sqlite:///{home / 'taskyard.db'}"
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(running_server(cmd, env, port, home / "serve.log", REPO))
        for n in range(workers):  # scale-out: more processes on the same database
            stack.enter_context(worker_process(cmd, env, home, n))
        # Warm-up: the first deliveries pay for imports and first connections.
        asyncio.run(send(server.url, WARM_UP, 5.0))
        warm = {t.id for t, _ in wait_tasks(url, WARM_UP, 60)}
        first = asyncio.run(send(server.url, count, rate))
        done = [(t, e) for t, e in wait_tasks(url, count + WARM_UP, 300) if t.id not in warm]
    log_lines = (home / "serve.log").read_text().splitlines()
    (home / "serve.log").write_text(
        "\n".join(line for line in log_lines if not any(w in line for w in warm))
    )
    failed = [t for t, _ in done if str(t.status) != "succeeded"]
    if failed:
        raise SystemExit(f"{len(failed)} tasks did not succeed, e.g. {failed[0].reason}")
    latency = [(t.started_at - e.received_at) * 1000 for t, e in done]
    overhead = [
        float(rec["overhead_ms"])
        for line in (home / "serve.log").read_text().splitlines()
        if line.startswith("{") and '"task finished"' in line
        for rec in [json.loads(line)]
        if "overhead_ms" in rec
    ]
    last = max(t.finished_at for t, _ in done)
    return {"latency": latency, "overhead": overhead, "tasks_per_s": count / (last - first)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["sqlite", "postgres"])
    parser.add_argument("--events", type=int, default=60)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--burst", type=int, default=300)
    parser.add_argument("--cap", type=int, default=16)
    parser.add_argument(
        "--workers", type=int, default=0, help="extra `taskyard worker` processes (PostgreSQL)"
    )
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument(
        "--sandbox", choices=["auto", "bwrap", "none"], default="auto", help="runs.sandbox"
    )
    args = parser.parse_args()
    dbs = Databases(args.pg)
    try:
        for kind in ("sqlite", "postgres"):
            if args.only and args.only != kind:
                continue
            with tempfile.TemporaryDirectory(prefix=f"bench-pipeline-{kind}-") as tmp:

                def url(tag: str, kind: str = kind) -> str | None:
                    return (
                        dbs.create(f"bench_pipeline_{tag}_{uuid.uuid4().hex[:8]}")
                        if kind == "postgres"
                        else None
                    )

                root, box = Path(tmp), args.sandbox
                lat = run_phase(url("lat"), root / "lat", 3, args.events, args.rate, 0, box)
                extra = args.workers if kind == "postgres" else 0
                thr = run_phase(url("thr"), root / "thr", args.cap, args.burst, None, extra, box)
            print(
                f"{kind:9s} sandbox {args.sandbox}: event→agent started "
                f"p50 {pct(lat['latency'], 0.5):6.1f} ms "
                f"p99 {pct(lat['latency'], 0.99):6.1f} ms | overhead/task median "
                f"{statistics.median(lat['overhead']):5.1f} ms "
                f"p99 {pct(lat['overhead'], 0.99):5.1f} ms "
                f"| {args.burst} tasks at cap {args.cap}"
                f"{f' x {extra + 1} processes' if extra else ''}: {thr['tasks_per_s']:6.1f} tasks/s"
            )  # fmt: skip
    finally:
        dbs.drop_all()
    print(sandbox_measure(30))  # the agent sandbox's cost per task (bench.sandbox)


if __name__ == "__main__":
    main()
