"""Admitting a pull-request fix when its task is created: the bounds the payload cannot
decide, read and written in the store in one transaction per fix.

A comment fix (`routing.fixes`) is asked of `Store.request_fix`: at most
`changes.attempts_per_comment` tasks per comment, `changes.fixes_per_pr_per_hour` per PR and
the PR's cost ceiling. A failing check (`routing.cifixes`) is asked of
`Store.request_ci_fix`: only on a head taskyard pushed, at most `CI_FIXES_PER_HEAD` per head,
the same check failing again on that head a flaky rerun, and then the same per-PR bounds.
A refusal is the route's decision in words; nothing else about the route changes.

A fix task's id is derived from the event and the route (`fix_task_id`), and the store
answers a second request for the same task with the first answer: a routing job that runs
again after a crash neither counts its fix twice nor leaves a fix without its task.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

from taskyard.config.changes import ChangesConfig
from taskyard.config.routes import RoutingSettings
from taskyard.models import Event
from taskyard.records import CiOutcome, FixLimits
from taskyard.routing.cifixes import CiFixRequest, CiPull, ci_fix_request, is_check_event
from taskyard.routing.fixes import FixRequest, fix_request
from taskyard.routing.payload import payload_of
from taskyard.routing.select import RouteMatch
from taskyard.store.base import Store


@dataclass(frozen=True, slots=True)
class Admission:
    """May the fix task start: `refused` says why not; `match` is the route match the task
    is made from (a CI fix's names its pull request, which a check event does not)."""

    match: RouteMatch
    refused: str | None = None


def fix_task_id(event_id: str, route: str) -> str:
    """The id of the task `route` starts for `event_id`: the same every time routing runs.
    Like `models.new_id`, 32 hex characters; it leads with the event id's clock part."""
    digest = hashlib.sha256(f"{event_id}\0{route}".encode()).hexdigest()
    return f"{event_id[:12]}{digest[:20]}"


def fix_limits(changes: ChangesConfig) -> FixLimits:
    return FixLimits(
        attempts_per_comment=changes.attempts_per_comment,
        fixes_per_pr_per_hour=changes.fixes_per_pr_per_hour,
        cost_ceiling_per_pr_usd=changes.cost_ceiling_per_pr_usd,
    )


def admit_fix(
    store: Store,
    event: Event,
    match: RouteMatch,
    task_id: str,
    now: float,
    changes: ChangesConfig,
    routing: RoutingSettings,
) -> Admission:
    """Ask the store to admit the fix that `match` (a route with `fix:`) starts as task
    `task_id`. Blocking: call it from a thread."""
    fix = match.route.fix
    bots = (routing.bot_user,) if routing.bot_user else ()
    limits = fix_limits(changes)
    payload = payload_of(event)
    if fix is not None and fix.on_ci_failure and is_check_event(event.type):
        failing = ci_fix_request(event.type, payload, bots)
        if isinstance(failing, CiFixRequest):
            return _admit_ci(store, match, failing, task_id, now, limits)
    elif fix is not None:
        asked = fix_request(
            event.type,
            payload,
            fix.phrase,
            bots,
            on_changes_requested=fix.on_changes_requested,
            drafts=match.route.drafts,
        )
        if isinstance(asked, FixRequest):
            return _admit_comment(store, event, match, asked, task_id, now, limits)
    return Admission(match)  # the trigger held on the same payload: nothing to admit


def _admit_comment(
    store: Store,
    event: Event,
    match: RouteMatch,
    asked: FixRequest,
    task_id: str,
    now: float,
    limits: FixLimits,
) -> Admission:
    pr = pr_key(asked.repo, asked.number)
    comment = str(asked.comment_id) if asked.comment_id is not None else event.id
    admission = store.request_fix(pr, comment, task_id, now, limits)
    return Admission(match, None if admission.admitted else f"fix refused: {admission.reason}")


def _admit_ci(
    store: Store,
    match: RouteMatch,
    failing: CiFixRequest,
    task_id: str,
    now: float,
    limits: FixLimits,
) -> Admission:
    pull = _pushed_pull(store, failing)
    pr = pr_key(failing.repo, pull.number)
    found = store.request_ci_fix(pr, failing.head_sha, failing.check, task_id, now, limits)
    if found.outcome is CiOutcome.RERUN:
        return Admission(match, f"flaky rerun, not fixed again: {found.reason}")
    if found.outcome is CiOutcome.REFUSED:
        return Admission(match, f"fix refused: {found.reason}")
    subject = replace(
        match.subject,
        number=pull.number,
        pull_request=True,
        head_ref=pull.head_ref or match.subject.head_ref,
        base_ref=pull.base_ref,
    )
    return Admission(replace(match, subject=subject))


def _pushed_pull(store: Store, failing: CiFixRequest) -> CiPull:
    """The first named pull request taskyard pushed the head to (else the first named)."""
    for pull in failing.pulls:
        if store.pushed_by_taskyard(pr_key(failing.repo, pull.number), failing.head_sha):
            return pull
    return failing.pulls[0]


def pr_key(repo: str, number: int) -> str:
    """How the store names a pull request: `github:acme/api#12`."""
    return f"github:{repo}#{number}"
