"""One attempt at a task, in its agent slot: workspace → context → prompt → agent → judge, then
its result applied (`taskyard.run.applying`), all inside the task's workspace
(`Workspaces.workspace`), which is kept when the attempt did not succeed and removed when it
did. Every state change is written to the task first, so an attempt interrupted by a crash is
found on re-entry (`Attempts.recover_interrupted`).

With an `ActionService`, the attempt also says where the task came from that it started (a
reaction), and lets a codex or claude agent call the action and read tools through a per-task
MCP server (`taskyard.tools`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import orjson

from taskyard.actions.service import TaskActions
from taskyard.agents import build_adapter
from taskyard.agents.base import AgentAdapter, AgentRequest
from taskyard.agents.process import ProcessRecord, kill_stale_group
from taskyard.agents.supervisor import Limits, RunReport, build_env, supervise
from taskyard.config import AgentConfig, Settings
from taskyard.exceptions import ConfigError, TaskyardError
from taskyard.lifecycle import EndingKind, Kind
from taskyard.models import Event, Task, TaskStatus
from taskyard.observe.tracing import Tracing
from taskyard.run.applying import ActionsFor, Applying
from taskyard.run.budget import priced
from taskyard.run.change import Deliver
from taskyard.run.changing import run_change
from taskyard.run.ending import Ending, internal_error
from taskyard.run.finishing import Finishing
from taskyard.run.judging import FAILED_AS, agent_failure, judge
from taskyard.run.prompts import PromptLibrary
from taskyard.run.results import DEFAULT_RESULT_SCHEMA
from taskyard.run.taskspec import ContextGatherer, TaskSpec, event_json, repo_spec
from taskyard.run.workspace import TaskDirs, Workspaces
from taskyard.store.base import Store
from taskyard.tools.base import ToolHandler
from taskyard.tools.bridge import SOCKET_NAME, ToolBridge, socket_path_fits
from taskyard.util.redaction import Redactor
from taskyard.util.untrusted import clean_json

log = logging.getLogger(__name__)

CANCEL_POLL_SECONDS = 0.5
MCP_AGENTS = frozenset({"codex", "claude"})  # agent kinds that register taskyard's MCP server

ToolsFor = Callable[[TaskActions], ToolHandler]
_GATE_DONE = frozenset({"passed", "approved", "skipped"})
# How a change task's commit reaches its pull request (`taskyard.run.delivery`), or None: it
# stays in the task's worktree.
DeliverFor = Callable[[Task, TaskSpec, Event, Path], Deliver | None]


@dataclass(frozen=True, slots=True)
class Worked:
    """What the attempt's workspace saw: how the run ended, the workspace's paths (None: it
    could not be prepared), and where the workspace is now (`Finishing.finish_workspace`)."""

    ending: Ending
    dirs: TaskDirs | None = None
    kept: str | None = None

    @property
    def workspace(self) -> str | None:
        """The workspace column of the ended task: where it is now, or where it was."""
        if self.dirs is None:
            return None
        return self.kept or str(self.dirs.root)


class Attempts:
    """Runs attempts. `on_agent_failure` listeners get (agent, reason) of each run without a
    usable result (see `agent_failure`)."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        workspaces: Workspaces,
        context: ContextGatherer,
        environ: Mapping[str, str],
        worker_id: str,
        prompts: PromptLibrary,
        applying: Applying,
        on_agent_failure: list[Callable[[str, str], None]],
        *,
        actions_for: ActionsFor,
        tools_for: ToolsFor | None,
        redactor: Redactor,
        tracing: Tracing,
        clock: Callable[[], float] = time.time,
        deliver_for: DeliverFor | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.workspaces = workspaces
        self.context = context
        self.environ = dict(environ)
        self.worker_id = worker_id
        self.prompts = prompts
        self.applying = applying
        self.finishing: Finishing = applying.finishing
        self.on_agent_failure = on_agent_failure
        self.actions_for = actions_for
        self.tools_for = tools_for
        self.tracing = tracing
        self.clock = clock
        self.redactor = redactor
        self.deliver_for = deliver_for
        self._adapters: dict[str, AgentAdapter] = {}

    async def run(self, task: Task) -> TaskStatus:
        """Start attempt n+1 (unless the task was cancelled or finished meanwhile), run it,
        and pause the task for approval or end it."""
        began = time.monotonic()
        started = await self._start(task)
        if started is None:
            return (await asyncio.to_thread(self.store.get_task, task.id)).status
        task = started
        spec = TaskSpec.from_json(task.spec)
        event = await asyncio.to_thread(self.store.get_event, task.event_id)
        acts: TaskActions | None = None
        try:
            # A subtask says nothing where the event came from: its parent does.
            acts = self.actions_for(task, event) if task.parent_id is None else None
            if acts is not None:
                await acts.report_start()
            worked = await self._in_workspace(task, spec, event, acts)
        except TaskyardError as exc:
            worked = Worked(Ending(TaskStatus.FAILED, str(exc)))
        except Exception as exc:  # a bug must still end the task in a clear state
            log.exception("task attempt crashed", extra={"task_id": task.id})
            worked = Worked(internal_error(exc))
        if worked.ending.status is TaskStatus.AWAITING_APPROVAL:
            return await self.applying.pause(task, worked.ending, worked.kept)
        if worked.ending.status is TaskStatus.WAITING:  # for its subtasks (`run.subtasks`)
            return TaskStatus.WAITING
        await self.finishing.report_end(acts, event, worked.ending)
        return await self.finishing.end(
            task, worked.ending, event=event, spec=spec, workspace=worked.workspace, began=began
        )

    async def recover_interrupted(self, task: Task) -> Task:
        """The previous attempt died with its worker: kill what it left, then end the task
        `worker lost` when no attempts are left, else hand it back to run again."""
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
            reason = (
                f"worker lost: attempt {task.attempts} was interrupted "
                f"(worker {task.worker or 'unknown'}) and no attempts are left"
            )
            ending = Ending(TaskStatus.FAILED, reason, kind=EndingKind.WORKER_LOST)
            await self.finishing.end(task, ending)
            return await asyncio.to_thread(self.store.get_task, task.id)
        log.warning(
            "re-running an interrupted task",
            extra={"task_id": task.id, "attempt": task.attempts + 1},
        )
        return task

    def adapter(self, name: str) -> AgentAdapter:
        """The agent's adapter, built once (with its prices)."""
        if name not in self._adapters:
            agent = priced(self.settings.agents[name], self.settings.budget.prices)
            self._adapters[name] = build_adapter(agent)
        return self._adapters[name]

    async def _start(self, task: Task) -> Task | None:
        """The task as attempt n+1 on this worker, or None when it no longer can start."""
        attempt = task.attempts + 1
        started = await asyncio.to_thread(
            partial(
                self.store.transition,
                task.id,
                Kind.START_ATTEMPT,
                attempts=attempt,
                worker=self.worker_id,
                updated_at=self.clock(),
            )
        )
        if not started:
            return None
        return replace(task, status=TaskStatus.PREPARING, attempts=attempt, worker=self.worker_id)

    async def _in_workspace(
        self, task: Task, spec: TaskSpec, event: Event, acts: TaskActions | None
    ) -> Worked:
        """Run the agent and apply its result in the task's workspace; its log is kept before
        the workspace goes. A workspace that cannot be prepared raises."""
        dirs: TaskDirs | None = None
        ending: Ending | None = None
        keep = self.settings.runs.keep_workspaces
        try:
            async with self.workspaces.workspace(
                task.id, repo_spec(spec), keep_on_success=keep
            ) as ws:
                dirs = ws.dirs
                ending = await self._run_and_apply(task, spec, event, dirs, acts)
                await self.finishing.keep_log(task.id, dirs)
                if ending.status is not TaskStatus.SUCCEEDED:
                    ws.failed(ending.reason or str(ending.status))
        except TaskyardError as exc:
            if ending is None or dirs is None:  # it could not be prepared
                raise
            log.error("workspace cleanup failed", extra={"task_id": task.id, "error": str(exc)})
            return Worked(ending, dirs, str(dirs.root))
        return Worked(ending, dirs, str(ws.archived_to) if ws.archived_to else None)

    async def _run_and_apply(
        self, task: Task, spec: TaskSpec, event: Event, dirs: TaskDirs, acts: TaskActions | None
    ) -> Ending:
        """The run's ending: the agent's, then its actions' when it succeeded."""
        try:
            ending = await self._prepare_and_run(task, spec, event, dirs, acts)
            if ending.status is TaskStatus.SUCCEEDED and acts is not None:
                ending = await self.applying.apply(task, acts, ending)
        except TaskyardError as exc:
            return Ending(TaskStatus.FAILED, str(exc))
        except Exception as exc:  # a bug must still end the task in a clear state
            log.exception("task attempt crashed", extra={"task_id": task.id})
            return internal_error(exc)
        return ending

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
            reason = "context: " + "; ".join(failures)
            return Ending(TaskStatus.FAILED, reason, kind=EndingKind.CONTEXT_FAILED)
        schema = spec.result_schema or DEFAULT_RESULT_SCHEMA
        prompt_file = self.render_prompt(task, spec, shown, dirs, schema)
        (dirs.root / "result-schema.json").write_bytes(orjson.dumps(schema))
        agent = self.settings.agents.get(spec.agent)
        if agent is None:
            raise ConfigError(f"route {task.route!r} names unknown agent {spec.agent!r}")
        if spec.change is not None:
            return await run_change(self, task, spec, event, dirs, acts, prompt_file)
        request, limits = self.request_for(task, spec, agent, dirs, prompt_file, schema)
        report = await self.run_agent(task, spec, agent, dirs, acts, request, limits)
        ending = judge(report, schema)
        failure = agent_failure(report, ending)
        if failure is not None:
            for listener in self.on_agent_failure:
                listener(task.agent, failure)
            ending = replace(ending, kind=FAILED_AS[failure])
        return ending

    def request_for(
        self,
        task: Task,
        spec: TaskSpec,
        agent: AgentConfig,
        dirs: TaskDirs,
        prompt_file: Path,
        schema: Mapping[str, Any],
    ) -> tuple[AgentRequest, Limits]:
        """What the agent is asked, and the limits it runs under: the route's, else the
        agent's, else `runs:`."""
        defaults = Limits.from_config(self.settings.runs, agent)
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
        return request, limits

    async def run_agent(
        self,
        task: Task,
        spec: TaskSpec,
        agent: AgentConfig,
        dirs: TaskDirs,
        acts: TaskActions | None,
        request: AgentRequest,
        limits: Limits,
        wrap: Callable[[ToolHandler | None], ToolHandler] | None = None,
    ) -> RunReport:
        """Supervise the agent's run, with the task's tool server beside it when it has one
        (`wrap`: tools in front of the task's own, for an agent that takes MCP tools)."""
        adapter = self.adapter(spec.agent)
        async with contextlib.AsyncExitStack() as stack:
            handler = self._tools(agent.kind, acts)
            if wrap is not None and agent.kind in MCP_AGENTS:
                handler = wrap(handler)
            if handler is not None:
                bridge = ToolBridge(handler, _socket_path(dirs, task.id))
                await stack.enter_async_context(bridge)
                request = replace(request, mcp=bridge.mcp_launch())
            with self.tracing.span("run", task.event_id, task.id, {"taskyard.agent": task.agent}):
                return await self._supervise(task, adapter, request, limits, dirs)

    def _tools(self, kind: str, acts: TaskActions | None) -> ToolHandler | None:
        if acts is None or self.tools_for is None or kind not in MCP_AGENTS:
            return None
        if not self.settings.actions.tools:
            return None
        return self.tools_for(acts)

    def render_prompt(
        self,
        task: Task,
        spec: TaskSpec,
        event_data: Mapping[str, Any],
        dirs: TaskDirs,
        schema: Mapping[str, Any],
    ) -> Path:
        """The route's prompt, rendered with the event and the gathered context into the
        task's prompts directory."""
        context: dict[str, Any] = {}
        for path in sorted(dirs.context.glob("*.json")):
            if path.name != "event.json":
                context[path.name.removesuffix(".json")] = orjson.loads(path.read_bytes())
        text = self.prompts.render(
            spec.prompt,
            {
                **dirs.prompt_values(task.id, task.route, schema),
                "event": event_data,
                "payload": event_data.get("payload") or {},
                "context": context,
                "subtask": spec.subtask or {},
                "idea": spec.idea or {},
            },
        )
        path = dirs.prompts / f"{spec.prompt.lstrip('_')}.md"
        path.write_text(text, encoding="utf-8")
        return path

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
                partial(
                    self.store.transition,
                    task.id,
                    Kind.AGENT_STARTED,
                    workspace=str(dirs.root),
                    process=record.to_json(),
                    started_at=now,
                    updated_at=now,
                )
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
        """Stop the agent once a cancel is asked for the task."""
        while not cancel.is_set():
            await asyncio.sleep(CANCEL_POLL_SECONDS)
            with contextlib.suppress(TaskyardError):
                task = await asyncio.to_thread(self.store.get_task, task_id)
                if task.cancel_requested:
                    cancel.set()


def _socket_path(dirs: TaskDirs, task_id: str) -> Path:
    """The tool socket in the task's directory, or (when that path is too long for a unix
    socket) in a private directory under the system's temporary directory."""
    path = dirs.root / SOCKET_NAME
    if socket_path_fits(path):
        return path
    private = Path(tempfile.gettempdir()) / f"taskyard-{os.getuid()}"
    private.mkdir(mode=0o700, exist_ok=True)
    return private / f"{task_id}.sock"


def _with_env(
    request: AgentRequest, allowlist: tuple[str, ...], environ: Mapping[str, str]
) -> AgentRequest:
    """The agent starts from the allowlisted variables only (see `build_env`)."""
    return replace(request, base_env=build_env(allowlist, environ, request))
