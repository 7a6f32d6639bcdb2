"""Frozen value objects and the enums of every state machine taskyard keeps."""

from __future__ import annotations

import enum
import random
import time
from dataclasses import dataclass, field
from typing import Any


class Priority(enum.IntEnum):
    """P0 is the most urgent; the queue runs lower numbers first."""

    P0 = 0
    P1 = 1
    P2 = 2
    P3 = 3

    @classmethod
    def parse(cls, value: str | int) -> Priority:
        if isinstance(value, int):
            return cls(value)
        return cls[value.strip().upper()]


class EventStatus(enum.StrEnum):
    RECEIVED = "received"  # stored, not yet handed to the queue
    QUEUED = "queued"  # handed to the queue
    PROCESSING = "processing"
    PROCESSED = "processed"  # routed: started one task or more
    IGNORED = "ignored"  # routed: no task started (the route decisions say why)
    DEAD = "dead"  # in the dead letters


class DeadLetterStatus(enum.StrEnum):
    OPEN = "open"
    REPLAYED = "replayed"


def new_id() -> str:
    """A 32-hex-character id that sorts by creation time (48-bit ms clock + 80 random bits).
    `random`'s generator is seeded from the OS and reseeded in a forked child; ids need to be
    unique, not secret, so it saves a system call per id on the hot path."""
    return f"{int(time.time() * 1000):012x}{random.getrandbits(80):020x}"


@dataclass(frozen=True, slots=True)
class Event:
    """One verified delivery, normalised. `body` is the raw request body, byte-exact."""

    id: str
    source: str
    type: str
    delivery_id: str | None
    subject: str | None
    actor: str | None
    received_at: float
    priority: Priority
    headers: dict[str, str]
    body: bytes
    content_hash: str
    status: EventStatus = EventStatus.RECEIVED
    attempts: int = 0
    error: str | None = None
    processed_at: float | None = None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: str
    job: str
    ref: str
    error: str
    attempts: int
    failed_at: float
    status: DeadLetterStatus
    replays: int = 0
    auto_retry_at: float | None = None
    replayed_at: float | None = None


@dataclass(frozen=True, slots=True)
class StoreResult:
    """What the store did with one event: stored new, or found the first of its duplicates."""

    event_id: str
    duplicate: bool


class TaskStatus(enum.StrEnum):
    """queued → preparing → running → [applying ⇄ awaiting_approval →] succeeded | failed |
    timed_out | cancelled | expired.

    `applying`: the agent's result is stored and its actions are being applied; a task found
    in it after a crash applies the rest of them without running the agent again."""

    QUEUED = "queued"
    PREPARING = "preparing"
    RUNNING = "running"
    APPLYING = "applying"
    AWAITING_APPROVAL = "awaiting_approval"  # holds no worker and no agent: a decision resumes it
    WAITING = "waiting"  # for its subtasks: holds no worker and no agent; their ends resume it
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    EXPIRED = "expired"  # an approval it waited for expired: its action was not applied

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset(
    {
        TaskStatus.SUCCEEDED,
        TaskStatus.FAILED,
        TaskStatus.TIMED_OUT,
        TaskStatus.CANCELLED,
        TaskStatus.EXPIRED,
    }
)


@dataclass(frozen=True, slots=True)
class Task:
    """One route run for one event. `spec` is what the run needs (the route's settings and the
    event's subject), fixed when the task is created, so a retry runs the same thing."""

    id: str
    event_id: str
    route: str
    agent: str
    status: TaskStatus
    priority: Priority
    created_at: float
    updated_at: float
    workflow_id: str
    spec: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None
    attempts: int = 0
    started_at: float | None = None  # the agent of the latest attempt started
    finished_at: float | None = None
    workspace: str | None = None
    usage: dict[str, Any] = field(default_factory=dict)
    cost_usd: float | None = None
    result: dict[str, Any] | None = None
    worker: str | None = None
    process: dict[str, Any] | None = None  # the running agent's pid, pgid and start time
    cancel_requested: bool = False
    dispatched: bool = False
    ending: str | None = None  # how it ended (`taskyard.lifecycle.EndingKind`); reason: in words
    # A change task's gates (`taskyard.lifecycle.Gate`): the one it is in, and each one it
    # went through, oldest first ({"gate", "round", "outcome", "at", …}).
    gate: str | None = None
    gates: list[dict[str, Any]] = field(default_factory=list)
    parent_id: str | None = None  # the task that created it as a subtask


class Decision(enum.StrEnum):
    STARTED = "started"  # a task was created
    SKIPPED = "skipped"  # the route's type matched, a filter, trigger or draft rule did not
    FORBIDDEN = "forbidden"  # the actor may not trigger the route
    IGNORED = "ignored"  # no route matched at all
    APPROVAL = "approval"  # the event decided an approval request; it starts no route
    IDEA = "idea"  # the event brought an idea (taskyard.ideas): its scheduler takes it on


@dataclass(frozen=True, slots=True)
class RouteDecision:
    """What routing decided for one event and one route (route "*" when nothing matched)."""

    event_id: str
    route: str
    decision: Decision
    reason: str | None
    task_id: str | None
    decided_at: float
