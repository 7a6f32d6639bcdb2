"""What taskyard keeps of an idea (beside `taskyard.models`): the idea, its state machine, the
tasks its plan became, and its event log, which is also the outbox its events are published
from (`taskyard.ideas.events`).

    registered ─plan→ planning ─plan_ready→ plan_ready ─run→ running ─review→ review
        ─integrate→ integration ─complete→ completed
    any live state ─fail→ failed · ─pause→ paused ─resume→ (the state it was paused in)
    any state but an ended one ─cancel→ cancelled
    planning ─replan→ planning (a plan sent back with its errors; `plan_version` + 1)

Each transition is written with its event in one transaction (`Store.idea_transition`), so the
log holds every decision, in order: each event has the idea's next `seq` (1, 2, 3…), and a
publisher sends them in that order, once each (`Nats-Msg-Id: <idea>-<seq>`).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class IdeaStatus(enum.StrEnum):
    REGISTERED = "registered"
    PLANNING = "planning"
    PLAN_READY = "plan_ready"
    RUNNING = "running"
    REVIEW = "review"
    INTEGRATION = "integration"
    COMPLETED = "completed"
    FAILED = "failed"
    PAUSED = "paused"
    CANCELLED = "cancelled"

    @property
    def ended(self) -> bool:
        return self in (IdeaStatus.COMPLETED, IdeaStatus.FAILED, IdeaStatus.CANCELLED)


class IdeaStep(enum.StrEnum):
    PLAN = "plan"
    REPLAN = "replan"
    PLAN_READY = "plan_ready"
    RUN = "run"
    REVIEW = "review"
    INTEGRATE = "integrate"
    COMPLETE = "complete"
    FAIL = "fail"
    PAUSE = "pause"
    RESUME = "resume"
    CANCEL = "cancel"


_S = IdeaStatus
_LIVE = frozenset(
    {_S.REGISTERED, _S.PLANNING, _S.PLAN_READY, _S.RUNNING, _S.REVIEW, _S.INTEGRATION}
)
# step → (from-states, to-state; None: the state it was paused in)
IDEA_STEPS: Mapping[IdeaStep, tuple[frozenset[IdeaStatus], IdeaStatus | None]] = {
    IdeaStep.PLAN: (frozenset({_S.REGISTERED}), _S.PLANNING),
    IdeaStep.REPLAN: (frozenset({_S.PLANNING}), _S.PLANNING),
    IdeaStep.PLAN_READY: (frozenset({_S.PLANNING}), _S.PLAN_READY),
    IdeaStep.RUN: (frozenset({_S.PLAN_READY}), _S.RUNNING),
    IdeaStep.REVIEW: (frozenset({_S.RUNNING}), _S.REVIEW),
    IdeaStep.INTEGRATE: (frozenset({_S.REVIEW}), _S.INTEGRATION),
    IdeaStep.COMPLETE: (frozenset({_S.INTEGRATION}), _S.COMPLETED),
    IdeaStep.FAIL: (_LIVE | {_S.PAUSED}, _S.FAILED),
    IdeaStep.PAUSE: (_LIVE, _S.PAUSED),
    IdeaStep.RESUME: (frozenset({_S.PAUSED}), None),
    IdeaStep.CANCEL: (_LIVE | {_S.PAUSED}, _S.CANCELLED),
}

# The subjects events go out on (`taskyard.ideas.events`), by what they are about.
INTENT, PLAN, EXECUTION, REVIEW, DEPLOY, TELEMETRY = (
    "taskyard.intent",
    "taskyard.plan",
    "taskyard.execution",
    "taskyard.review",
    "taskyard.deploy",
    "taskyard.telemetry",
)
SUBJECTS = (INTENT, PLAN, EXECUTION, REVIEW, DEPLOY, TELEMETRY)
SUBJECT_OF_STEP: Mapping[IdeaStep, str] = {
    IdeaStep.PLAN: PLAN,
    IdeaStep.REPLAN: PLAN,
    IdeaStep.PLAN_READY: PLAN,
    IdeaStep.RUN: EXECUTION,
    IdeaStep.REVIEW: REVIEW,
    IdeaStep.INTEGRATE: REVIEW,
    IdeaStep.COMPLETE: INTENT,
    IdeaStep.FAIL: INTENT,
    IdeaStep.PAUSE: INTENT,
    IdeaStep.RESUME: INTENT,
    IdeaStep.CANCEL: INTENT,
}


IDEA_FIELDS = frozenset({"reason", "plan_version", "branch", "pr_url", "budget_usd"})


def idea_changes(
    idea: Idea, step: IdeaStep, fields: Mapping[str, Any], now: float
) -> dict[str, Any] | None:
    """The columns `step` changes on `idea` (with the `fields` it is given, of `IDEA_FIELDS`),
    or None when the idea is not in one of the step's from-states. Both stores write this."""
    unknown = set(fields) - IDEA_FIELDS
    if unknown:
        raise ValueError(f"an idea step may not set {sorted(unknown)}")
    sources, target = IDEA_STEPS[step]
    if idea.status not in sources:
        return None
    changes: dict[str, Any] = {**fields, "updated_at": now, "paused_from": idea.paused_from}
    if step is IdeaStep.PAUSE:
        changes["paused_from"] = str(idea.status)
    if target is None:  # resume: back where it was paused
        changes["status"] = IdeaStatus(idea.paused_from or IdeaStatus.RUNNING)
        changes["paused_from"] = None
    else:
        changes["status"] = target
    return changes


def step_target(step: IdeaStep, status: IdeaStatus, paused_from: str | None) -> IdeaStatus:
    """Where `step` takes an idea in `status`; ValueError when it may not."""
    sources, target = IDEA_STEPS[step]
    if status not in sources:
        raise ValueError(f"an idea {status} cannot {step}")
    if target is None:  # resume: back where it was paused
        return IdeaStatus(paused_from or IdeaStatus.RUNNING)
    return target


@dataclass(frozen=True, slots=True)
class Idea:
    """One idea. `shape` is what was submitted (goal, constraints, success metrics, priority,
    repo, labels, risk: `taskyard.ideas.shape.IdeaShape`); `origin` where it came from, to
    answer there (`{"platform": "github", "repo", "number"}`, `{"platform": "discord",
    "application_id", "token"}`, `{"platform": "cli"}`…); `event_id` the event its tasks hang
    from."""

    id: str
    status: IdeaStatus
    shape: dict[str, Any]
    origin: dict[str, Any]
    event_id: str
    created_at: float
    updated_at: float
    reason: str | None = None
    plan_version: int = 0
    paused_from: str | None = None
    branch: str | None = None  # taskyard/idea-<id>: where its tasks are integrated
    pr_url: str | None = None
    budget_usd: float | None = None
    last_seq: int = 0  # its event log's last seq

    @property
    def goal(self) -> str:
        return str(self.shape.get("goal") or "")

    @property
    def repo(self) -> str | None:
        repo = self.shape.get("repo")
        return str(repo) if repo else None


@dataclass(frozen=True, slots=True)
class IdeaEvent:
    """One entry of an idea's event log (and outbox): `seq` is its place in the idea's log."""

    idea_id: str
    seq: int
    subject: str  # one of SUBJECTS
    kind: str  # registered, planning, plan_rejected, task_started, task_succeeded, …
    data: dict[str, Any]
    at: float
    published_at: float | None = None

    @property
    def msg_id(self) -> str:
        """What a consumer dedupes by (`Nats-Msg-Id`)."""
        return f"{self.idea_id}-{self.seq}"


@dataclass(frozen=True, slots=True)
class IdeaTask:
    """A task of an idea's plan: `key` its id in the plan, `task_id` the taskyard task it runs
    as (None until it is scheduled), `depends_on` the plan keys it waits for."""

    idea_id: str
    key: str
    title: str
    depends_on: tuple[str, ...]
    plan_version: int
    spec: dict[str, Any] = field(default_factory=dict)  # the plan's entry, as given
    task_id: str | None = None
    branch: str | None = None
    integrated: str | None = None  # the idea-branch commit that holds it, once integrated
