"""The scheduler of ideas: it looks at each live idea and takes its next steps, and nothing it
does depends on having seen the step before, so it can run again at any time (after a task
ends, every few seconds, and after a crash) and finds where each idea is:

- registered: its planner task (plan version 1) is made; → planning.
- planning: once the planner succeeded, its plan is checked (`taskyard.ideas.plan`); a plan
  with errors is kept with them and a planner of the next version is told them (→ planning
  again), up to `ideas.max_replans`, then the idea fails with the reasons; a valid plan
  becomes the idea's tasks (→ plan_ready), its branch is started (→ running).
- running: each task whose dependencies are all integrated becomes a change task on the
  idea's branch (most urgent first, within the heavy-task limits); each one that succeeded is
  integrated, in dependency order; one that failed blocks its dependents, and the idea fails
  when nothing else can run; its spend over its budget pauses it (no new task starts).
- review → integration → completed: every task integrated, one pull request opens from the
  idea's branch (when taskyard can write to GitHub).

Every decision goes into the idea's event log (`Store.idea_transition`, `Store.note_idea`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from taskyard.config import Settings
from taskyard.exceptions import NotFound, TaskyardError
from taskyard.idea import EXECUTION, PLAN, REVIEW, TELEMETRY, Idea, IdeaStatus, IdeaStep, IdeaTask
from taskyard.ideas import plan as plans
from taskyard.ideas.integrate import (
    DEFAULT,
    RESERVED_KEY,
    IdeaGit,
    IntegrationConflict,
    idea_branch,
    milestone_branch,
)
from taskyard.ideas.tasks import change_task, planner_task, task_id_of
from taskyard.models import Task, TaskStatus
from taskyard.store.base import Store

log = logging.getLogger(__name__)

# (repo, head branch, base branch, title, body) → the pull request's URL
OpenPr = Callable[[str, str, str, str, str], Awaitable[str | None]]
# (idea, text): say it where the idea came from
Tell = Callable[[Idea, str], Awaitable[None]]
MAX_REDOS = 2  # a task whose change conflicts at integration is done again this often
_LIVE = (
    IdeaStatus.REGISTERED,
    IdeaStatus.PLANNING,
    IdeaStatus.PLAN_READY,
    IdeaStatus.RUNNING,
    IdeaStatus.REVIEW,
    IdeaStatus.INTEGRATION,
)


class IdeaScheduler:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        git: IdeaGit | None,
        *,
        open_pr: OpenPr | None = None,
        tell: Tell | None = None,
        on_tasks: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.store = store
        self.git = git
        self.open_pr = open_pr
        self.tell = tell
        self.on_tasks = on_tasks
        self.clock = clock
        self._lock = asyncio.Lock()

    async def advance_all(self) -> None:
        """Every live idea, one after the other (one pass at a time)."""
        async with self._lock:
            for status in _LIVE:
                for idea in await asyncio.to_thread(self.store.list_ideas, status, 1000):
                    try:
                        await self._advance(idea)
                    except TaskyardError as exc:  # this idea waits; the others go on
                        log.warning("idea not advanced", extra={"idea": idea.id, "error": str(exc)})

    async def advance(self, idea_id: str) -> Idea:
        async with self._lock:
            idea = await asyncio.to_thread(self.store.get_idea, idea_id)
            await self._advance(idea)
            return await asyncio.to_thread(self.store.get_idea, idea_id)

    async def _advance(self, idea: Idea) -> None:
        if idea.status is IdeaStatus.REGISTERED:
            idea = await self._plan(idea, 1, [])
        if idea.status is IdeaStatus.PLANNING:
            idea = await self._planned(idea)
        if idea.status is IdeaStatus.PLAN_READY:
            idea = await self._start(idea)
        if idea.status is IdeaStatus.RUNNING:
            idea = await self._run(idea)
        if idea.status is IdeaStatus.REVIEW:
            idea = await self._step(idea, IdeaStep.INTEGRATE, "integration", {})
        if idea.status is IdeaStatus.INTEGRATION:
            await self._finish(idea)

    # --- planning ------------------------------------------------------------------------

    async def _plan(self, idea: Idea, version: int, errors: list[str]) -> Idea:
        now = self.clock()
        schema = plans.PLAN_SCHEMA
        task, decision = planner_task(idea, version, errors, self.settings, schema, now)
        await asyncio.to_thread(self.store.record_routing, [decision], [task])
        self.on_tasks()
        step = IdeaStep.PLAN if version == 1 else IdeaStep.REPLAN
        data = {"task_id": task.id, "version": version, "errors": errors}
        return await self._step(idea, step, "planning", data, plan_version=version)

    async def _planned(self, idea: Idea) -> Idea:
        version = max(idea.plan_version, 1)
        task = await self._task(task_id_of(idea.id, f"plan-v{version}"))
        if task is None or not task.status.terminal:
            return idea
        if task.status is not TaskStatus.SUCCEEDED:
            return await self._fail(idea, f"the planner failed: {task.reason or task.status}")
        plan = (task.result or {}).get("plan")
        plan = plan if isinstance(plan, dict) else {}
        errors = plans.check_plan(plan, self.settings.ideas.max_tasks)
        errors += [
            f"task id {RESERVED_KEY!r} is reserved (the idea's own branch): name it otherwise"
            for t in plan.get("tasks") or ()
            if isinstance(t, dict) and t.get("id") == RESERVED_KEY
        ]
        now = self.clock()
        await asyncio.to_thread(self.store.add_idea_plan, idea.id, version, plan, errors, now)
        if errors:
            if version > self.settings.ideas.max_replans:
                why = f"plan version {version} still has errors: " + "; ".join(errors[:5])
                return await self._fail(idea, why)
            return await self._plan(idea, version + 1, errors)
        items = plans.tasks_of(idea.id, version, plan)
        await asyncio.to_thread(self.store.set_idea_tasks, idea.id, items)
        data = {"version": version, "tasks": [t.key for t in items]}
        return await self._step(idea, IdeaStep.PLAN_READY, "plan_ready", data)

    async def _start(self, idea: Idea) -> Idea:
        if self.git is None or not idea.repo:
            return await self._fail(idea, "the idea names no repository taskyard can reach")
        head = await self.git.start(idea.repo, idea.id)
        data = {"branch": idea_branch(idea.id), "base": head}
        return await self._step(idea, IdeaStep.RUN, "running", data, branch=idea_branch(idea.id))

    # --- running ---------------------------------------------------------------------------

    async def _run(self, idea: Idea) -> Idea:
        items = await asyncio.to_thread(self.store.idea_tasks, idea.id)
        tasks = {i.key: await self._task(i.task_id) if i.task_id else None for i in items}
        spent = sum((t.cost_usd or 0.0) for t in tasks.values() if t is not None)
        head = await self._integrate_done(idea, items, tasks)
        if self.settings.ideas.pr_per_milestone:
            await self._milestones(idea)
        items = await asyncio.to_thread(self.store.idea_tasks, idea.id)
        if all(i.integrated for i in items):
            return await self._step(idea, IdeaStep.REVIEW, "review", {"tasks": len(items)})
        failed = {k for k, t in tasks.items() if t is not None and _failed(t)}
        await self._note_failures(idea, failed, tasks)
        blocked = _blocked(items, failed)
        budget = idea.budget_usd if idea.budget_usd is not None else self.settings.ideas.budget_usd
        if budget is not None and spent >= budget:
            why = f"its budget of ${budget:.2f} is reached (${spent:.2f} spent)"
            paused = await self._step(idea, IdeaStep.PAUSE, "budget_reached", {"spent": spent},
                                      reason=why)  # fmt: skip
            await self._say(paused, f"taskyard paused this idea: {why}.")
            return paused
        started = await self._schedule(idea, items, failed | blocked, head)
        running = any(t is not None and not t.status.terminal for t in tasks.values())
        if failed and not running and not started:
            why = "; ".join(_failure(k, tasks[k]) for k in sorted(failed))
            if blocked:
                why += f" (blocked: {', '.join(sorted(blocked))})"
            return await self._fail(idea, why)
        return idea

    async def _note_failures(
        self, idea: Idea, failed: set[str], tasks: dict[str, Task | None]
    ) -> None:
        """Each failed task once in the idea's log (and on `taskyard.execution`)."""
        if not failed:
            return
        events = await asyncio.to_thread(self.store.idea_events, idea.id)
        noted = {(e.data.get("task_id")) for e in events if e.kind == "task_failed"}
        for key in sorted(failed):
            task = tasks[key]
            if task is not None and task.id not in noted:
                data = {"key": key, "task_id": task.id, "status": str(task.status),
                        "reason": task.reason}  # fmt: skip
                await asyncio.to_thread(
                    self.store.note_idea, idea.id, EXECUTION, "task_failed", data, self.clock()
                )

    async def _schedule(
        self, idea: Idea, items: list[IdeaTask], stuck: set[str], head: str | None
    ) -> int:
        """Start each ready task: its dependencies integrated, within the heavy limits, on
        the idea branch's `head` (None: asked of the remote)."""
        integrated = {i.key for i in items if i.integrated}
        running = {i.key for i in items if i.task_id and not i.integrated}
        heavy_now = sum(1 for i in items if i.key in running and i.spec.get("heavy"))
        ready: list[IdeaTask] = []
        for item in items:
            if item.task_id or item.key in stuck or not set(item.depends_on) <= integrated:
                continue
            if item.spec.get("heavy"):
                if not await self._heavy_room(heavy_now):
                    continue
                heavy_now += 1
            ready.append(item)
        if not ready:
            return 0
        if head is None:
            assert self.git is not None and idea.repo
            head = (await self.git.heads(idea.repo))[idea_branch(idea.id)]
        made = [change_task(idea, item, head, self.settings, self.clock()) for item in ready]
        decisions, tasks = [d for _, d in made], [t for t, _ in made]
        await asyncio.to_thread(self.store.record_routing, decisions, tasks)  # one write
        started = 0
        for item, task in zip(ready, tasks, strict=True):
            if await asyncio.to_thread(
                self.store.update_idea_task, idea.id, item.key, task_id=task.id,
                branch=f"{idea_branch(idea.id).rsplit('/', 1)[0]}/{item.key}",
            ):  # fmt: skip
                data = {"key": item.key, "task_id": task.id, "base": head}
                await asyncio.to_thread(
                    self.store.note_idea, idea.id, EXECUTION, "task_scheduled", data, self.clock()
                )
                started += 1
        if started:
            self.on_tasks()
        return started

    async def _heavy_room(self, in_this_idea: int) -> bool:
        """Whether one more heavy task may start: under `ideas.heavy_limit_per_idea` in its
        idea and under `ideas.heavy_limit` over every running idea."""
        if in_this_idea >= self.settings.ideas.heavy_limit_per_idea:
            return False
        return await asyncio.to_thread(self._heavy_running) < self.settings.ideas.heavy_limit

    def _heavy_running(self) -> int:
        running = 0
        for idea in self.store.list_ideas(IdeaStatus.RUNNING, 1000):
            for item in self.store.idea_tasks(idea.id):
                if item.spec.get("heavy") and item.task_id and not item.integrated:
                    task = self.store.get_task(item.task_id)
                    running += 0 if task.status.terminal else 1
        return running

    async def _integrate_done(
        self, idea: Idea, items: list[IdeaTask], tasks: dict[str, Task | None]
    ) -> str | None:
        """Integrate each succeeded task whose dependencies are integrated, in plan order;
        the idea branch's head after the last one (None: none was integrated)."""
        done = {i.key for i in items if i.integrated}
        head: str | None = None
        for item in sorted(items, key=lambda i: (len(i.depends_on), i.key)):
            task = tasks.get(item.key)
            if item.integrated or task is None or task.status is not TaskStatus.SUCCEEDED:
                continue
            if not set(item.depends_on) <= done:
                continue
            commit = ((task.result or {}).get("analysis") or {}).get("commit")
            if not isinstance(commit, str) or self.git is None or not idea.repo:
                continue
            try:
                head = await self.git.integrate(idea.repo, idea.id, item.key, commit)
            except IntegrationConflict as exc:
                await self._redo(idea, item, task, commit, str(exc))
                continue
            await asyncio.to_thread(self.store.update_idea_task, idea.id, item.key, integrated=head)
            data = {"key": item.key, "commit": commit, "head": head}
            await asyncio.to_thread(
                self.store.note_idea, idea.id, REVIEW, "task_integrated", data, self.clock()
            )
            done.add(item.key)
        return head

    async def _redo(self, idea: Idea, item: IdeaTask, task: Task, commit: str, error: str) -> None:
        """A change that no longer applies on the idea's branch is done again, as a fix task
        on the branch as it is now (at most `MAX_REDOS` times; then the task fails)."""
        redos = int((task.spec.get("idea") or {}).get("redo") or 0)
        data = {"key": item.key, "commit": commit, "error": error, "redo": redos + 1}
        await asyncio.to_thread(
            self.store.note_idea, idea.id, REVIEW, "integration_conflict", data, self.clock()
        )
        if redos >= MAX_REDOS:
            why = f"task {item.key}'s change still conflicts after {redos} redo(s): {error}"
            await self._fail(idea, why)
            return
        assert self.git is not None and idea.repo
        head = (await self.git.heads(idea.repo))[idea_branch(idea.id)]
        conflict = {"commit": commit, "error": error}
        fix, decision = change_task(
            idea, item, head, self.settings, self.clock(), redo=redos + 1, conflict=conflict
        )
        await asyncio.to_thread(self.store.record_routing, [decision], [fix])
        if await asyncio.to_thread(
            self.store.update_idea_task, idea.id, item.key, replaces=task.id, task_id=fix.id
        ):
            data = {"key": item.key, "task_id": fix.id, "base": head, "redo": redos + 1}
            await asyncio.to_thread(
                self.store.note_idea, idea.id, EXECUTION, "task_scheduled", data, self.clock()
            )
            self.on_tasks()

    # --- ending ----------------------------------------------------------------------------

    async def _milestones(self, idea: Idea) -> str | None:
        """With `ideas.pr_per_milestone`: each milestone of the plan, in order, once all its
        tasks are integrated, gets its branch (at the idea branch's head then) and its pull
        request, based on the milestone before (the first on the default branch). The last
        milestone's pull request, if any."""
        if self.git is None or self.open_pr is None or not idea.repo:
            return None
        accepted = [p for p in await asyncio.to_thread(self.store.idea_plans, idea.id)
                    if p["version"] == idea.plan_version]  # fmt: skip
        milestones = (accepted[-1]["plan"].get("milestones") or []) if accepted else []
        items = {i.key: i for i in await asyncio.to_thread(self.store.idea_tasks, idea.id)}
        events = await asyncio.to_thread(self.store.idea_events, idea.id)
        done = {e.data["milestone"]: e.data for e in events if e.kind == "milestone_pr"}
        heads = await self.git.heads(idea.repo)
        base, url = heads.get(DEFAULT, "main"), None
        for milestone in milestones:
            mid, keys = str(milestone["id"]), list(milestone.get("tasks") or [])
            branch = milestone_branch(idea.id, mid)
            if mid in done:
                base, url = branch, done[mid].get("url")
                continue
            if not keys or not all(k in items and items[k].integrated for k in keys):
                break  # milestones go out in order
            await self.git.branch_at(idea.repo, branch, heads[idea_branch(idea.id)])
            title = f"{idea.goal[:60]}: {milestone.get('title') or mid}"
            body = f"Milestone {mid} of idea {idea.id}: {', '.join(keys)}."
            url = await self.open_pr(idea.repo, branch, base, title, body)
            data = {"milestone": mid, "branch": branch, "base": base, "url": url}
            await asyncio.to_thread(
                self.store.note_idea, idea.id, REVIEW, "milestone_pr", data, self.clock()
            )
            base = branch
        return url

    async def _finish(self, idea: Idea) -> None:
        url = idea.pr_url
        if url is None and self.settings.ideas.pr_per_milestone:
            url = await self._milestones(idea)
        if url is None and self.open_pr is not None and idea.repo:
            heads = await self.git.heads(idea.repo) if self.git else {}
            base = heads.get(DEFAULT, "main")
            body = f"{idea.goal}\n\nPlanned and built by taskyard (idea {idea.id})."
            url = await self.open_pr(idea.repo, idea_branch(idea.id), base, idea.goal[:80], body)
        data = {"pr_url": url, "branch": idea.branch}
        done = await self._step(idea, IdeaStep.COMPLETE, "completed", data, pr_url=url)
        await self._say(done, f"taskyard finished this idea: {url or done.branch}.")

    async def _fail(self, idea: Idea, why: str) -> Idea:
        failed = await self._step(idea, IdeaStep.FAIL, "failed", {"why": why}, reason=why)
        await self._say(failed, f"taskyard could not carry this idea through: {why}")
        return failed

    async def _say(self, idea: Idea, text: str) -> None:
        if self.tell is None:
            return
        try:
            await self.tell(idea, text)
        except TaskyardError as exc:
            log.warning("idea not told", extra={"idea": idea.id, "error": str(exc)})

    async def _step(
        self, idea: Idea, step: IdeaStep, kind: str, data: dict[str, Any], **fields: Any
    ) -> Idea:
        done = await asyncio.to_thread(
            lambda: self.store.idea_transition(idea.id, step, kind, data, self.clock(), **fields)
        )
        if done is None:  # someone else moved it (paused, cancelled): as it is now
            return await asyncio.to_thread(self.store.get_idea, idea.id)
        return done

    async def _task(self, task_id: str | None) -> Task | None:
        if task_id is None:
            return None
        try:
            return await asyncio.to_thread(self.store.get_task, task_id)
        except NotFound:
            return None


def _failure(key: str, task: Task | None) -> str:
    reason = task.reason if task is not None else None
    return f"task {key} failed: {reason}" if reason else f"task {key} failed"


def _failed(task: Task) -> bool:
    return task.status.terminal and task.status is not TaskStatus.SUCCEEDED


def _blocked(items: list[IdeaTask], failed: set[str]) -> set[str]:
    """Every task that depends, directly or not, on a failed one."""
    blocked: set[str] = set()
    grew = True
    while grew:
        grew = False
        for item in items:
            if item.key not in blocked and set(item.depends_on) & (failed | blocked):
                blocked.add(item.key)
                grew = True
    return blocked


__all__ = ["PLAN", "TELEMETRY", "IdeaScheduler", "OpenPr", "Tell"]
