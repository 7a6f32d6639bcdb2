"""Running one task: slot → workspace → context → prompt → agent → result → actions → report
→ note.

`TaskExecutor.run(task_id)` is the body of the durable `taskyard.task` workflow. Every state
change is written to the tasks table first, so a run interrupted by a crash is found on
re-entry: its stale process group is killed, and the task runs again as attempt n+1 or,
past `runs.attempts`, ends `failed` with reason `worker lost`. A task found `applying` (its
agent's result stored, its actions being applied) applies the rest without running the agent
again: actions already applied are never sent twice (see `taskyard.actions.apply`).

With an `ActionService`, a task also says where it came from that it started (a reaction),
lets its codex or claude agent call the action and read tools through a per-task MCP server
(`taskyard.tools`), applies its result's actions, and reports its summary or its failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import orjson

from taskyard.actions.service import ActionService, TaskActions, outcome_of
from taskyard.agents import build_adapter
from taskyard.agents.base import AgentAdapter, AgentOutcome, AgentRequest
from taskyard.agents.limiter import Limiter
from taskyard.agents.process import ProcessRecord, kill_stale_group
from taskyard.agents.supervisor import Limits, RunReport, RunStatus, build_env, supervise
from taskyard.approvals.gate import workflow_for
from taskyard.config import Settings
from taskyard.exceptions import ConfigError, LogRefused, TaskyardError
from taskyard.models import Event, Task, TaskStatus
from taskyard.observe.metrics import log_context
from taskyard.observe.tracing import Tracing
from taskyard.records import ActionRecord, ApprovalStatus
from taskyard.routing import RouteConfig
from taskyard.run.applied import AppliedSignals
from taskyard.run.budget import (
    BudgetGuard,
    BudgetWait,
    Position,
    priced,
    unpriced_agents,
    waiting_notice,
)
from taskyard.run.prompts import PromptLibrary
from taskyard.run.results import (
    DEFAULT_RESULT_SCHEMA,
    MAX_RESULT_DEPTH,
    nested_deeper,
    note_path,
    render_note,
    validation_errors,
)
from taskyard.run.tasklogs import TaskLogs
from taskyard.run.taskspec import ContextGatherer, TaskSpec, event_json, repo_spec
from taskyard.run.workspace import TaskDirs, Workspaces
from taskyard.store.base import Store
from taskyard.tools.base import ToolHandler
from taskyard.tools.bridge import SOCKET_NAME, ToolBridge, socket_path_fits
from taskyard.util.redaction import Redactor
from taskyard.util.untrusted import clean_json

log = logging.getLogger(__name__)
CLAIM_SECONDS = 30.0  # a task handed over and not started by then is not counted as taken

_LIVE = (TaskStatus.PREPARING, TaskStatus.RUNNING)
CANCEL_POLL_SECONDS = 0.5
MCP_AGENTS = frozenset({"codex", "claude"})  # agent kinds that register taskyard's MCP server

ToolsFor = Callable[[TaskActions], ToolHandler]


@dataclass(frozen=True, slots=True)
class Ending:
    """How an attempt ended, ready to be written to the task."""

    status: TaskStatus
    reason: str | None
    outcome: AgentOutcome | None = None
    result: Mapping[str, Any] | None = None
    agent_seconds: float | None = None  # the agent's own wall time
    actions: tuple[ActionRecord, ...] = ()  # what applying the result's actions recorded


class TaskExecutor:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        workspaces: Workspaces,
        context: ContextGatherer,
        environ: Mapping[str, str],
        worker_id: str,
        clock: Callable[[], float] = time.time,
        actions: ActionService | None = None,
        tools_for: ToolsFor | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.workspaces = workspaces
        self.context = context
        self.environ = dict(environ)
        self.worker_id = worker_id
        self.clock = clock
        self.prompts = PromptLibrary(settings.runs.prompts_dir)
        caps = {n: a.max_concurrency for n, a in settings.agents.items() if a.max_concurrency}
        self.limiter = Limiter(settings.runs.concurrency, caps)
        self._adapters: dict[str, AgentAdapter] = {}
        self.notes_dir = settings.home / "tasks"
        self.on_finished: list[Callable[[Task], None]] = []
        # (agent, reason) of each run without a usable result (see `agent_failure`)
        self.on_agent_failure: list[Callable[[str, str], None]] = []
        self.tracing = tracing or Tracing.off()
        self.actions = actions
        self.tools_for = tools_for
        self.budget = BudgetGuard(settings.budget, store, clock)
        self.redactor = Redactor(settings.secrets())  # hides them in what agents print
        self.task_logs = TaskLogs.from_settings(settings)
        self.budget_wait = BudgetWait(self.budget, self._tell_waiting, clock=clock)
        # Tasks this process took on: handed to it (not started yet) and running here. The
        # dispatcher takes no more than there is room for (`room`), so that with several
        # workers on one database each takes what it can run and leaves the rest to others.
        self._room_lock = threading.Lock()
        self._claimed: dict[str, float] = {}  # task id → when handed over (monotonic)
        self._active: set[str] = set()
        # Told when a task handed back by a decision has applied (see taskyard.run.applied).
        self.applied = AppliedSignals()

    def warm_up(self, routes: Sequence[RouteConfig]) -> None:
        """Before the first event: compile every route's prompt (a missing one is a
        ConfigError now, not a failed task later) and build its agent's adapter (one that
        cannot be built is only a warning: the route's tasks will fail saying so). Binaries are
        looked up when an agent starts; `taskyard doctor` checks them."""
        for route in routes:
            self.prompts.check(route.prompt or "default")
            try:
                self._adapter(route.agent)
            except ConfigError as exc:
                log.warning(
                    "agent not usable yet",
                    extra={"route": route.name, "agent": route.agent, "error": str(exc)},
                )
        budget = self.settings.budget
        if budget.monthly_usd is not None or budget.per_task_usd is not None:
            for name in unpriced_agents(self.settings.agents, budget.prices):
                log.warning(
                    "agent has no price: its runs cost nothing to the budget", extra={"agent": name}
                )

    # --- the workflow body ----------------------------------------------------------------

    def room(self) -> int:
        """How many more tasks needing an agent this process can take on now. A task handed
        over but not started within `CLAIM_SECONDS` (its workflow ran elsewhere) no longer
        counts. Safe from any thread."""
        now = time.monotonic()
        with self._room_lock:
            self._claimed = {t: at for t, at in self._claimed.items() if now - at < CLAIM_SECONDS}
            taken = len(self._active) + len(self._claimed.keys() - self._active)
            return self.limiter.global_cap - taken

    def claim(self, task_ids: Sequence[str]) -> None:
        """The dispatcher handed these tasks to this process. Safe from any thread."""
        now = time.monotonic()
        with self._room_lock:
            self._claimed.update(dict.fromkeys(task_ids, now))

    def release(self, task_ids: Sequence[str]) -> None:
        """Of the tasks handed over, these run in another process (it started their workflows
        first). Safe from any thread."""
        with self._room_lock:
            for task_id in task_ids:
                self._claimed.pop(task_id, None)

    async def run(self, task_id: str) -> str:
        with self._room_lock:
            self._active.add(task_id)
        try:
            task = await self._get(task_id)
            with log_context(event_id=task.event_id, task_id=task.id):
                return await self._run(task)
        finally:
            with self._room_lock:
                self._active.discard(task_id)
                self._claimed.pop(task_id, None)

    async def _run(self, task: Task) -> str:
        if task.status.terminal:
            return str(task.status)
        if task.status is TaskStatus.APPLYING:
            return str(await self._resume_applying(task))
        if task.status in _LIVE:
            task = await self._recover_interrupted(task)
            if task.status.terminal:
                return str(task.status)
        if task.cancel_requested:
            return str(
                await self._end(task, Ending(TaskStatus.CANCELLED, "cancelled before start"))
            )
        while True:  # while the month's budget is spent, wait without holding a slot
            task = await self.budget_wait.until_allowed(task)
            if task.cancel_requested:
                ending = Ending(TaskStatus.CANCELLED, "cancelled before start")
                return str(await self._end(task, ending))
            async with self.limiter.slot(task.agent, int(task.priority)):
                if await self.budget_wait.allows():
                    return str(await self._attempt(task))

    async def _tell_waiting(self, task: Task, position: Position) -> None:
        """Say where the task came from that it waits for the budget."""
        event = await asyncio.to_thread(self.store.get_event, task.event_id)
        acts = self._task_actions(task, event)
        if acts is not None:
            await acts.report_waiting(waiting_notice(position), subject=event.subject)

    async def _recover_interrupted(self, task: Task) -> Task:
        """The previous attempt died with its worker: kill what it left, then decide."""
        if task.process:
            record = ProcessRecord.from_json(task.process)
            killed = await asyncio.to_thread(
                kill_stale_group, record, self.settings.runs.kill_grace_seconds
            )
            log.warning(
                "stale agent of an interrupted attempt",
                extra={"task_id": task.id, "pgid": record.pgid, "killed": killed},
            )
        if task.attempts >= self.settings.runs.attempts:
            ending = Ending(
                TaskStatus.FAILED,
                f"worker lost: attempt {task.attempts} was interrupted "
                f"(worker {task.worker or 'unknown'}) and no attempts are left",
            )
            await self._end(task, ending)
            return await self._get(task.id)
        log.warning(
            "re-running an interrupted task",
            extra={"task_id": task.id, "attempt": task.attempts + 1},
        )
        return task

    async def _attempt(self, task: Task) -> TaskStatus:
        began = time.monotonic()
        attempt = task.attempts + 1
        started = await asyncio.to_thread(
            self.store.update_task,
            task.id,
            {
                "status": TaskStatus.PREPARING,
                "attempts": attempt,
                "worker": self.worker_id,
                "reason": None,
                "process": None,
                "updated_at": self.clock(),
            },
            (TaskStatus.QUEUED, *_LIVE),
        )
        if not started:  # cancelled or finished meanwhile
            return (await self._get(task.id)).status
        task = replace(task, status=TaskStatus.PREPARING, attempts=attempt, worker=self.worker_id)
        spec = TaskSpec.from_json(task.spec)
        event = await asyncio.to_thread(self.store.get_event, task.event_id)
        dirs: TaskDirs | None = None
        acts: TaskActions | None = None
        try:
            acts = self._task_actions(task, event)
            if acts is not None:
                await acts.report_start()
            dirs = await self.workspaces.prepare(task.id, repo_spec(spec))
            ending = await self._prepare_and_run(task, spec, event, dirs, acts)
            if ending.status is TaskStatus.SUCCEEDED and acts is not None:
                ending = await self._apply(task, acts, ending)
        except TaskyardError as exc:
            ending = Ending(TaskStatus.FAILED, str(exc))
        except Exception as exc:  # a bug must still end the task in a clear state
            log.exception("task attempt crashed", extra={"task_id": task.id})
            ending = Ending(TaskStatus.FAILED, f"internal error: {type(exc).__name__}: {exc}")
        if ending.status is TaskStatus.AWAITING_APPROVAL:
            return await self._pause(task, ending, dirs)
        await self._report_end(acts, event, ending)
        status = await self._end(task, ending, event, dirs, spec, began)
        return status

    def _task_actions(self, task: Task, event: Event) -> TaskActions | None:
        if self.actions is None:
            return None
        return self.actions.for_task(task.id, task.route, event, event_json(event)["payload"])

    async def _apply(
        self, task: Task, acts: TaskActions, ending: Ending, *, stored: bool = False
    ) -> Ending:
        """Store the result (the task is `applying` from now on; `stored`: it is already),
        then apply its actions."""
        result = dict(ending.result or {})
        changes: dict[str, Any] = {
            "status": TaskStatus.APPLYING,
            "result": result,
            "updated_at": self.clock(),
        }
        if ending.outcome is not None:
            changes["usage"] = ending.outcome.usage.to_json() | {
                "tool_calls": ending.outcome.tool_calls
            }
            changes["cost_usd"] = ending.outcome.usage.cost_usd
        if not stored:
            await asyncio.to_thread(self.store.update_task, task.id, changes)
        proposed = result.get("actions")
        with self.tracing.span("apply", task.event_id, task.id, {"taskyard.route": task.route}):
            records = await acts.apply_result(proposed if isinstance(proposed, list) else [])
        # In dry-run nothing was attempted: what could not be planned (a Linear name without
        # credentials to resolve it) is in the records, and the task still succeeds.
        status, reason = outcome_of(records, acts.dry_run)
        return replace(ending, status=status, reason=reason, actions=tuple(records))

    async def _pause(self, task: Task, ending: Ending, dirs: TaskDirs | None) -> TaskStatus:
        """Some actions wait for a person: the task holds no worker and no agent until a
        decision hands it back (`applying`); its workspace is done with."""
        changes: dict[str, Any] = {
            "status": TaskStatus.AWAITING_APPROVAL,
            "reason": ending.reason,
            "updated_at": self.clock(),
        }
        if dirs is not None and dirs.root.exists():  # where it went (the log is there)
            changes["workspace"] = await self._finish_workspace(task, ending, dirs)
        await asyncio.to_thread(self.store.update_task, task.id, changes)
        log.info(
            "task awaiting approval",
            extra={"task_id": task.id, "route": task.route, "reason": ending.reason},
        )
        # A decision that came before this task was waiting could not resume it: resume now.
        pending = await asyncio.to_thread(
            self.store.list_approvals, ApprovalStatus.PENDING, task.id
        )
        if not pending:
            resumed = await asyncio.to_thread(
                self.store.update_task,
                task.id,
                {
                    "status": TaskStatus.APPLYING,
                    "dispatched": False,
                    "workflow_id": workflow_for(task.id),
                    "updated_at": self.clock(),
                },
                (TaskStatus.AWAITING_APPROVAL,),
            )
            if resumed:
                return TaskStatus.APPLYING
        return TaskStatus.AWAITING_APPROVAL

    async def _resume_applying(self, task: Task) -> TaskStatus:
        """A decision handed the task back, the worker died while applying, or `tasks retry`
        asked to apply again: apply what is left of the stored result (applied actions are
        never sent twice)."""
        log.info("applying the stored result's actions", extra={"task_id": task.id})
        event = await asyncio.to_thread(self.store.get_event, task.event_id)
        spec = TaskSpec.from_json(task.spec)
        ending = Ending(TaskStatus.SUCCEEDED, None, result=task.result)
        acts = None
        try:
            acts = self._task_actions(task, event)
            if acts is not None:
                ending = await self._apply(task, acts, ending, stored=True)
        except TaskyardError as exc:
            ending = Ending(TaskStatus.FAILED, str(exc), result=task.result)
        except Exception as exc:  # a bug must still end the task in a clear state
            log.exception("resumed apply crashed", extra={"task_id": task.id})
            reason = f"internal error: {type(exc).__name__}: {exc}"
            ending = Ending(TaskStatus.FAILED, reason, result=task.result)
        self.applied.applied(task.id)
        dirs = self.workspaces.dirs(task.id)
        found = dirs if dirs.root.exists() else None
        if ending.status is TaskStatus.AWAITING_APPROVAL:
            return await self._pause(task, ending, found)
        await self._report_end(acts, event, ending)
        return await self._end(task, ending, event, found, spec)

    async def _report_end(self, acts: TaskActions | None, event: Event, ending: Ending) -> None:
        if acts is None:
            return
        summary = ending.result.get("summary") if ending.result else None
        await acts.report_end(
            ending.status,
            ending.reason,
            summary if isinstance(summary, str) else None,
            ending.actions,
            subject=event.subject,
        )

    async def _prepare_and_run(
        self, task: Task, spec: TaskSpec, event: Event, dirs: TaskDirs, acts: TaskActions | None
    ) -> Ending:
        event_data = event_json(event)
        shown = clean_json(event_data)  # what the agent sees: hidden text out (untrusted.py)
        (dirs.context / "event.json").write_bytes(orjson.dumps(shown, option=orjson.OPT_INDENT_2))
        with self.tracing.span("context", task.event_id, task.id):
            failures = await self.context.gather(
                spec, event.source, event_data["payload"], dirs.context, event.received_at
            )
        if failures:
            return Ending(TaskStatus.FAILED, "context: " + "; ".join(failures))
        schema = spec.result_schema or DEFAULT_RESULT_SCHEMA
        prompt_file = self._render_prompt(task, spec, shown, dirs, schema)
        (dirs.root / "result-schema.json").write_bytes(orjson.dumps(schema))
        agent = self.settings.agents.get(spec.agent)
        if agent is None:
            raise ConfigError(f"route {task.route!r} names unknown agent {spec.agent!r}")
        defaults = Limits.from_config(self.settings.runs, agent)  # the agent's, else runs:
        request = AgentRequest(
            task_id=task.id,
            task_dir=dirs.root,
            workspace=dirs.workspace,
            context_dir=dirs.context,
            output_dir=dirs.outputs,
            prompt_file=prompt_file,
            result_schema=schema,
            timeout_seconds=spec.timeout_seconds or defaults.timeout_seconds,
            max_tool_calls=spec.max_tool_calls or defaults.max_tool_calls,
        )
        request = _with_env(request, self.settings.runs.env_allowlist, self.environ)
        limits = replace(
            defaults,
            timeout_seconds=request.timeout_seconds,
            max_tool_calls=request.max_tool_calls,
            max_cost_usd=self.settings.budget.per_task_usd,
            redactor=self.redactor,
            # the box never shows $TASKYARD_HOME (databases, logs, other tasks, mirrors)
            sandbox=replace(defaults.sandbox, hidden=(self.settings.home.resolve(),)),
        )
        adapter = self._adapter(spec.agent)
        async with contextlib.AsyncExitStack() as stack:
            handler = self._tools(agent.kind, acts)
            if handler is not None:
                bridge = ToolBridge(handler, _socket_path(dirs, task.id))
                await stack.enter_async_context(bridge)
                request = replace(request, mcp=bridge.mcp_launch())
            with self.tracing.span("run", task.event_id, task.id, {"taskyard.agent": task.agent}):
                report = await self._supervise(task, adapter, request, limits, dirs)
        ending = self._judge(report, schema)
        failure = agent_failure(report, ending)
        if failure is not None:
            for listener in self.on_agent_failure:
                listener(task.agent, failure)
        return ending

    def _tools(self, kind: str, acts: TaskActions | None) -> ToolHandler | None:
        if acts is None or self.tools_for is None or kind not in MCP_AGENTS:
            return None
        if not self.settings.actions.tools:
            return None
        return self.tools_for(acts)

    def _render_prompt(
        self,
        task: Task,
        spec: TaskSpec,
        event_data: Mapping[str, Any],
        dirs: TaskDirs,
        schema: Mapping[str, Any],
    ) -> Path:
        context: dict[str, Any] = {}
        for path in sorted(dirs.context.glob("*.json")):
            if path.name != "event.json":
                context[path.name.removesuffix(".json")] = orjson.loads(path.read_bytes())
        text = self.prompts.render(
            spec.prompt,
            {
                "task_id": task.id,
                "route": task.route,
                "event": event_data,
                "payload": event_data.get("payload") or {},
                "context": context,
                "workspace": str(dirs.workspace),
                "repo": str(dirs.repo) if dirs.repo else None,
                "context_dir": str(dirs.context),
                "output_dir": str(dirs.outputs),
                "result_schema": orjson.dumps(schema, option=orjson.OPT_INDENT_2).decode(),
            },
        )
        path = dirs.prompts / f"{spec.prompt}.md"
        path.write_text(text, encoding="utf-8")
        return path

    def _adapter(self, name: str) -> AgentAdapter:
        if name not in self._adapters:
            agent = priced(self.settings.agents[name], self.settings.budget.prices)
            self._adapters[name] = build_adapter(agent)
        return self._adapters[name]

    async def _supervise(
        self,
        task: Task,
        adapter: AgentAdapter,
        request: AgentRequest,
        limits: Limits,
        dirs: TaskDirs,
    ) -> RunReport:
        cancel = asyncio.Event()

        async def spawned(record: ProcessRecord) -> None:
            now = self.clock()
            await asyncio.to_thread(
                self.store.update_task,
                task.id,
                {
                    "status": TaskStatus.RUNNING,
                    "workspace": str(dirs.root),
                    "process": record.to_json(),
                    "started_at": now,
                    "updated_at": now,
                },
            )
            log.info(
                "agent started",
                extra={"task_id": task.id, "agent": task.agent, "pid": record.pid},
            )

        watcher = asyncio.create_task(self._watch_cancel(task.id, cancel))
        try:
            return await supervise(adapter, request, limits, on_spawn=spawned, cancel=cancel)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    async def _watch_cancel(self, task_id: str, cancel: asyncio.Event) -> None:
        while not cancel.is_set():
            await asyncio.sleep(CANCEL_POLL_SECONDS)
            with contextlib.suppress(TaskyardError):
                task = await self._get(task_id)
                if task.cancel_requested:
                    cancel.set()

    def _judge(self, report: RunReport, schema: Mapping[str, Any]) -> Ending:
        outcome = report.outcome
        status = TaskStatus(report.status)
        took = (report.ended_at - report.started_at).total_seconds()
        if status is not TaskStatus.SUCCEEDED:
            return Ending(status, report.reason, outcome, agent_seconds=took)
        if outcome is None or outcome.result is None:
            return Ending(TaskStatus.FAILED, "the agent returned no result", outcome, None, took)
        if nested_deeper(outcome.result):  # too deep to store: neither kept nor validated
            reason = f"invalid result: nested deeper than {MAX_RESULT_DEPTH} levels"
            return Ending(TaskStatus.FAILED, reason, replace(outcome, result=None), None, took)
        errors = validation_errors(outcome.result, schema)
        if errors:
            reason = "invalid result: " + "; ".join(errors)
            return Ending(TaskStatus.FAILED, reason, outcome, outcome.result, took)
        return Ending(TaskStatus.SUCCEEDED, None, outcome, outcome.result, took)

    # --- ending -----------------------------------------------------------------------------

    async def _end(
        self,
        task: Task,
        ending: Ending,
        event: Event | None = None,
        dirs: TaskDirs | None = None,
        spec: TaskSpec | None = None,
        began: float | None = None,
    ) -> TaskStatus:
        now = self.clock()
        changes: dict[str, Any] = {
            "status": ending.status,
            "reason": ending.reason,
            "finished_at": now,
            "updated_at": now,
        }
        if ending.outcome is not None:
            changes["usage"] = ending.outcome.usage.to_json() | {
                "tool_calls": ending.outcome.tool_calls
            }
            changes["cost_usd"] = ending.outcome.usage.cost_usd
        if ending.result is not None:
            changes["result"] = dict(ending.result)
        if dirs is not None:
            kept = await self._finish_workspace(task, ending, dirs)
            # Where the workspace is now (archived), or where it was (removed after success).
            changes["workspace"] = kept or str(dirs.root)
        await asyncio.to_thread(self.store.update_task, task.id, changes)
        done = await self._get(task.id)
        if event is not None:
            await asyncio.to_thread(self._write_note, done, event, spec)
        log_fn = log.info if ending.status is TaskStatus.SUCCEEDED else log.warning
        log_fn(
            "task finished",
            extra={
                "task_id": task.id,
                "route": task.route,
                "status": str(ending.status),
                "reason": ending.reason,
                "attempt": done.attempts,
                **_timings(began, ending.agent_seconds),
            },
        )
        if done.cost_usd:  # logs the alert as soon as a task's cost reaches it
            await asyncio.to_thread(self.budget.check)
        for listener in self.on_finished:
            listener(done)
        return ending.status

    async def _finish_workspace(self, task: Task, ending: Ending, dirs: TaskDirs) -> str | None:
        keep = self.settings.runs.keep_workspaces or ending.status is not TaskStatus.SUCCEEDED
        await self._keep_log(task.id, dirs)
        try:
            kept = await self.workspaces.finish(task.id, keep=keep)
        except TaskyardError as exc:
            log.error("workspace cleanup failed", extra={"task_id": task.id, "error": str(exc)})
            return str(dirs.root)
        return str(kept) if kept is not None else None

    async def _keep_log(self, task_id: str, dirs: TaskDirs) -> None:
        """The agent's log, copied beside the task's record before its workspace goes
        (`taskyard.run.tasklogs`); a log that cannot be kept is logged, the task goes on."""
        try:
            await asyncio.to_thread(self.task_logs.keep, task_id, dirs.root)
        except (OSError, LogRefused) as exc:
            log.warning("agent log not kept", extra={"task_id": task_id, "error": str(exc)})

    def _write_note(self, task: Task, event: Event, spec: TaskSpec | None) -> None:
        self.notes_dir.mkdir(parents=True, exist_ok=True)
        path = note_path(self.notes_dir, task, event)
        path.write_text(render_note(task, event, list(spec.context if spec else ())), "utf-8")

    async def _get(self, task_id: str) -> Task:
        return await asyncio.to_thread(self.store.get_task, task_id)


_STOPPED_FOR = (("tool-call budget", "budget_exceeded"), ("cost ceiling", "cost_exceeded"))


def agent_failure(report: RunReport, ending: Ending) -> str | None:
    """Why the agent's run gave no usable result (a `taskyard_agent_failures_total` reason),
    or None when it did, or when it was cancelled."""
    if ending.status is TaskStatus.SUCCEEDED or report.status is RunStatus.CANCELLED:
        return None
    if report.status is RunStatus.TIMED_OUT:
        return "timed_out"
    if report.status is RunStatus.SUCCEEDED:  # the agent ended well; its result did not
        return "no_result" if ending.result is None else "invalid_result"
    for words, reason in _STOPPED_FOR:
        if (report.reason or "").startswith(words):
            return reason
    if _every_tool_failed(report.outcome):
        return "tools_failed"
    if report.exit_code is None:
        return "not_started"
    return "crashed" if report.exit_code < 0 else "failed"


def _every_tool_failed(outcome: AgentOutcome | None) -> bool:
    """An answer, but every tool call before it had failed (`flag_failed_tools`)."""
    if outcome is None or outcome.result is None:
        return False
    return 0 < outcome.tool_calls <= outcome.usage.tool_errors


def _socket_path(dirs: TaskDirs, task_id: str) -> Path:
    """The tool socket in the task's directory, or (when that path is too long for a unix
    socket) in a private directory under the system's temporary directory."""
    path = dirs.root / SOCKET_NAME
    if socket_path_fits(path):
        return path
    private = Path(tempfile.gettempdir()) / f"taskyard-{os.getuid()}"
    private.mkdir(mode=0o700, exist_ok=True)
    return private / f"{task_id}.sock"


def _timings(began: float | None, agent_seconds: float | None) -> dict[str, float]:
    """The attempt's wall time and taskyard's own share of it (all but the agent's run)."""
    if began is None:
        return {}
    total = time.monotonic() - began
    return {
        "seconds": round(total, 4),
        "agent_seconds": round(agent_seconds or 0.0, 4),
        "overhead_ms": round((total - (agent_seconds or 0.0)) * 1000, 2),
    }


def _with_env(
    request: AgentRequest, allowlist: tuple[str, ...], environ: Mapping[str, str]
) -> AgentRequest:
    """The agent starts from the allowlisted variables only (see `build_env`)."""
    return replace(request, base_env=build_env(allowlist, environ, request))
