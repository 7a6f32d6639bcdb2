"""Jobs: what a queued unit of work runs, and the retry/dead-letter logic every queue shares.

A job has a name (the registry key) and a ref (for now: an event id). Handlers raise
TransientError (retried with backoff), PermanentError (dead letters at once) or anything else
(treated as transient). Each attempt is one step: its outcome is a plain value, so a durable
engine can record and replay it.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from taskyard.config import RetryConfig
from taskyard.exceptions import PermanentError
from taskyard.models import DeadLetter, DeadLetterStatus, EventStatus, new_id
from taskyard.store.base import Store

log = logging.getLogger(__name__)

ROUTE_JOB = "route"


@dataclass(frozen=True, slots=True)
class JobContext:
    job: str
    ref: str
    attempt: int
    store: Store


# A handler may say how the event ended (e.g. IGNORED); None means PROCESSED.
Handler = Callable[[JobContext], Awaitable[EventStatus | None]]


@dataclass(frozen=True, slots=True)
class Outcome:
    ok: bool
    permanent: bool = False
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "permanent": self.permanent, "error": self.error}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Outcome:
        return cls(bool(data["ok"]), bool(data["permanent"]), data.get("error"))


@dataclass
class JobRuntime:
    """What a worker process needs to run jobs: the store, the handlers, the retry policy."""

    store: Store
    handlers: dict[str, Handler]
    retry: RetryConfig
    clock: Callable[[], float] = time.time
    on_outcome: list[Callable[[str, str], None]] = field(default_factory=list)
    # Runs one task to its end and returns its final status (set when the run stage is wired).
    run_task: Callable[[str], Awaitable[str]] | None = None

    def report(self, job: str, result: str) -> None:
        """Tell the listeners (metrics) that a job finished: `processed` or `dead`."""
        for listener in self.on_outcome:
            listener(job, result)

    def handler(self, job: str) -> Handler:
        try:
            return self.handlers[job]
        except KeyError:
            raise PermanentError(f"no handler registered for job {job!r}") from None


def _describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) < 2000 else text[:2000] + "…"


async def execute_attempt(rt: JobRuntime, job: str, ref: str, attempt: int) -> Outcome:
    """Run one attempt; never raises: the outcome says what happened."""
    await asyncio.to_thread(rt.store.start_event, ref)
    try:
        status = await rt.handler(job)(JobContext(job, ref, attempt, rt.store))
    except PermanentError as exc:
        log.warning(
            "job failed permanently",
            extra={
                "job": job,
                "ref": ref,
                "event_id": ref,
                "attempt": attempt,
                "error": _describe(exc),
            },
        )
        return Outcome(ok=False, permanent=True, error=_describe(exc))
    except Exception as exc:  # noqa: BLE001 - any other error is recorded and retried
        log.warning(
            "job attempt failed",
            extra={
                "job": job,
                "ref": ref,
                "event_id": ref,
                "attempt": attempt,
                "error": _describe(exc),
                "trace": traceback.format_exc(limit=5),
            },
        )
        return Outcome(ok=False, permanent=False, error=_describe(exc))
    final = status or EventStatus.PROCESSED
    await asyncio.to_thread(rt.store.finish_event, ref, final, None, rt.clock())
    rt.report(job, "processed")
    return Outcome(ok=True)


async def dead_letter(rt: JobRuntime, job: str, ref: str, attempts: int, error: str) -> str:
    """Record the failure in the dead letters; the first one of a job is retried once later."""
    now = rt.clock()
    earlier = await asyncio.to_thread(rt.store.replays_of, job, ref)
    auto = rt.retry.dlq_auto_retry_hours
    letter = DeadLetter(
        id=new_id(),
        job=job,
        ref=ref,
        error=error,
        attempts=attempts,
        failed_at=now,
        status=DeadLetterStatus.OPEN,
        replays=earlier,
        auto_retry_at=now + auto * 3600 if auto > 0 and earlier == 0 else None,
    )
    await asyncio.to_thread(rt.store.add_dead_letter, letter)
    await asyncio.to_thread(rt.store.finish_event, ref, EventStatus.DEAD, error, now)
    rt.report(job, "dead")
    log.error(
        "job dead-lettered",
        extra={
            "job": job,
            "ref": ref,
            "event_id": ref,
            "attempts": attempts,
            "dead_letter": letter.id,
            "error": error,
        },
    )
    return letter.id


async def run_attempts(
    retry: RetryConfig,
    attempt: Callable[[int], Awaitable[Outcome]],
    sleep: Callable[[float], Awaitable[None]],
    bury: Callable[[int, str], Awaitable[str]],
) -> str:
    """The shared retry loop: `processed` or `dead`. Steps are passed in so a durable engine
    can checkpoint each one."""
    for number in range(1, retry.attempts + 1):
        outcome = await attempt(number)
        if outcome.ok:
            return "processed"
        if outcome.permanent or number == retry.attempts:
            await bury(number, outcome.error or "unknown error")
            return "dead"
        await sleep(retry.delay(number))
    raise AssertionError("unreachable: the loop always returns")
