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

# GitHub and Sentry name the event in a header the payload cannot always tell; a guess by the
# payload's keys is used only when --event is not given (first match wins).
_GITHUB_GUESS = (
    ("zen", "ping"),
    ("review", "pull_request_review"),
    ("commits", "push"),
    ("check_run", "check_run"),
    ("pull_request", "pull_request"),
    ("comment", "issue_comment"),
    ("issue", "issues"),
    ("installation", "installation"),
)
_SENTRY_GUESS = (
    ("metric_alert", "metric_alert"),
    ("event", "event_alert"),
    ("comment", "comment"),
    ("issue", "issue"),
    ("installation", "installation"),
)


class SendError(TaskyardError):
    pass


def _guess(table: tuple[tuple[str, str], ...], keys: Any, what: str) -> str:
    for key, name in table:
        if key in keys:
            return name
    raise SendError(f"cannot tell the {what} from the payload: pass --event")


def _event_headers(key: str, body: bytes, event: str | None) -> dict[str, str]:
    if key not in ("github", "sentry"):
        return {}
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        payload = {}
    if key == "github":
        return {"x-github-event": event or _guess(_GITHUB_GUESS, payload, "GitHub event")}
    data = payload.get("data", {}) if isinstance(payload, dict) else {}
    return {"sentry-hook-resource": event or _guess(_SENTRY_GUESS, data, "Sentry resource")}


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
