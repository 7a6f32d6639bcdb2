"""`GET /api/stats?window=24h` (or `since=2024-05-01T00:00:00Z`): how taskyard is doing.

- throughput: events received and tasks ended in the window, in all and per hour;
- tasks: how many ended, by status, the success rate (succeeded of ended), and the p50/p95
  duration (nearest rank) of those whose agent started;
- cost: in all, per task (of the tasks that reported a cost), per route, and today (UTC);
- queue: events and tasks by state now, what waits, and the open dead letters.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from taskyard.lifecycle import WORKING
from taskyard.models import EventStatus, TaskStatus
from taskyard.records import iso
from taskyard.store.base import EndedTasks, Store, WindowStats
from taskyard.web import params

DEFAULT_WINDOW = "24h"
_WINDOW = re.compile(r"([1-9][0-9]{0,8})([smhd])")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
_EPOCH = re.compile(r"[0-9]{1,12}(\.[0-9]{1,9})?")
_RFC3339 = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}):([0-9]{2})(\.[0-9]+)?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})"
)
_PENDING_EVENTS = (EventStatus.RECEIVED, EventStatus.QUEUED, EventStatus.PROCESSING)


def window_of(request: Request, now: float) -> float:
    """The start of the asked window (`window` or `since`; 24 hours by default)."""
    window = request.query_params.get("window")
    since = request.query_params.get("since")
    if window is not None and since is not None:
        raise params.bad("give window or since, not both")
    if since is not None:
        start = _parse_since(since)
        if start >= now:
            raise params.bad("since must be in the past")
        return max(0.0, start)  # nothing happened before 1970
    match = _WINDOW.fullmatch(DEFAULT_WINDOW if window is None else window)
    seconds = int(match.group(1)) * _UNIT[match.group(2)] if match else 0
    if seconds < 1:
        raise params.bad("window must be a whole number above 0 and a unit: s, m, h or d")
    return max(0.0, now - seconds)  # a window longer than the data is all of it


def _parse_since(value: str) -> float:
    if _EPOCH.fullmatch(value):
        return float(value)
    rfc = _RFC3339.fullmatch(value)
    if rfc:  # Python's parser takes neither a leap second nor more than 6 digits of fraction
        date, second, fraction, zone = rfc.groups()
        utc = "+00:00" if zone in ("Z", "z") else zone
        value = f"{date.upper()}:{min(int(second), 59):02d}{(fraction or '')[:7]}{utc}"
    try:
        parsed = datetime.fromisoformat(value)
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
    except (ValueError, OverflowError):
        raise params.bad("since must be an RFC 3339 time or seconds since the epoch") from None


def _rate(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole else None


def _money(usd: float) -> float:
    return round(usd, 6)


def _by_route(ended: tuple[EndedTasks, ...]) -> list[dict[str, Any]]:
    routes: dict[str, list[EndedTasks]] = {}
    for e in ended:
        routes.setdefault(e.route, []).append(e)
    shown = []
    for route, groups in sorted(routes.items()):
        finished = sum(g.count for g in groups)
        succeeded = sum(g.count for g in groups if g.status is TaskStatus.SUCCEEDED)
        cost = sum(g.cost_usd for g in groups)
        costed = sum(g.costed for g in groups)
        shown.append(
            {
                "route": route,
                "finished": finished,
                "succeeded": succeeded,
                "success_rate": _rate(succeeded, finished),
                "cost_usd": _money(cost),
                "cost_per_task_usd": _money(cost / costed) if costed else None,
            }
        )
    return shown


def stats_json(
    w: WindowStats,
    today: WindowStats,
    events: Mapping[str, int],
    tasks: Mapping[str, int],
    letters: Mapping[str, int],
    since: float,
    until: float,
) -> dict[str, Any]:
    hours = (until - since) / 3600
    finished = sum(e.count for e in w.ended)
    succeeded = sum(e.count for e in w.ended if e.status is TaskStatus.SUCCEEDED)
    cost = sum(e.cost_usd for e in w.ended)
    costed = sum(e.costed for e in w.ended)
    by_status = {str(s): 0 for s in TaskStatus if s.terminal}
    for e in w.ended:
        by_status[str(e.status)] += e.count
    return {
        "window": {"since": iso(since), "until": iso(until), "seconds": round(until - since)},
        "throughput": {
            "events_received": w.events_received,
            "events_per_hour": round(w.events_received / hours, 3),
            "tasks_finished": finished,
            "tasks_per_hour": round(finished / hours, 3),
        },
        "tasks": {
            "finished": finished,
            "succeeded": succeeded,
            "success_rate": _rate(succeeded, finished),
            "by_status": by_status,
            "duration_seconds": {
                "count": w.timed,
                "p50": _seconds(w.percentiles.get(50)),
                "p95": _seconds(w.percentiles.get(95)),
            },
        },
        "cost": {
            "total_usd": _money(cost),
            "tasks_with_cost": costed,
            "per_task_usd": _money(cost / costed) if costed else None,
            "today_usd": _money(sum(e.cost_usd for e in today.ended)),
            "by_route": _by_route(w.ended),
        },
        "queue": _queue(events, tasks, letters),
    }


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _queue(
    events: Mapping[str, int], tasks: Mapping[str, int], letters: Mapping[str, int]
) -> dict[str, Any]:
    event_states = {str(s): events.get(str(s), 0) for s in EventStatus}
    task_states = {str(s): tasks.get(str(s), 0) for s in TaskStatus}
    return {
        "events": event_states,
        "tasks": task_states,
        "events_pending": sum(event_states[str(s)] for s in _PENDING_EVENTS),
        "tasks_queued": task_states[str(TaskStatus.QUEUED)],
        "tasks_active": sum(task_states[str(s)] for s in WORKING),
        "tasks_awaiting_approval": task_states[str(TaskStatus.AWAITING_APPROVAL)],
        "dead_letters_open": letters.get("open", 0),
    }


def stats_routes(store: Store, clock: Callable[[], float] = time.time) -> list[Route]:
    async def stats(request: Request) -> Response:
        now = clock()
        since = window_of(request, now)

        def read() -> dict[str, Any]:
            midnight = now - now % 86_400
            return stats_json(
                store.window_stats(since, now),
                store.window_stats(midnight, now, ()),
                store.count_events(),
                store.count_tasks(),
                store.count_dead_letters(),
                since,
                now,
            )

        return JSONResponse(await asyncio.to_thread(read))

    return [Route("/api/stats", stats, methods=["GET"])]
