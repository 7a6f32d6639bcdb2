"""In-memory stand-ins for the apply step's collaborators, for tests.

`FakeWriter` records every request and follows a script of failures; `FakePlanner` plans one
request per action (two for `create_pr`); `WriterLookup` finds a marker in what a
`FakeWriter` accepted, as a real lookup finds it in a platform's comments.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from taskyard.actions.keys import markers_in
from taskyard.actions.models import ParsedAction, Target
from taskyard.exceptions import ActionError
from taskyard.platforms.writes import PlannedRequest, WriteResult


class Crash(BaseException):
    """Stands for the process dying: nothing in taskyard catches it."""


@dataclass(frozen=True, slots=True)
class Scripted:
    error: BaseException
    took_effect: bool = False  # the platform applied the request before the error


@dataclass
class FakeWriter:
    platform: str
    calls: list[PlannedRequest] = field(default_factory=list)  # every request received
    applied: list[PlannedRequest] = field(default_factory=list)  # the ones that took effect
    script: list[Scripted | None] = field(default_factory=list)  # per call; None = success

    def fail(self, error: BaseException, *, took_effect: bool = False) -> FakeWriter:
        self.script.append(Scripted(error, took_effect))
        return self

    def succeed(self) -> FakeWriter:
        self.script.append(None)
        return self

    async def send(self, request: PlannedRequest) -> WriteResult:
        self.calls.append(request)
        step = self.script.pop(0) if self.script else None
        if step is not None and not step.took_effect:
            raise step.error
        self.applied.append(request)
        if step is not None:
            raise step.error
        n = len(self.applied)
        return WriteResult(external_id=f"{self.platform}-{n}", url=f"https://{self.platform}/{n}")


@dataclass
class FakePlanner:
    """Plans `POST /{type}` with the params and the target as the body."""

    unsupported: Collection[str] = ()

    def plan(self, action: ParsedAction, target: Target) -> list[PlannedRequest]:
        if action.type in self.unsupported:
            raise ActionError(f"{action.type} cannot be applied on {target.platform}")
        where = target.repo or target.issue_id or target.channel
        body = {"target": f"{target.platform}:{where}", **action.params_json()}
        steps = ("branch", "pull") if action.type == "create_pr" else ("",)
        return [
            PlannedRequest(
                platform=target.platform,
                method="POST",
                path=f"/{action.type}" + (f"/{s}" if s else ""),
                body=body,
                description=f"{action.type} {s}".strip(),
            )
            for s in steps
        ]


@dataclass
class WriterLookup:
    """Looks for the action's marker in the bodies a FakeWriter accepted."""

    writer: FakeWriter
    calls: int = 0

    async def find(
        self, action: ParsedAction, target: Target, request: PlannedRequest
    ) -> WriteResult | None:
        self.calls += 1
        if action.spec.marker_field is None:
            raise ActionError(f"cannot look for {action.type} actions")
        for n, request in enumerate(self.writer.applied, start=1):
            texts = [v for v in request.body.values() if isinstance(v, str)]
            if any(action.key in markers_in(t) for t in texts):
                return WriteResult(external_id=f"found-{n}", url=f"https://found/{n}")
        return None
