"""The tools a change task's implementing agent gets beside its others (`taskyard.run.change`):
`submit_plan` writes its plan; `skip_gate`, `commit` and `push` are always refused, naming the
gates still to pass, because only taskyard commits and pushes, and only the route's
configuration turns a gate off. Each refusal is told to `on_refusal` (the audit log)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from taskyard.exceptions import TaskyardError
from taskyard.models import Task
from taskyard.tools.base import ToolAnswer, ToolHandler, ToolSpec

SUBMIT_PLAN = ToolSpec(
    "submit_plan",
    "Submit your plan for the change (markdown): taskyard keeps it as outputs/plan.md for the "
    "plan review.",
    {
        "type": "object",
        "additionalProperties": False,
        "required": ["plan"],
        "properties": {"plan": {"type": "string", "minLength": 1}},
    },
)
SKIP_GATE = ToolSpec(
    "skip_gate",
    "Ask to skip one of the change's gates (plan, plan_review, implement, test, review, "
    "commit). Always refused: gates are turned off only in the route's configuration.",
    {
        "type": "object",
        "additionalProperties": False,
        "required": ["gate"],
        "properties": {"gate": {"type": "string"}, "reason": {"type": "string"}},
    },
)
COMMIT = ToolSpec(
    "commit",
    "Ask taskyard to commit now. Refused until every gate has passed: taskyard commits the "
    "reviewed state itself.",
    {"type": "object", "properties": {"message": {"type": "string"}}},
)
PUSH = ToolSpec(
    "push",
    "Ask taskyard to push now. Refused until every gate has passed: taskyard pushes itself.",
    {"type": "object", "properties": {"branch": {"type": "string"}}},
)
CREATE_SUBTASK = ToolSpec(
    "create_subtask",
    "Create a subtask: a separate piece of the change another agent run does in its own "
    "workspace, with its own gates. Your change waits for every subtask and then includes "
    "their commits; asking again with the same title gives the same subtask.",
    {
        "type": "object",
        "additionalProperties": False,
        "required": ["title", "prompt"],
        "properties": {
            "title": {"type": "string", "minLength": 1, "maxLength": 200},
            "prompt": {"type": "string", "minLength": 1, "maxLength": 20000},
            "agent": {"type": "string", "description": "a configured agent (default: yours)"},
        },
    },
)
GATE_TOOLS = (SUBMIT_PLAN, SKIP_GATE, COMMIT, PUSH)

OnRefusal = Callable[[str, dict[str, Any], str], Awaitable[None]]
# (title, prompt, agent or None) → the subtask; TaskyardError says why not
CreateSubtask = Callable[[str, str, str | None], Awaitable[Task]]


class GateTools:
    """A change task's gate tools, in front of its other tools (`inner`, if any).
    `remaining()` names the gates still to pass, in order."""

    def __init__(
        self,
        plan_file: Path,
        remaining: Callable[[], Sequence[str]],
        on_refusal: OnRefusal,
        inner: ToolHandler | None = None,
        create_subtask: CreateSubtask | None = None,
    ) -> None:
        self.plan_file = plan_file
        self.remaining = remaining
        self.on_refusal = on_refusal
        self.inner = inner
        self.create_subtask = create_subtask
        own = GATE_TOOLS + ((CREATE_SUBTASK,) if create_subtask else ())
        self.own = own
        names = {spec.name for spec in own}
        clash = names & {spec.name for spec in inner.tools()} if inner else set()
        if clash:
            raise ValueError(f"gate tools clash with the task's tools: {sorted(clash)}")

    def tools(self) -> list[ToolSpec]:
        return [*self.own, *(self.inner.tools() if self.inner else [])]

    async def call(self, name: str, arguments: dict[str, Any]) -> ToolAnswer:
        if name == SUBMIT_PLAN.name:
            self.plan_file.write_text(str(arguments["plan"]), encoding="utf-8")
            return ToolAnswer(True, f"plan kept as {self.plan_file.name} for the plan review")
        if name in (SKIP_GATE.name, COMMIT.name, PUSH.name):
            return await self._refuse(name, arguments)
        if name == CREATE_SUBTASK.name and self.create_subtask is not None:
            return await self._subtask(arguments)
        if self.inner is not None:
            return await self.inner.call(name, arguments)
        return ToolAnswer(False, f"unknown tool: {name}")

    async def _subtask(self, arguments: dict[str, Any]) -> ToolAnswer:
        assert self.create_subtask is not None
        agent = arguments.get("agent")
        try:
            task = await self.create_subtask(
                str(arguments["title"]), str(arguments["prompt"]), str(agent) if agent else None
            )
        except TaskyardError as exc:
            await self.on_refusal(CREATE_SUBTASK.name, arguments, str(exc))
            return ToolAnswer.refused(str(exc))
        text = (
            f"subtask {task.id} ({task.status}): it runs in its own workspace; this change "
            "waits for it after the implement gate and then includes its commit"
        )
        return ToolAnswer(True, text, {"task_id": task.id, "status": str(task.status)})

    async def _refuse(self, name: str, arguments: dict[str, Any]) -> ToolAnswer:
        left = list(self.remaining())
        if name == SKIP_GATE.name:
            gate = str(arguments.get("gate") or "")
            why = (
                f"the {gate or 'named'} gate cannot be skipped: gates are turned off only in "
                "the route's configuration"
            )
        else:
            why = f"only taskyard may {name}, once every gate has passed"
        if left:
            why += f"; gates still to pass: {', '.join(left)}"
        await self.on_refusal(name, arguments, why)
        return ToolAnswer.refused(why)
