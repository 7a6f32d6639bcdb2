"""A task's spec (`TaskSpec`, fixed when routing creates the task) read for its run: the
repository to check out, the event as the agent sees it, and the context gathered for it."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from taskyard.models import Event
from taskyard.platforms import ContextSubject, Platforms, subject_from_payload
from taskyard.platforms.context import FetchStatus, gather_context
from taskyard.platforms.screen import screen, trigger_time
from taskyard.routing import payload_of
from taskyard.routing.spec import TaskSpec
from taskyard.run.workspace import RepoSpec

log = logging.getLogger(__name__)

__all__ = ["ContextGatherer", "ContextSubject", "TaskSpec", "event_json", "repo_spec"]


def repo_spec(spec: TaskSpec) -> RepoSpec | None:
    if not spec.repo:
        return None
    r = spec.repo
    return RepoSpec(
        full_name=str(r["full_name"]),
        ref=r.get("ref"),
        sha=r.get("sha"),
        pr_number=r.get("pr_number"),
        base_sha=r.get("base_sha"),
        base_ref=r.get("base_ref"),
    )


def event_json(event: Event) -> dict[str, Any]:
    """The event as the agent sees it in `context/event.json` (no headers: they may name
    internal hosts; no signature headers were ever kept)."""
    return {
        "id": event.id,
        "source": event.source,
        "type": event.type,
        "delivery_id": event.delivery_id,
        "subject": event.subject,
        "actor": event.actor,
        "priority": f"P{int(event.priority)}",
        "received_at": event.received_at,
        "payload": payload_of(event),
    }


class ContextGatherer:
    """Runs a task's context fetchers into `context/`; returns what failed, in words."""

    def __init__(self, platforms: Platforms, timeout: float) -> None:
        self.platforms = platforms
        self.timeout = timeout

    async def gather(
        self,
        spec: TaskSpec,
        source: str,
        payload: Mapping[str, Any],
        context_dir: Path,
        received_at: float | None = None,
    ) -> list[str]:
        """`payload` is the event's parsed body (the executor has it from `event_json`).
        Fetchers whose platform has no credentials are no failure: the agent goes without
        them, and `context/unavailable.json` says which and why. What is written is cleaned
        and as of the trigger (`taskyard.platforms.screen`; `received_at`: when the delivery
        arrived, the cutoff when the payload gives no time of its own; default now)."""
        if not spec.context:
            return []
        subject = subject_from_payload(source, payload)
        arrived = time.time() if received_at is None else received_at
        cutoff = trigger_time(source, payload, arrived)
        report = await gather_context(
            spec.context,
            subject,
            self.platforms,
            context_dir,
            self.timeout,
            lambda name, data: screen(name, data, cutoff, payload),
        )
        missing = {r.name: r.error for r in report.failed(FetchStatus.UNAVAILABLE)}
        if missing:
            log.warning("context unavailable", extra={"missing": sorted(missing)})
            (context_dir / "unavailable.json").write_bytes(
                orjson.dumps(missing, option=orjson.OPT_INDENT_2)
            )
        skip = (FetchStatus.OK, FetchStatus.UNAVAILABLE)
        return [f"{r.name}: {r.error}" for r in report.results if r.status not in skip]
