"""`taskyard send`: sign a payload exactly as its platform would, and post it."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import httpx
import orjson

from taskyard.config import Settings
from taskyard.exceptions import TaskyardError
from taskyard.intake import make_adapter, source_key

# GitHub and Sentry name the event in a header the payload cannot always tell. Without
# --event, the payload's keys are matched against these signatures (the keys an event's
# payloads always carry, from @octokit/webhooks-examples and Sentry's samples); the guess is
# taken only when one matching signature holds every other match (a review comment's
# `comment` + `pull_request` over a commit comment's `comment`), else --event is asked for.
_GITHUB_SIGNATURES: tuple[tuple[frozenset[str], str], ...] = tuple(
    (frozenset(keys.split()), name)
    for keys, name in (
        ("zen hook_id", "ping"),
        ("commits ref before after pusher", "push"),
        ("pull_request number", "pull_request"),
        ("pull_request review", "pull_request_review"),
        ("pull_request comment", "pull_request_review_comment"),
        ("pull_request thread", "pull_request_review_thread"),
        ("issue", "issues"),
        ("issue label", "issues"),
        ("issue milestone", "issues"),
        ("pull_request number label", "pull_request"),
        ("pull_request number milestone", "pull_request"),
        ("issue comment", "issue_comment"),
        ("comment", "commit_comment"),
        ("discussion", "discussion"),
        ("discussion comment", "discussion_comment"),
        ("check_run", "check_run"),
        ("check_suite", "check_suite"),
        ("workflow_run workflow", "workflow_run"),
        ("workflow_job", "workflow_job"),
        ("release", "release"),
        ("ref ref_type pusher_type", "delete"),
        ("ref ref_type pusher_type master_branch", "create"),
        ("sha state context commit branches", "status"),
        ("forkee", "fork"),
        ("starred_at", "star"),
        ("label", "label"),
        ("milestone", "milestone"),
        ("deployment", "deployment"),
        ("deployment deployment_status", "deployment_status"),
    )
)
_SENTRY_SIGNATURES: tuple[tuple[frozenset[str], str], ...] = tuple(
    (frozenset({key}), name)
    for key, name in (
        ("metric_alert", "metric_alert"),
        ("event", "event_alert"),
        ("comment", "comment"),
        ("issue", "issue"),
        ("installation", "installation"),
    )
)


class SendError(TaskyardError):
    pass


class UnknownEvent(SendError):
    """The payload's event cannot be told from its keys: the user must name it (usage)."""


def guess_event(signatures: tuple[tuple[frozenset[str], str], ...], payload: Any, what: str) -> str:
    """The event whose signature the payload's keys match, when that is unambiguous: the
    matching signature that holds every other match. Otherwise SendError asking for
    --event (a wrong guess would be routed as an event that it is not)."""
    keys = set(payload) if isinstance(payload, dict) else set()
    matches = [(sig, name) for sig, name in signatures if sig <= keys]
    widest = [(sig, name) for sig, name in matches if all(other <= sig for other, _ in matches)]
    if len(widest) == 1:
        return widest[0][1]
    raise UnknownEvent(f"cannot tell the {what} of this payload; pass --event NAME")


def _event_headers(key: str, body: bytes, event: str | None) -> dict[str, str]:
    if key not in ("github", "sentry"):
        return {}
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        payload = {}
    if key == "github":
        return {"x-github-event": event or guess_event(_GITHUB_SIGNATURES, payload, "GitHub event")}
    data = payload.get("data", {}) if isinstance(payload, dict) else {}
    resource = event or guess_event(_SENTRY_SIGNATURES, data, "Sentry resource")
    return {"sentry-hook-resource": resource}


def _secret(settings: Settings, key: str, environ: Mapping[str, str]) -> str:
    if key == "discord":
        seed = environ.get("TASKYARD_DISCORD_PRIVATE_KEY", "")
        if not seed:
            raise SendError("signing as Discord needs TASKYARD_DISCORD_PRIVATE_KEY (hex seed)")
        return seed
    secrets = settings.source(key).secrets
    if not secrets:
        raise SendError(f"no secret configured for {key}")
    return secrets[0]


def target_url(settings: Settings, source: str, url: str | None) -> str:
    if url is None:
        host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
        return f"http://{host}:{settings.port}/webhooks/{source}"
    if "/webhooks/" in url:
        return url
    return url.rstrip("/") + f"/webhooks/{source}"


def post_signed(
    settings: Settings,
    source: str,
    body: bytes,
    *,
    url: str | None,
    event: str | None,
    environ: Mapping[str, str],
) -> tuple[int, bytes]:
    key = source_key(source)
    adapter = make_adapter(key)
    signed = adapter.sign(
        _secret(settings, key, environ), body, time.time(), _event_headers(key, body, event)
    )
    response = httpx.post(
        target_url(settings, source, url), content=signed.body, headers=signed.headers, timeout=30.0
    )
    return response.status_code, response.content
