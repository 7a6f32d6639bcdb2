"""Running one task: the body of the durable `taskyard.task` workflow.

`TaskExecutor.run(task_id)` looks at where the task is and takes the next step: a terminal
task is done; one found `applying` (its agent's result stored, its actions being applied)
applies the rest without running the agent again (`taskyard.run.applying`); one found in an
attempt was interrupted by a crash: its stale process group is killed, and it runs again as
attempt n+1 or, past `runs.attempts`, ends `failed` with reason `worker lost`
(`taskyard.run.attempt`); one whose cancel was asked ends before it starts; any other waits
for the month's budget and an agent slot (`taskyard.run.slots`) and runs an attempt. How each
run ends is written by `taskyard.run.finishing`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial

from taskyard.actions.service import ActionService, TaskActions
from taskyard.agents.limiter import Limiter
from taskyard.config import Settings
from taskyard.exceptions import ConfigError
from taskyard.lifecycle import IN_ATTEMPT, Kind
from taskyard.models import Event, Task, TaskStatus
from taskyard.observe.metrics import log_context
from taskyard.observe.tracing import Tracing
from taskyard.routing import RouteConfig
from taskyard.run.applying import Applying
from taskyard.run.attempt import Attempts, DeliverFor, ToolsFor
from taskyard.run.budget import BudgetGuard, BudgetWait, unpriced_agents
from taskyard.run.ending import CANCELLED_BEFORE_START
from taskyard.run.finishing import Finishing
from taskyard.run.prompts import PromptLibrary
from taskyard.run.slots import Slots, waiting_teller
from taskyard.run.tasklogs import TaskLogs
from taskyard.run.taskspec import ContextGatherer, event_json
from taskyard.run.workspace import Workspaces
from taskyard.store.base import Store
from taskyard.util.loops import AppliedSignals
from taskyard.util.redaction import Redactor

__all__ = ["TaskExecutor", "ToolsFor"]

log = logging.getLogger(__name__)


class TaskExecutor:
    """Runs tasks in this process: the composition of the run stage's steps (`slots`,
    `attempts`, `applying`, `finishing`), and what the service reads of them."""

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
        on_finished: Sequence[Callable[[Task], None]] = (),
        on_agent_failure: Sequence[Callable[[str, str], None]] = (),
        applied: AppliedSignals | None = None,
        deliver_for: DeliverFor | None = None,
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
        self.notes_dir = settings.home / "tasks"
        self.on_finished: list[Callable[[Task], None]] = list(on_finished)
        # (agent, reason) of each run without a usable result (see `agent_failure`)
        self.on_agent_failure: list[Callable[[str, str], None]] = list(on_agent_failure)
        self.tracing = tracing or Tracing.off()
        self.actions = actions
        self.tools_for = tools_for
        self.budget = BudgetGuard(settings.budget, store, clock)
        self.redactor = Redactor(settings.secrets())  # hides them in what agents print
        self.task_logs = TaskLogs.from_settings(settings)
        tell = waiting_teller(store, self._task_actions)
        self.budget_wait = BudgetWait(self.budget, tell, clock=clock)
        # Told when a task handed back by a decision has applied (`AppliedSignals`).
        self.applied = applied or AppliedSignals()
        self.slots = Slots(self.limiter, self.budget_wait)
        self.finishing = Finishing(
            store,
            workspaces,
            self.task_logs,
            self.budget,
            self.notes_dir,
            self.on_finished,
            keep_workspaces=settings.runs.keep_workspaces,
            clock=clock,
        )
        self.applying = Applying(
            store, self.finishing, self._task_actions, self.applied, self.tracing, clock
        )
        self.attempts = Attempts(
            settings,
            store,
            workspaces,
            context,
            environ,
            worker_id,
            self.prompts,
            self.applying,
            self.on_agent_failure,
            actions_for=self._task_actions,
            tools_for=tools_for,
            redactor=self.redactor,
            tracing=self.tracing,
            clock=clock,
            deliver_for=deliver_for,
        )

    def warm_up(self, routes: Sequence[RouteConfig]) -> None:
        """Before the first event: compile every route's prompt (a missing one is a
        ConfigError now, not a failed task later) and build its agent's adapter (one that
        cannot be built is only a warning: the route's tasks will fail saying so). Binaries are
        looked up when an agent starts; `taskyard doctor` checks them."""
        for route in routes:
            self.prompts.check(route.prompt or "default")
            try:
                self.attempts.adapter(route.agent)
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

    def room(self) -> int:
        """How many more tasks needing an agent this process can take on now (see
        `Slots.room`). Safe from any thread."""
        return self.slots.room()

    def claim(self, task_ids: Sequence[str]) -> None:
        """The dispatcher handed these tasks to this process. Safe from any thread."""
        self.slots.claim(task_ids)

    def release(self, task_ids: Sequence[str]) -> None:
        """Of the tasks handed over, these run in another process (it started their workflows
        first). Safe from any thread."""
        self.slots.release(task_ids)

    async def run(self, task_id: str) -> str:
        """The workflow body: the task's next step, by its status; the status it is left in."""
        with self.slots.taken(task_id):
            task = await asyncio.to_thread(self.store.get_task, task_id)
            with log_context(event_id=task.event_id, task_id=task.id):
                return str(await self._step(task))

    async def _step(self, task: Task) -> TaskStatus:
        if task.status.terminal:
            return task.status
        if task.status is TaskStatus.APPLYING and _back_from_a_person(task):
            # A change task a person's review decision handed back: on with its gates.
            await asyncio.to_thread(
                partial(self.store.transition, task.id, Kind.BACK_TO_GATES, updated_at=self.clock())
            )
            task = await asyncio.to_thread(self.store.get_task, task.id)
        if task.status is TaskStatus.APPLYING:
            return await self.applying.resume(task)
        if task.status in IN_ATTEMPT:
            task = await self.attempts.recover_interrupted(task)
            if task.status.terminal:
                return task.status
        if task.cancel_requested:
            return await self.finishing.end(task, CANCELLED_BEFORE_START)
        status = await self.slots.start_when_free(task, self.attempts.run)
        if status is None:  # cancelled while it waited for the budget
            return await self.finishing.end(task, CANCELLED_BEFORE_START)
        return status

    def _task_actions(self, task: Task, event: Event) -> TaskActions | None:
        """What the task may do where it came from (None: no action service)."""
        if self.actions is None:
            return None
        return self.actions.for_task(task.id, task.route, event, event_json(event)["payload"])


def _back_from_a_person(task: Task) -> bool:
    """A change task whose last gate step waited for a person's review (`run.personreview`)."""
    return bool(task.gates) and task.gates[-1].get("outcome") == "awaiting_person"
