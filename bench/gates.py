"""Gates benchmark: what taskyard itself spends on one change task's gates, the agents aside.

    python -m bench.gates [--only sqlite|postgres] [--changes 50] [--sandbox none|bwrap]

For each database, `--changes` change tasks, one after the other, each run by the real
`taskyard.run.change.ChangeRun` with every gate on (plan → plan_review → implement → test →
review → commit), deliver off, and:
- a fresh task row brought to `running` by the lifecycle's own transitions;
- its own copy of a small git repository (made before the clock starts);
- scripted agents that answer at once (implement edits one file);
- the real test gate (`taskyard.run.testgate.run_tests`) running `true` in the task's box
  (`--sandbox none` by default: the process alone; `bwrap` adds bubblewrap's cost).
The whole `ChangeRun.run(job)` is timed, less the scripted agents' own time: the gate records
and audit entries, git add/diff, the safety checks (size, detect-secrets), the staged hash, the
test command, the commit with its Review-Hash. The parts are timed by wrapping the functions
the run calls (in this process only). One change before the measured ones pays the imports and
is shown apart. Then the floors: one git process, detect-secrets' import and one scan alone.
Target (issue 15): median ≤ 200 ms on SQLite and PostgreSQL. Prints numbers; never fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

from bench.pipeline import pct
from bench.servers import Databases
from taskyard.agents.base import AgentOutcome, Usage
from taskyard.agents.sandbox import SandboxMode, SandboxSettings
from taskyard.agents.supervisor import Limits, RunReport, RunStatus
from taskyard.lifecycle import Gate, Kind
from taskyard.models import Priority, Task, TaskStatus
from taskyard.review import commit, safety, verify
from taskyard.review import hash as review_hash
from taskyard.run import change, changejob
from taskyard.run.change import ChangeJob, ChangeRun
from taskyard.run.testgate import GateSettings, TestReport, run_tests
from taskyard.run.workspace import TaskDirs
from taskyard.store import SQLStore, Store

REVIEWER_SESSION = "6f1c2a9e-4b7d-4c1e-9a55-0d2e8b7f3c11"
IMPLEMENTER_THREAD = "019a1b2c-3d4e-7f60-8a9b-0c1d2e3f4a5b"
ENV = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8"}
FILES = 20  # the template repository's modules, so index and tree have something to list
PARTS = ("store", "git", "secrets", "tests", "agents")


# --- what is timed ----------------------------------------------------------------------------


@dataclass
class Parts:
    """Seconds and calls per part, for the change being run."""

    seconds: dict[str, float] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)

    def add(self, part: str, seconds: float) -> None:
        self.seconds[part] = self.seconds.get(part, 0.0) + seconds
        self.calls[part] = self.calls.get(part, 0) + 1


def timed(parts: Parts, part: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            parts.add(part, time.perf_counter() - start)

    return wrapper


@contextlib.contextmanager
def timing(parts: Parts, store: Store) -> Iterator[None]:
    """Wrap what the run calls: every git process (each module's own `git` name), the store's
    gate records, detect-secrets' scan and the whole safety check."""
    real_git = review_hash.git

    def git(repo: Path, *args: str, **kwargs: Any) -> bytes:
        start = time.perf_counter()
        try:
            return real_git(repo, *args, **kwargs)
        finally:
            took = time.perf_counter() - start
            parts.add("git", took)
            parts.add(f"git {args[0]}", took)

    with contextlib.ExitStack() as stack:
        for module in (change, changejob, review_hash, safety, commit, verify):
            stack.enter_context(mock.patch.object(module, "git", git))
        stack.enter_context(
            mock.patch.object(safety, "_detect", timed(parts, "secrets", safety._detect))
        )
        checked = timed(parts, "safety", safety.check_change)
        stack.enter_context(mock.patch("taskyard.run.change.check_change", checked))
        stack.enter_context(
            mock.patch.object(store, "enter_gate", timed(parts, "store", store.enter_gate))
        )
        yield


# --- one change -------------------------------------------------------------------------------


def sh(*args: str, cwd: Path) -> None:
    subprocess.run(args, cwd=cwd, check=True, capture_output=True)


def template_repo(where: Path) -> Path:
    repo = where / "template"
    repo.mkdir()
    sh("git", "init", "-q", "-b", "main", cwd=repo)
    sh("git", "config", "user.email", "dev@example.com", cwd=repo)
    sh("git", "config", "user.name", "Dev", cwd=repo)
    (repo / "app.py").write_text("def greet(name):\n    return 'hello ' + name\n")
    for n in range(FILES):
        (repo / f"mod_{n}.py").write_text(f"VALUE_{n} = {n}\n\n\ndef f_{n}():\n    return {n}\n")
    sh("git", "add", ".", cwd=repo)
    sh("git", "commit", "-q", "-m", "first", cwd=repo)
    return repo


def running_task(store: Store, task_id: str) -> None:
    """A task row brought to `running` as a run does: queued, attempt started, agent started."""
    now = time.time()
    spec = {"route": "pr-fix", "agent": "codex", "prompt": "default"}
    task = Task(
        id=task_id,
        event_id=f"e-{task_id}",
        route="pr-fix",
        agent="codex",
        status=TaskStatus.QUEUED,
        priority=Priority.P2,
        created_at=now,
        updated_at=now,
        workflow_id=f"task-{task_id}",
        spec=spec,
    )
    store.record_routing([], [task])
    for kind in (Kind.START_ATTEMPT, Kind.AGENT_STARTED):
        if not store.transition(task_id, kind, updated_at=now):
            raise SystemExit(f"task {task_id}: transition {kind} refused")


def _report(result: dict[str, Any], session: str) -> RunReport:
    now = datetime.now(UTC)
    outcome = AgentOutcome(True, result, None, Usage(100, 0, 20, 0, 0.01), 1, session)
    return RunReport(RunStatus.SUCCEEDED, None, 0, outcome, now, now, 123)


def scripted_agents(repo: Path, parts: Parts) -> change.AgentCall:
    """Agents that answer at once; implement edits app.py; reviewers approve."""

    async def call(
        agent: str, template: str, round_: int, schema: Mapping[str, Any], resume: str | None
    ) -> RunReport:
        start = time.perf_counter()
        if template == "_change-plan":
            found = _report({"plan": "1. use an f-string", "summary": "plan"}, IMPLEMENTER_THREAD)
        elif template == "_change-implement":
            (repo / "app.py").write_text("def greet(name):\n    return f'hello {name}'\n")
            found = _report({"title": "Use an f-string", "summary": "greet"}, IMPLEMENTER_THREAD)
        else:
            answer = {"verdict": "approve", "findings": [], "summary": "fine"}
            found = _report(answer, REVIEWER_SESSION)
        parts.add("agents", time.perf_counter() - start)
        return found

    return call


@dataclass
class Prepared:
    task_id: str
    dirs: TaskDirs
    repo: Path


def prepare(store: Store, root: Path, template: Path, n: int) -> Prepared:
    task_id = f"c{n}-{uuid.uuid4().hex[:6]}"
    running_task(store, task_id)
    dirs = TaskDirs.layout(root, task_id, with_repo=True)
    dirs.create()
    assert dirs.repo is not None
    shutil.copytree(template, dirs.repo, symlinks=True)
    return Prepared(task_id, dirs, dirs.repo)


def job_for(job: Prepared, parts: Parts, limits: Limits) -> ChangeJob:
    async def tests() -> TestReport:
        start = time.perf_counter()
        try:
            gate = GateSettings(timeout_seconds=30)
            return await run_tests(["true"], job.repo, job.dirs, limits, ENV, gate)
        finally:
            parts.add("tests", time.perf_counter() - start)

    return ChangeJob(
        task_id=job.task_id,
        agent="codex",
        reviewer="claude",
        gates=tuple(Gate),
        repo=job.repo,
        context_dir=job.dirs.context,
        output_dir=job.dirs.outputs,
        call=scripted_agents(job.repo, parts),
        run_tests=tests,
        deliver=None,
    )


async def one_change(store: Store, job: Prepared, limits: Limits) -> tuple[float, Parts]:
    """The change's overhead in seconds (the run less the agents' time) and its parts."""
    parts = Parts()
    with timing(parts, store):
        run = ChangeRun(store).run(job_for(job, parts, limits))
        start = time.perf_counter()
        ending = await run
        took = time.perf_counter() - start
    if ending.status is not TaskStatus.SUCCEEDED:
        raise SystemExit(f"change {job.task_id} did not succeed: {ending.reason}")
    return took - parts.seconds.get("agents", 0.0), parts


# --- a database's run -------------------------------------------------------------------------


async def run(url: str, tmp: Path, count: int, mode: SandboxMode) -> dict[str, Any]:
    store = SQLStore.open(url)
    try:
        store.migrate()
        template = template_repo(tmp)
        root = tmp / "workspaces"
        jobs = [prepare(store, root, template, n) for n in range(count + 1)]
        sandbox = SandboxSettings(mode=mode, hidden=(tmp / "home",))
        limits = Limits(kill_grace_seconds=0.5, sandbox=sandbox)
        cold, _ = await one_change(store, jobs[0], limits)
        results = [await one_change(store, job, limits) for job in jobs[1:]]
    finally:
        store.close()
    return {"cold": cold, "totals": [t for t, _ in results], "parts": [p for _, p in results]}


# --- floors -----------------------------------------------------------------------------------


def floors(tmp: Path, repeat: int) -> dict[str, float]:
    """What the parts cost alone, in ms: one git process; importing detect-secrets in a fresh
    interpreter (less the interpreter's own start); one scan of a one-line file, warm."""
    repo = template_repo(tmp)
    found: dict[str, float] = {}
    start = time.perf_counter()
    for _ in range(repeat):
        review_hash.git(repo, "rev-parse", "HEAD")
    found["git"] = (time.perf_counter() - start) * 1000 / repeat
    bare = _python_ms("pass", 5)
    found["python"] = bare
    found["import"] = _python_ms("import detect_secrets.core.scan, detect_secrets.settings", 5)
    found["import"] -= bare
    from detect_secrets.core.scan import scan_file
    from detect_secrets.settings import default_settings

    target = tmp / "app.py"
    target.write_text("    return f'hello {name}'\n")
    with default_settings():
        list(scan_file(str(target)))  # first scan builds the plugins
    start = time.perf_counter()
    for _ in range(repeat):
        with default_settings():
            pass
    found["settings"] = (time.perf_counter() - start) * 1000 / repeat
    start = time.perf_counter()
    for _ in range(repeat):
        with default_settings():
            list(scan_file(str(target)))
    found["scan"] = (time.perf_counter() - start) * 1000 / repeat
    return found


def _python_ms(code: str, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        best = min(best, (time.perf_counter() - start) * 1000)
    return best


# --- printing ---------------------------------------------------------------------------------


def _ms(values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return (
        f"median {pct(ms, 0.5):.1f} ms, p90 {pct(ms, 0.9):.1f} ms, max {max(ms):.1f} ms "
        f"(n={len(ms)})"
    )


def _by_command(parts: list[Parts]) -> str:
    def median(part: str, table: str) -> float:
        return pct([float(getattr(p, table).get(part, 0)) for p in parts], 0.5)

    commands = {k for p in parts for k in p.seconds if k.startswith("git ")}
    ordered = sorted(commands, key=lambda c: median(c, "seconds"), reverse=True)
    return ", ".join(
        f"{c.removeprefix('git ')} {median(c, 'seconds') * 1000:.1f} ({median(c, 'calls'):.0f}x)"
        for c in ordered
    )


def show(kind: str, found: dict[str, Any]) -> None:
    totals: list[float] = found["totals"]
    parts: list[Parts] = found["parts"]
    print(f"{kind}:")
    print(f"  gate overhead per change: {_ms(totals)}")
    print(f"  first change (cold imports, not counted): {found['cold'] * 1000:.1f} ms")
    names = {
        "store": "store writes (enter_gate: task row + audit entry)",
        "git": "git processes (all, incl. those of the safety check and commit)",
        "secrets": "detect-secrets scan (_detect)",
        "safety": "safety check (check_change: its git diffs + the scan)",
        "tests": "test gate (run_tests: `true`)",
        "agents": "scripted agents (subtracted)",
    }
    for part, name in names.items():
        values = [p.seconds.get(part, 0.0) for p in parts]
        calls = pct([float(p.calls.get(part, 0)) for p in parts], 0.5)
        print(f"  {name}, {calls:.0f} calls: {_ms(values)}")
    print(f"    git by command, median ms (calls): {_by_command(parts)}")
    rest = [
        t - sum(p.seconds.get(k, 0.0) for k in PARTS if k != "agents")
        for t, p in zip(totals, parts, strict=True)
    ]
    print(f"  the rest (thread hops, files, hashing, Python): {_ms(rest)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="sqlite, postgres or both (comma-separated)")
    parser.add_argument("--changes", type=int, default=50)
    parser.add_argument("--sandbox", choices=["none", "bwrap"], default="none")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    kinds = [k for k in ("sqlite", "postgres") if not args.only or k in args.only.split(",")]
    print(f"load before: {os.getloadavg()[0]:.2f} (1-min average), sandbox {args.sandbox}")
    dbs = Databases(args.pg)
    try:
        for kind in kinds:
            with tempfile.TemporaryDirectory(prefix=f"bench-gates-{kind}-") as name:
                tmp = Path(name)
                url = (
                    dbs.create(f"bench_gates_{uuid.uuid4().hex[:8]}")
                    if kind == "postgres"
                    else f"sqlite:///{tmp / 'taskyard.db'}"
                )
                found = asyncio.run(run(url, tmp, args.changes, SandboxMode(args.sandbox)))
            show(kind, found)
    finally:
        dbs.drop_all()
    with tempfile.TemporaryDirectory(prefix="bench-gates-floors-") as name:
        floor = floors(Path(name), 50)
    print("floors (each alone):")
    print(f"  one git process: {floor['git']:.1f} ms")
    print(
        f"  importing detect-secrets: {floor['import']:.0f} ms "
        f"(fresh interpreter {floor['python']:.0f} ms aside; once per process)"
    )
    print(f"  detect-secrets default_settings() alone: {floor['settings']:.2f} ms")
    print(f"  detect-secrets scan of a one-line file (with settings): {floor['scan']:.2f} ms")
    print(f"load after: {os.getloadavg()[0]:.2f} (1-min average)")


if __name__ == "__main__":
    main()
