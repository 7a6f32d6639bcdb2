"""An in-memory `ToolHandler` for tests: fixed tools, recorded calls, scripted refusals."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from taskyard.tools.base import ToolAnswer, ToolSpec

ADD_LABELS = ToolSpec(
    "add_labels",
    "Add labels to the task's issue or pull request.",
    {
        "type": "object",
        "properties": {"labels": {"type": "array", "items": {"type": "string"}, "minItems": 1}},
        "required": ["labels"],
        "additionalProperties": False,
    },
)
GET_ISSUE = ToolSpec(
    "get_issue",
    "Read an issue by number.",
    {
        "type": "object",
        "properties": {"number": {"type": "integer"}},
        "required": ["number"],
        "additionalProperties": False,
    },
)


@dataclass(frozen=True, slots=True)
class RecordedCall:
    name: str
    arguments: dict[str, Any]


class FakeToolHandler:
    """Answers every call with `answers[name]` (default: "done: <name>"), except the tools
    named in `refuse`, which answer "not allowed: <reason>". Every call is kept in `calls`."""

    def __init__(
        self,
        specs: list[ToolSpec] | None = None,
        answers: Mapping[str, ToolAnswer] | None = None,
        refuse: Mapping[str, str] | None = None,
    ) -> None:
        self.specs = list(specs) if specs is not None else [ADD_LABELS, GET_ISSUE]
        self.answers = dict(answers or {})
        self.refuse = dict(refuse or {})
        self.calls: list[RecordedCall] = []

    def tools(self) -> list[ToolSpec]:
        return list(self.specs)

    async def call(self, name: str, arguments: dict[str, Any]) -> ToolAnswer:
        self.calls.append(RecordedCall(name, arguments))
        if name in self.refuse:
            return ToolAnswer.refused(self.refuse[name])
        return self.answers.get(name, ToolAnswer(True, f"done: {name}"))
