"""What a task needs to run, fixed when routing creates it (stored as the task's `spec`; the
run stage reads it back with `TaskSpec.from_json`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["TaskSpec"]


@dataclass(frozen=True, slots=True)
class TaskSpec:
    route: str
    agent: str
    prompt: str
    context: tuple[str, ...] = ()
    repo: dict[str, Any] | None = None  # full_name, sha, ref, pr_number, base_sha, base_ref
    result_schema: dict[str, Any] | None = None  # None: the default result shape
    timeout_seconds: float | None = None
    max_tool_calls: int | None = None
    # Who triggered it: {"platform": source, "ids": [...]} (taskyard.approvals.duties)
    trigger: dict[str, Any] | None = None
    # A change route's (`mode: change`): {"gates": [...], "reviewer": agent or None,
    # "test_commands": [...], "mode": "suggest" | "push", "max_revisions": n}. None: an
    # action route.
    change: dict[str, Any] | None = None
    # A subtask's (`taskyard.run.subtasks`): {"title", "prompt", "parent"}, and how deep it is.
    subtask: dict[str, Any] | None = None
    depth: int = 0
    # An idea's task (`taskyard.ideas`): {"id", "role": "plan" | "task", …}.
    idea: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["context"] = list(self.context)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TaskSpec:
        return cls(
            route=str(data["route"]),
            agent=str(data["agent"]),
            prompt=str(data["prompt"]),
            context=tuple(data.get("context") or ()),
            repo=data.get("repo"),
            result_schema=data.get("result_schema"),
            timeout_seconds=data.get("timeout_seconds"),
            max_tool_calls=data.get("max_tool_calls"),
            trigger=data.get("trigger"),
            change=data.get("change"),
            subtask=data.get("subtask"),
            depth=int(data.get("depth") or 0),
            idea=data.get("idea"),
        )
