"""Webhook intake benchmark: taskyard on SQLite and PostgreSQL, verify-only, and the baseline.

For each scenario, in order: a fresh database, the server as a subprocess, `GET /healthz`,
a warm-up, the max-throughput run (wrk), the fixed-rate run (open loop), the server stopped,
the stored rows counted. Then one table and the ratios next to their targets. It prints
numbers and never fails because a target is missed.

Run: python -m bench.intake            (or: python bench/intake.py)
     python -m bench.intake --only baseline --seconds 5
"""

from __future__ import annotations

import argparse
import os
import platform
import secrets
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

if not __package__:  # run as a script: make `bench` importable from the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg
import redis
from rq import Queue

from bench import loadgen
from bench.loadgen import ProtocolError, Result, Target
from bench.payload import build_body
from bench.servers import (
    CpuSample,
    Databases,
    Server,
    ServerError,
    count_postgres,
    count_sqlite,
    free_port,
    machine_busy,
    running_server,
)

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
SCENARIOS = ("sqlite", "postgres", "verify", "baseline")
LABELS = {
    "sqlite": "taskyard SQLite",
    "postgres": "taskyard PostgreSQL",
    "verify": "taskyard verify-only",
    "baseline": "baseline FastAPI+RQ+PG",
}
# Every request repeats one body under a new delivery id, which is what a replay looks like:
# the content-hash window is off here so that each delivery is stored (see README, dedup).
CONFIG_YAML = "sources:\n  github:\n    rate_limit_per_hour: 0\n    dedup_window_seconds: 0\n"
TARGET_RATE = 4_000.0
TARGET_P99_MS = 20.0
TARGET_VS_BASELINE = 3.0
TARGET_STORED_SHARE = 0.5


@dataclass(frozen=True)
class Options:
    seconds: float
    connections: int
    rate: float
    rate_connections: int
    warmup: float
    settle: float
    wrk_threads: int
    processes: int
    only: tuple[str, ...]
    taskyard: tuple[str, ...]
    postgres_url: str
    redis_url: str
    secret: str = field(default_factory=lambda: secrets.token_hex(16))


@dataclass(frozen=True)
class Scenario:
    key: str
    command: list[str]
    env: dict[str, str]
    port: int
    count_rows: Callable[[], int | None]
    finish: Callable[[], str] = lambda: ""  # after the server stopped: clean up, say what
    stores: bool = True  # False for --verify-only

    @property
    def label(self) -> str:
        return LABELS[self.key]


@dataclass(frozen=True)
class Outcome:
    key: str
    runs: dict[str, Result] = field(default_factory=dict)  # "warmup", "max", "rate"
    rows: int | None = None
    failure: str | None = None

    def run(self, name: str) -> Result | None:
        return self.runs.get(name)


# ----------------------------------------------------------------- options


def default_taskyard() -> str:
    script = Path(sys.executable).with_name("taskyard")
    return str(script) if script.exists() else f"{sys.executable} -m taskyard"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--seconds", type=float, default=10.0, help="length of each measured run")
    add("--connections", type=int, default=64, help="wrk connections for the max run")
    add("--rate", type=float, default=1000.0, help="requests/s of the fixed-rate run")
    add("--rate-connections", type=int, default=32, help="connections of the fixed-rate run")
    add("--warmup", type=float, default=2.0, help="seconds of wrk before measuring")
    add("--settle", type=float, default=2.0, help="idle seconds between runs")
    add("--wrk-threads", type=int, default=1)
    add(
        "--processes",
        type=int,
        default=2,
        help="processes answering webhooks: taskyard's --intake-processes, the baseline's workers",
    )
    add("--only", default=",".join(SCENARIOS), help="comma list of " + ", ".join(SCENARIOS))
    add("--taskyard", default=default_taskyard(), help="command that runs taskyard")
    add(
        "--postgres-url",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="server to create the benchmark databases on (connects to this database)",
    )
    add("--redis-url", default="redis://127.0.0.1:6379/0", help="Redis of the baseline")
    return parser


def parse_options(argv: list[str] | None) -> Options:
    parser = build_parser()
    args = parser.parse_args(argv)
    only = tuple(key.strip() for key in args.only.split(",") if key.strip())
    unknown = sorted(set(only) - set(SCENARIOS))
    if unknown:
        parser.error(f"--only: unknown scenario {', '.join(unknown)}")
    return Options(
        seconds=args.seconds,
        connections=args.connections,
        rate=args.rate,
        rate_connections=args.rate_connections,
        warmup=args.warmup,
        settle=args.settle,
        wrk_threads=args.wrk_threads,
        processes=args.processes,
        only=only,
        taskyard=tuple(shlex.split(args.taskyard)),
        postgres_url=args.postgres_url,
        redis_url=args.redis_url,
    )


# --------------------------------------------------------------- scenarios


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without any TASKYARD_* setting, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKYARD_")}
    return {**env, **extra}


def taskyard_scenario(
    key: str, options: Options, work: Path, database_url: str | None, verify_only: bool = False
) -> Scenario:
    home = work / key
    home.mkdir()
    config = home / "taskyard.yaml"
    config.write_text(CONFIG_YAML)
    port = free_port()
    command = [*options.taskyard, "serve", "--config", str(config)]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    command += ["--intake-processes", str(options.processes)]
    command += ["--database-url", database_url] if database_url else []
    command += ["--verify-only"] if verify_only else []
    env = clean_env(TASKYARD_HOME=str(home), TASKYARD_GITHUB_SECRET=options.secret)
    if database_url:
        count = partial(count_postgres, database_url, "events")
    else:
        count = partial(count_sqlite, home / "taskyard.db", "events")
    return Scenario(key, command, env, port, count, stores=not verify_only)


def baseline_scenario(options: Options, url: str) -> Scenario:
    port = free_port()
    queue_name = f"bench-baseline-{os.getpid()}"
    command = [sys.executable, str(BENCH_DIR / "baseline_rq.py"), "--port", str(port)]
    command += ["--database-url", url, "--redis-url", options.redis_url, "--queue", queue_name]
    command += ["--workers", str(options.processes)]

    def finish() -> str:
        queue = Queue(queue_name, connection=redis.Redis.from_url(options.redis_url))
        try:
            jobs = queue.count
            queue.delete(delete_jobs=True)
        except redis.RedisError as exc:
            return f"could not delete RQ queue {queue_name}: {exc}"
        return f"RQ jobs queued: {jobs} (queue and jobs deleted)"

    env = clean_env(BENCH_GITHUB_SECRET=options.secret)
    count = partial(count_postgres, url, "webhook_events")
    return Scenario("baseline", command, env, port, count, finish)


def build_scenario(key: str, options: Options, work: Path, databases: Databases) -> Scenario:
    pid = os.getpid()
    if key == "postgres":
        url = databases.create(f"bench_taskyard_{pid}")
        return taskyard_scenario(key, options, work, database_url=url)
    if key == "baseline":
        return baseline_scenario(options, databases.create(f"bench_baseline_{pid}"))
    return taskyard_scenario(key, options, work, database_url=None, verify_only=key == "verify")


# -------------------------------------------------------------------- runs


def say(message: str) -> None:
    print(message, flush=True)


def measure(options: Options, server: Server) -> dict[str, Result]:
    url = f"{server.url}/webhooks/github"
    target = Target(url=url, body=build_body(), secret=options.secret)
    threads, conns = options.wrk_threads, options.connections
    runs = {"warmup": loadgen.run_max(target, conns, options.warmup, threads)}
    say(f"  warm-up  {runs['warmup'].summary()}")
    time.sleep(options.settle)
    before = CpuSample.take(server.pid)
    runs["max"] = loadgen.run_max(target, conns, options.seconds, threads)
    say(f"  max      {runs['max'].summary()}")
    say(f"  cpu      during the max run: {CpuSample.take(server.pid).since(before)}")
    time.sleep(options.settle)
    runs["rate"] = loadgen.run_fixed_rate(
        target, options.rate, options.seconds, options.rate_connections
    )
    say(f"  {options.rate:,.0f}/s  {runs['rate'].summary()}")
    return runs


def run_scenario(scenario: Scenario, options: Options, work: Path) -> Outcome:
    say(f"\n== {scenario.label}: {shlex.join(scenario.command)}")
    log_path = work / f"{scenario.key}.log"
    try:
        server_cm = running_server(scenario.command, scenario.env, scenario.port, log_path, ROOT)
        with server_cm as server:
            runs = measure(options, server)
    except (ServerError, ProtocolError, subprocess.SubprocessError, OSError) as exc:
        say(f"  FAILED: {exc}")
        return Outcome(scenario.key, failure=str(exc).splitlines()[0])
    finally:
        note = scenario.finish()
        if note:
            say(f"  {note}")
    rows = scenario.count_rows()
    say(f"  {describe_rows(scenario, rows, runs, options)}")
    return Outcome(scenario.key, runs, rows)


def describe_rows(
    scenario: Scenario, rows: int | None, runs: dict[str, Result], options: Options
) -> str:
    """Rows stored against 202s counted: wrk drops the answers in flight when it stops."""
    accepted = sum(result.accepted for result in runs.values())
    if not scenario.stores:
        verdict = "ok" if not rows else "MISMATCH: verify-only stored events"
        return f"stored rows: {rows or 0} (verify-only stores nothing) -> {verdict}"
    if rows is None:
        return f"stored rows: not readable; 202s counted: {accepted}"
    slack = 2 * options.connections + sum(result.errors for result in runs.values())
    verdict = "consistent" if accepted <= rows <= accepted + slack else "MISMATCH"
    return (
        f"stored rows: {rows}; 202s counted: {accepted} (+ up to {slack} in flight or "
        f"unanswered) -> {verdict}"
    )


# ------------------------------------------------------------------ report


def wrk_version() -> str:
    wrk = shutil.which("wrk")
    if wrk is None:
        return f"not installed ({loadgen.WRK_INSTALL_HINT}; the Python client is used)"
    done = subprocess.run([wrk, "-v"], capture_output=True, text=True, check=False)
    first = (done.stdout or done.stderr).splitlines()[0] if (done.stdout or done.stderr) else ""
    return first.split(" Copyright")[0].strip() or "unknown version"


def cpu_check() -> str:
    busy = machine_busy()
    if busy is None:
        return "unknown (no /proc/stat)"
    warning = "  <- other processes compete for the CPU" if busy > 0.1 else ""
    return f"{busy:.0%} of the CPU busy over 1 s with no load running{warning}"


def max_tool(options: Options) -> str:
    if shutil.which("wrk") is None:
        return "Python client (no wrk)"
    return f"wrk with {options.wrk_threads} thread(s)"


def print_header(options: Options) -> None:
    body = build_body()
    say("taskyard webhook intake benchmark")
    say(f"machine:  {os.cpu_count()} CPUs (nproc), {platform.platform()}")
    say(f"python:   {platform.python_version()} ({sys.executable})")
    say(f"idle:     {cpu_check()}")
    say(f"wrk:      {wrk_version()}")
    say(
        f"payload:  {len(body):,}-byte GitHub pull_request.opened, X-Hub-Signature-256, "
        "a unique X-GitHub-Delivery per request"
    )
    say(
        f"max run:  {max_tool(options)}, {options.connections} connections, "
        f"{options.seconds:g} s after a {options.warmup:g} s warm-up (closed loop)"
    )
    say(
        f"servers:  taskyard serve --intake-processes {options.processes}; "
        f"the baseline with {options.processes} uvicorn worker(s)"
    )
    say(
        f"fixed:    {options.rate:,.0f} requests/s for {options.seconds:g} s, open loop over "
        f"{options.rate_connections} connections, latency from each request's due time"
    )
    say(
        f"note:     the load generator, PostgreSQL and Redis share these {os.cpu_count()} cores "
        "with the server under test: the rates are what the server does with the CPU left."
    )


def _num(value: float | None, spec: str = ",.0f") -> str:
    return "n/a" if value is None else format(value, spec)


ROW = "{:<24} {:>10} {:>8} {:>8}   {:>9} {:>8} {:>8}   {:>8} {:>8}"
HEADINGS = ["scenario", "accepted/s", "p50 ms", "p99 ms", "202/s", "p50 ms", "p99 ms"]
HEADINGS += ["non-202", "rows"]


def table_row(outcome: Outcome) -> str:
    label = LABELS[outcome.key]
    top, fixed = outcome.run("max"), outcome.run("rate")
    if outcome.failure or top is None or fixed is None:
        return f"{label:<24} failed: {outcome.failure}"
    return ROW.format(
        label,
        _num(top.accepted_per_s),
        _num(top.p50_ms, ".2f"),
        _num(top.p99_ms, ".2f"),
        _num(fixed.accepted_per_s),
        _num(fixed.p50_ms, ".2f"),
        _num(fixed.p99_ms, ".2f"),
        top.non_accepted + fixed.non_accepted,
        _num(outcome.rows, "d"),
    )


def print_table(outcomes: list[Outcome], options: Options) -> None:
    fixed = f" {options.rate:,.0f}/s, open loop "
    say("")
    say(f"{'':<24} {' max run ':-^28}   {fixed:-^27}")
    say(ROW.format(*HEADINGS))
    say("-" * 102)
    for outcome in outcomes:
        say(table_row(outcome))
    say(
        "non-202 = answers other than 202 plus requests that got none, both runs; "
        "rows = events stored (warm-up included)"
    )


@dataclass(frozen=True)
class Check:
    name: str
    value: float | None
    unit: str  # "/s", "ms" or "x"
    target: float
    at_least: bool

    def line(self) -> str:
        spec, unit = {"/s": (",.0f", "/s"), "ms": (".1f", " ms"), "x": (".2f", "x")}[self.unit]
        value = "n/a" if self.value is None else format(self.value, spec) + unit
        sign = ">=" if self.at_least else "<="
        target = f"{sign} {format(self.target, spec)}{unit}"
        if self.value is None:
            verdict = ""
        else:
            met = self.value >= self.target if self.at_least else self.value <= self.target
            verdict = "met" if met else "MISSED"
        return f"{self.name:<44} {value:>12}   target {target:<12} {verdict}"


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def _max_rate(outcome: Outcome | None) -> float | None:
    run = outcome.run("max") if outcome else None
    return run.accepted_per_s if run else None


def _fixed_p99(outcome: Outcome | None) -> float | None:
    run = outcome.run("rate") if outcome else None
    return run.p99_ms if run else None


def build_checks(outcomes: dict[str, Outcome], options: Options) -> list[Check]:
    rate = {key: _max_rate(outcomes.get(key)) for key in SCENARIOS}
    stores = ("postgres", "sqlite")
    checks = [Check(f"{LABELS[k]} accepted/s", rate[k], "/s", TARGET_RATE, True) for k in stores]
    checks += [
        Check(f"{LABELS[k]} p99 at {options.rate:,.0f}/s", _fixed_p99(outcomes.get(k)), "ms",
              TARGET_P99_MS, False)
        for k in stores
    ]  # fmt: skip
    checks += [
        Check(f"{LABELS[k]} / baseline", _ratio(rate[k], rate["baseline"]), "x",
              TARGET_VS_BASELINE, True)
        for k in stores
    ]  # fmt: skip
    checks += [
        Check(f"{LABELS[k]} stored / verify-only", _ratio(rate[k], rate["verify"]), "x",
              TARGET_STORED_SHARE, True)
        for k in stores
    ]  # fmt: skip
    return checks


def print_checks(outcomes: dict[str, Outcome], options: Options) -> None:
    say("")
    say("targets (accepted/s from the max run; n/a = scenario not run or failed)")
    for check in build_checks(outcomes, options):
        say(check.line())
    say(f"idle at the end: {cpu_check()}")


# -------------------------------------------------------------------- main


def run_one(key: str, options: Options, work: Path, databases: Databases) -> Outcome:
    try:
        scenario = build_scenario(key, options, work, databases)
    except (psycopg.Error, OSError) as exc:
        say(f"\n== {LABELS[key]}: cannot prepare: {exc}")
        return Outcome(key, failure=f"cannot prepare: {exc}")
    return run_scenario(scenario, options, work)


def run_all(options: Options) -> list[Outcome]:
    databases = Databases(options.postgres_url)
    with tempfile.TemporaryDirectory(prefix="bench-intake-") as tmp:
        try:
            return [run_one(key, options, Path(tmp), databases) for key in options.only]
        finally:
            databases.drop_all()


def main(argv: list[str] | None = None) -> None:
    options = parse_options(argv)
    print_header(options)
    outcomes = run_all(options)
    print_table(outcomes, options)
    print_checks({outcome.key: outcome for outcome in outcomes}, options)


if __name__ == "__main__":
    main()
