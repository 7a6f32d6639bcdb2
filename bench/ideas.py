"""Ideas benchmark: what the ideas' scheduler adds between a task becoming ready and its agent
starting, and how long a 100-task plan takes to be scheduled.

    python -m bench.ideas [--only sqlite,postgres] [--plans 5] [--runs 20] [--sandbox auto]

For each database, in this process, with a local bare repository as the idea's remote and the
real `IdeaScheduler` (`IdeaGit` against the bare repository, as tests/integration's
test_idea_scheduler builds it):
1. planned → scheduled: an idea whose planner has succeeded with a 100-task plan, two shapes
   (100 independent tasks; 10 waves of 10, of which the first 10 are ready), `--plans` ideas
   each; one `IdeaScheduler.advance` is timed, from the planner's success to every ready task
   a queued taskyard task (`record_routing`) marked on the idea (`task_scheduled`). Its parts
   are timed by wrapping the store's methods and the idea's git on their instances.
2. ready → agent started: `--runs` ideas with the plan A → B (and, apart, A → B, C: the
   diamond's middle). A's run is played (a reviewed commit pushed to its branch, the task
   ended `succeeded`) outside the clock; then one `advance` integrates A and makes B a task,
   the real `Dispatcher` (woken by the scheduler's `on_tasks`, as in the worker) hands it to a
   `MemoryQueue` and the real `TaskExecutor` runs it: workspace (a worktree of the mirror of
   the bare repository), context, prompt, then the change route's first gate starts a
   `command` agent that exits at once. Ready is the moment A's integration is written on the
   idea (`update_idea_task(integrated=...)`); agent started is the task's `started_at`, which
   the executor stamps when the agent's process is spawned. The one run before the measured
   ones pays the mirror's clone and the imports and is shown apart.
   Not in this path: the durable DBOS queue `taskyard serve` uses (its hand-over is measured
   by bench.pipeline, event → agent started).
Targets (issue 16): ready → agent started p50 ≤ 100 ms; 100-task DAG planned-to-scheduled
≤ 1 s; on SQLite and PostgreSQL. Prints numbers; never fails on a miss.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

from bench.gates import Parts
from bench.pipeline import pct
from bench.servers import Databases
from taskyard.config import QueueConfig, RetryConfig, Settings
from taskyard.idea import Idea, IdeaStatus
from taskyard.ideas.integrate import IdeaGit, task_branch
from taskyard.ideas.scheduler import IdeaScheduler
from taskyard.ideas.service import IdeaService
from taskyard.ideas.tasks import task_id_of
from taskyard.lifecycle import Kind, workflow_id
from taskyard.models import Priority, Task, TaskStatus
from taskyard.platforms import Platforms
from taskyard.queue.dispatcher import Dispatcher
from taskyard.queue.jobs import ROUTE_JOB, JobContext, JobRuntime
from taskyard.queue.memory import MemoryQueue
from taskyard.review.commit import commit_with_review_hash
from taskyard.review.hash import staged_hash
from taskyard.run import mirrors
from taskyard.run.delivery import GitRemote
from taskyard.run.executor import TaskExecutor
from taskyard.run.taskspec import ContextGatherer
from taskyard.run.workspace import Workspaces
from taskyard.store import SQLStore, Store

REPO = "acme/api"
SESSION = "6f1c2a9e-4b7d-4c1e-9a55-0d2e8b7f3c11"
WHO = "Dev <dev@example.com>"
AGENT = (
    'printf \'%s\' \'{"success":true,"actions":[],"analysis":"","summary":"ok"}\' '
    '> "$OUTPUT_DIR/result.json"'
)
STORE_CALLS = (
    "record_routing",
    "update_idea_task",
    "note_idea",
    "idea_transition",
    "add_idea_plan",
    "set_idea_tasks",
    "idea_tasks",
    "get_task",
    "get_idea",
)


# --- the world: a bare repository, settings, a store -----------------------------------------


def sh(*args: str, cwd: Path) -> str:
    done = subprocess.run(args, cwd=cwd, check=True, capture_output=True, text=True)
    return done.stdout.strip()


def bare_repo(tmp: Path) -> Path:
    seed = tmp / "seed"
    seed.mkdir()
    sh("git", "init", "-q", "-b", "main", cwd=seed)
    (seed / "README").write_text("hello\n")
    sh("git", "add", ".", cwd=seed)
    sh("git", "-c", "user.name=D", "-c", "user.email=d@x", "commit", "-qm", "first", cwd=seed)
    remote = tmp / "remote.git"
    sh("git", "clone", "-q", "--bare", str(seed), str(remote), cwd=tmp)
    return remote


def settings_for(tmp: Path, bare: Path, sandbox: str) -> Settings:
    return Settings.model_validate(
        {
            "home": tmp / "home",
            "agents": {"instant": {"kind": "command", "argv": ["/bin/sh", "-c", AGENT]}},
            "routes": [],
            "ideas": {"planner_agent": "instant", "max_tasks": 100},
            "runs": {"repo_urls": {REPO: str(bare)}, "sandbox": sandbox,
                     "kill_grace_seconds": 0.5, "concurrency": 3},
        }
    )  # fmt: skip


def task(key: str, *deps: str) -> dict[str, Any]:
    return {"id": key, "title": f"do {key}", "stage": "build", "depends_on": list(deps),
            "acceptance_criteria": [f"{key} works"], "risk_labels": [], "estimate": "1h",
            "files": [f"{key}.py"], "heavy": False}  # fmt: skip


def plan(tasks: list[dict[str, Any]]) -> dict[str, Any]:
    return {"tasks": tasks, "milestones": [], "risks": [], "summary": "a plan"}


def independent(n: int) -> dict[str, Any]:
    return plan([task(f"t{i:03d}") for i in range(n)])


def waves(count: int, width: int) -> dict[str, Any]:
    """Wave w's tasks each depend on every task of wave w-1."""
    tasks = []
    for w in range(count):
        before = [f"w{w - 1}t{i}" for i in range(width)] if w else []
        tasks += [task(f"w{w}t{i}", *before) for i in range(width)]
    return plan(tasks)


def submit(store: Store) -> Idea:
    return IdeaService(store).submit({"goal": "bench", "repo": REPO}, {"platform": "cli"})


def end_task(store: Store, task_id: str, result: dict[str, Any]) -> None:
    """The task's run played: attempt, agent, success (the lifecycle's own transitions)."""
    now = time.time()
    for kind, fields in (
        (Kind.START_ATTEMPT, {"attempts": 1, "worker": "bench"}),
        (Kind.AGENT_STARTED, {"started_at": now}),
        (Kind.SUCCEED, {"result": result, "finished_at": now}),
    ):
        if not store.transition(task_id, kind, updated_at=now, **fields):
            raise SystemExit(f"task {task_id}: transition {kind} refused")


async def planned(store: Store, scheduler: IdeaScheduler, answer: dict[str, Any]) -> Idea:
    """A new idea whose planner (plan v1) succeeded with `answer`; not yet advanced past it."""
    idea = submit(store)
    moved = await scheduler.advance(idea.id)
    if moved.status is not IdeaStatus.PLANNING:
        raise SystemExit(f"idea {idea.id}: {moved.status} after its first advance")
    end_task(store, task_id_of(idea.id, "plan-v1"), {"plan": answer})
    return idea


# --- 1. planned → scheduled ------------------------------------------------------------------


@contextlib.contextmanager
def timing(parts: Parts, store: Store, git: IdeaGit) -> Iterator[None]:
    """Time the scheduler's store calls and its git (on these instances only)."""
    with contextlib.ExitStack() as stack:
        for name in STORE_CALLS:
            timed_call = _timed(parts, f"store {name}", getattr(store, name))
            stack.enter_context(mock.patch.object(store, name, timed_call))
        for name in ("start", "heads", "integrate"):
            real = getattr(git, name)
            stack.enter_context(mock.patch.object(git, name, _timed_async(parts, name, real)))
        yield


def _timed(parts: Parts, part: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            parts.add(part, time.perf_counter() - start)

    return wrapper


def _timed_async(parts: Parts, part: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return await fn(*args, **kwargs)
        finally:
            parts.add(f"git {part}", time.perf_counter() - start)

    return wrapper


async def plan_to_scheduled(
    store: Store, scheduler: IdeaScheduler, git: IdeaGit, answer: dict[str, Any], ready: int
) -> tuple[float, Parts]:
    idea = await planned(store, scheduler, answer)
    parts = Parts()
    with timing(parts, store, git):
        start = time.perf_counter()
        moved = await scheduler.advance(idea.id)
        took = time.perf_counter() - start
    scheduled = [i for i in store.idea_tasks(idea.id) if i.task_id]
    if moved.status is not IdeaStatus.RUNNING or len(scheduled) != ready:
        raise SystemExit(f"idea {idea.id}: {moved.status}, {len(scheduled)} of {ready} scheduled")
    return took, parts


# --- 2. ready → agent started ----------------------------------------------------------------


@dataclass
class Stamps:
    """Wall-clock moments (time.time, as the executor stamps `started_at`) of one run."""

    ready: float = 0.0  # the dependency's integration written on the idea
    queued: dict[str, float] = field(default_factory=dict)  # record_routing returned
    picked: dict[str, float] = field(default_factory=dict)  # the executor took it
    prepared: dict[str, float] = field(default_factory=dict)  # its workspace ready
    advance: Parts = field(default_factory=Parts)  # the timed advance's parts
    git: list[tuple[float, float, str]] = field(default_factory=list)  # the mirrors' git runs


@dataclass(frozen=True)
class Moments:
    """One dependent's run: its moments after ready (ms), the advance's parts, and the mirrors'
    git processes (command, ms) that ended before its workspace was ready."""

    after_ready: dict[str, float]
    advance: Parts
    git: list[tuple[str, float]]

    def git_by(self) -> dict[str, float]:
        found: dict[str, float] = {}
        for command, took in self.git:
            found[command] = found.get(command, 0.0) + took
        return found


@contextlib.contextmanager
def stamping(stamps: Stamps, store: Store, workspaces: Workspaces) -> Iterator[None]:
    """Stamp the moments of a run where they happen: the store's writes and the workspace
    on these instances, every git process of the mirrors (this process only)."""
    real_update, real_routing, real_prepare = (
        store.update_idea_task,
        store.record_routing,
        workspaces.prepare,
    )

    def update_idea_task(*args: Any, **kwargs: Any) -> Any:
        done = real_update(*args, **kwargs)
        if kwargs.get("integrated"):
            stamps.ready = time.time()
        return done

    def record_routing(decisions: Any, tasks: Any) -> Any:
        done = real_routing(decisions, tasks)
        for t in tasks:
            stamps.queued[t.id] = time.time()
        return done

    async def prepare(task_id: str, repo: Any = None) -> Any:
        dirs = await real_prepare(task_id, repo)
        stamps.prepared[task_id] = time.time()
        return dirs

    async def run_git(args: Any, **kwargs: Any) -> Any:
        start = time.time()
        try:
            return await real_git(args, **kwargs)
        finally:
            command = args[2] if args[0] == "-C" else args[0]
            stamps.git.append((start, time.time(), command))

    real_git = mirrors.run_git
    with contextlib.ExitStack() as stack:
        stack.enter_context(mock.patch.object(mirrors, "run_git", run_git))
        stack.enter_context(mock.patch.object(store, "update_idea_task", update_idea_task))
        stack.enter_context(mock.patch.object(store, "record_routing", record_routing))
        stack.enter_context(mock.patch.object(workspaces, "prepare", prepare))
        yield


@dataclass
class Runner:
    """The worker's run stage in this process: dispatcher → memory queue → executor."""

    store: Store
    settings: Settings
    tmp: Path
    bare: Path
    git: IdeaGit
    executor: TaskExecutor
    dispatcher: Dispatcher
    scheduler: IdeaScheduler
    queue: MemoryQueue
    stamps: Stamps = field(default_factory=Stamps)

    async def finish_played(self, idea: Idea, key: str) -> None:
        """Task `key`'s run played outside the clock: a reviewed commit on its base pushed to
        its branch, the task ended `succeeded` with it."""
        item = next(i for i in self.store.idea_tasks(idea.id) if i.key == key)
        assert item.task_id is not None
        spec = self.store.get_task(item.task_id).spec
        tree = self.tmp / f"wt-{idea.id}-{key}"
        sh("git", "clone", "-q", str(self.bare), str(tree), cwd=self.tmp)
        sh("git", "checkout", "-q", "--detach", spec["repo"]["sha"], cwd=tree)
        (tree / f"{key}.py").write_text(f"{key} = True\n")
        sh("git", "add", ".", cwd=tree)
        sha = commit_with_review_hash(tree, f"task {key}\n", staged_hash(tree), SESSION, WHO, WHO)
        await self.git.push_task(REPO, tree, sha, task_branch(idea.id, key))
        result = {"success": True, "actions": [], "analysis": {"commit": sha}, "summary": key}
        end_task(self.store, item.task_id, result)

    async def one(self, answer: dict[str, Any], dependents: list[str]) -> list[Moments]:
        """A → dependents: A played, then the timed advance and the dependents' runs up to
        their agents' start; the moments of each dependent, relative to ready (ms)."""
        idea = await planned(self.store, self.scheduler, answer)
        await self.scheduler.advance(idea.id)  # A scheduled; the dispatcher is not running
        await self.finish_played(idea, "A")
        self.stamps = Stamps()
        await self.dispatcher.start()
        await asyncio.sleep(0.2)  # its first pass (housekeeping, heartbeat) done
        try:
            with stamping(self.stamps, self.store, self.executor.workspaces):
                with timing(self.stamps.advance, self.store, self.git):
                    await self.scheduler.advance(idea.id)
                ids = [task_id_of(idea.id, f"task-{k}") for k in dependents]
                started = await self._wait_started(ids, 60)
                await self._wait_ended(ids, 120)
        finally:
            await self.dispatcher.stop()
        s, ms = self.stamps, 1000.0
        return [
            Moments(
                {
                    "queued": (s.queued[t] - s.ready) * ms,
                    "picked": (s.picked[t] - s.ready) * ms,
                    "prepared": (s.prepared[t] - s.ready) * ms,
                    "started": (started[t] - s.ready) * ms,
                },
                s.advance,
                [(c, (b - a) * ms) for a, b, c in s.git if b <= s.prepared[t]],
            )
            for t in ids
        ]

    async def _wait_started(self, ids: list[str], seconds: float) -> dict[str, float]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            tasks = [await asyncio.to_thread(self.store.get_task, t) for t in ids]
            if all(t.started_at is not None for t in tasks):
                return {t.id: float(t.started_at or 0.0) for t in tasks}
            await asyncio.sleep(0.005)
        raise SystemExit(f"agents not started within {seconds} s: {ids}")

    async def _wait_ended(self, ids: list[str], seconds: float) -> None:
        """The executor idle again before the next run (how the tasks end is not measured)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            tasks = [await asyncio.to_thread(self.store.get_task, t) for t in ids]
            if all(t.status.terminal for t in tasks):
                await self.queue.drain()
                return
            await asyncio.sleep(0.02)
        raise SystemExit(f"tasks not ended within {seconds} s: {ids}")


def build_runner(store: Store, settings: Settings, tmp: Path, bare: Path) -> Runner:
    git = IdeaGit(GitRemote(lambda repo: str(bare)))
    executor = TaskExecutor(
        settings,
        store,
        Workspaces.from_settings(settings, os.environ),
        ContextGatherer(Platforms.from_settings(settings.platforms), 5),
        {"PATH": os.environ["PATH"]},
        "bench-worker",
    )
    runner: Runner

    async def run_task(task_id: str) -> str:
        runner.stamps.picked[task_id] = time.time()
        return await executor.run(task_id)

    async def no_routing(ctx: JobContext) -> None:
        return None  # the ideas' intake events: nothing to route here

    runtime = JobRuntime(store, {ROUTE_JOB: no_routing}, RetryConfig(), run_task=run_task)
    queue = MemoryQueue(runtime, concurrency=16)
    dispatcher = Dispatcher(
        store,
        queue,
        QueueConfig(),
        "bench-worker",
        task_room=executor.room,
        claim=executor.claim,
        release=executor.release,
    )
    scheduler = IdeaScheduler(settings, store, git, on_tasks=dispatcher.wake)
    runner = Runner(store, settings, tmp, bare, git, executor, dispatcher, scheduler, queue)
    return runner


# --- floors ----------------------------------------------------------------------------------


def bare_task(n: int) -> Task:
    now = time.time()
    task_id = f"floor-{uuid.uuid4().hex[:12]}-{n}"
    return Task(
        id=task_id,
        event_id=f"e-{task_id}",
        route="floor",
        agent="instant",
        status=TaskStatus.QUEUED,
        priority=Priority.P2,
        created_at=now,
        updated_at=now,
        workflow_id=workflow_id(task_id),
        spec={"route": "floor", "agent": "instant"},
    )


async def floors(store: Store, git: IdeaGit, count: int = 100) -> dict[str, float]:
    """In ms: `count` task rows written one transaction each (as `_schedule` does) and all in
    one `record_routing`; one `git ls-remote` of the idea's remote (`IdeaGit.heads`)."""
    found: dict[str, float] = {}
    singles = [bare_task(n) for n in range(count)]
    start = time.perf_counter()
    for t in singles:
        await asyncio.to_thread(store.record_routing, [], [t])
    found["singles"] = (time.perf_counter() - start) * 1000
    batch = [bare_task(n) for n in range(count)]
    start = time.perf_counter()
    await asyncio.to_thread(store.record_routing, [], batch)
    found["batch"] = (time.perf_counter() - start) * 1000
    took = []
    for _ in range(10):
        start = time.perf_counter()
        await git.heads(REPO)
        took.append((time.perf_counter() - start) * 1000)
    found["heads"] = pct(took, 0.5)
    return found


# --- a database's run -------------------------------------------------------------------------

SHAPES = {"100 independent": (independent(100), 100), "10 waves of 10": (waves(10, 10), 10)}
CHAIN = plan([task("A"), task("B", "A")])
DIAMOND_MIDDLE = plan([task("A"), task("B", "A"), task("C", "A")])


async def run(url: str, tmp: Path, plans: int, runs: int, sandbox: str) -> dict[str, Any]:
    store = SQLStore.open(url)
    try:
        store.migrate()
        bare = bare_repo(tmp)
        runner = build_runner(store, settings_for(tmp, bare, sandbox), tmp, bare)
        await runner.queue.start()
        found: dict[str, Any] = {"shapes": {}}
        found["cold"] = (await runner.one(CHAIN, ["B"]))[0]
        found["chain"] = [(await runner.one(CHAIN, ["B"]))[0] for _ in range(runs)]
        found["pair"] = [m for _ in range(max(runs // 2, 1))
                         for m in await runner.one(DIAMOND_MIDDLE, ["B", "C"])]  # fmt: skip
        await runner.queue.stop()
        # With the dispatcher stopped: the tasks these ideas schedule stay queued.
        for name, (answer, ready) in SHAPES.items():
            took = [await plan_to_scheduled(store, runner.scheduler, runner.git, answer, ready)
                    for _ in range(plans + 1)]  # fmt: skip
            found["shapes"][name] = took[1:]  # the first pays the imports and first queries
        found["floors"] = await floors(store, runner.git)
    finally:
        store.close()
    return found


# --- printing ---------------------------------------------------------------------------------


def _ms(values: list[float]) -> str:
    return (
        f"p50 {pct(values, 0.5):6.1f} ms, p90 {pct(values, 0.9):6.1f} ms, "
        f"max {max(values):6.1f} ms (n={len(values)})"
    )


def show_shapes(shapes: dict[str, list[tuple[float, Parts]]]) -> None:
    for name, took in shapes.items():
        totals = [t * 1000 for t, _ in took]
        print(f"  planned → scheduled, {name}: {_ms(totals)}")
        shown = _parts([p for _, p in took])
        print(f"    parts, median ms (calls; git start includes one heads): {shown}")


def _parts(parts: list[Parts]) -> str:
    names = sorted({k for p in parts for k in p.seconds})
    rows = sorted(
        ((pct([p.seconds.get(k, 0.0) * 1000 for p in parts], 0.5), k) for k in names),
        reverse=True,
    )
    return ", ".join(
        f"{k} {ms:.1f} ({pct([float(p.calls.get(k, 0)) for p in parts], 0.5):.0f}x)"
        for ms, k in rows
        if ms >= 0.5
    )


def show_runs(label: str, moments: list[Moments]) -> None:
    print(f"  ready → agent started, {label}:")
    names = {
        "queued": "scheduler: integrated → task row queued",
        "picked": "+ dispatcher → executor took it",
        "prepared": "+ workspace prepared (worktree)",
        "started": "+ context, prompt, gate, agent spawned = total",
    }
    for key, name in names.items():
        print(f"    {name:48s} {_ms([m.after_ready[key] for m in moments])}")
    parts = [m.advance for m in moments]
    print(f"    the advance's parts (integration included), median ms (calls): {_parts(parts)}")
    git = [sum(took for _, took in m.git) for m in moments]
    calls = pct([float(len(m.git)) for m in moments], 0.5)
    by = [m.git_by() for m in moments]
    commands = sorted({c for b in by for c in b})
    each = ", ".join(f"{c} {pct([b.get(c, 0.0) for b in by], 0.5):.1f}" for c in commands)
    print(f"    mirror git processes before the workspace was ready, {calls:.0f}: {_ms(git)}")
    print(f"      by command, median ms: {each}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="sqlite, postgres or both (comma-separated)")
    parser.add_argument("--plans", type=int, default=5, help="ideas per plan shape")
    parser.add_argument("--runs", type=int, default=20, help="ideas A → B")
    parser.add_argument("--sandbox", choices=["auto", "bwrap", "none"], default="auto")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # the run stage's lines; B's ending is not measured
    kinds = [k for k in ("sqlite", "postgres") if not args.only or k in args.only.split(",")]
    print(f"load before: {os.getloadavg()[0]:.2f} (1-min average), sandbox {args.sandbox}")
    dbs = Databases(args.pg)
    try:
        for kind in kinds:
            with tempfile.TemporaryDirectory(prefix=f"bench-ideas-{kind}-") as name:
                tmp = Path(name)
                url = (
                    dbs.create(f"bench_ideas_{uuid.uuid4().hex[:8]}")
                    if kind == "postgres"
                    else f"sqlite:///{tmp / 'taskyard.db'}"
                )
                found = asyncio.run(run(url, tmp, args.plans, args.runs, args.sandbox))
            print(f"{kind}:")
            show_shapes(found["shapes"])
            cold = {k: round(v, 1) for k, v in found["cold"].after_ready.items()}
            print(f"  first A → B (mirror clone, imports; not counted), ms: {json.dumps(cold)}")
            show_runs("A → B, one task ready", found["chain"])
            show_runs("A → B, C, two ready at once (each)", found["pair"])
            f = found["floors"]
            print(f"  floors: 100 task rows one transaction each {f['singles']:.1f} ms, in one "
                  f"record_routing {f['batch']:.1f} ms; one git ls-remote (heads) "
                  f"{f['heads']:.1f} ms")  # fmt: skip
    finally:
        dbs.drop_all()
    print(f"load after: {os.getloadavg()[0]:.2f} (1-min average)")


if __name__ == "__main__":
    main()
