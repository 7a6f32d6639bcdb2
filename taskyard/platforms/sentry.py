"""Sentry reads over its REST API (`/api/0/`, the same on sentry.io and self-hosted):
an issue, and its latest event (the stack trace). Organisation-scoped paths when the
organisation is known, else the older issue paths. Only what helps an agent is kept; user
lists (participants, seenBy, an event's user) are dropped."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx

from taskyard.exceptions import PlatformPermanentError
from taskyard.platforms.base import JSONObject, RetryPolicy, Sleep
from taskyard.platforms.rest import JsonHttp
from taskyard.platforms.retry import with_retries

ISSUE_KEYS = (
    "id", "shortId", "title", "culprit", "level", "status", "substatus", "platform", "type",
    "metadata", "count", "userCount", "firstSeen", "lastSeen", "permalink", "project",
    "assignedTo", "numComments", "isUnhandled",
)  # fmt: skip
EVENT_KEYS = (
    "id", "eventID", "groupID", "title", "message", "platform", "culprit", "location",
    "dateCreated", "tags", "contexts", "release", "entries",
)  # fmt: skip
MAX_BREADCRUMBS = 30


def issue_shape(raw: Mapping[str, Any]) -> JSONObject:
    return {key: raw[key] for key in ISSUE_KEYS if key in raw}


def _entry(entry: Any) -> Any:
    """Breadcrumbs cut to the last `MAX_BREADCRUMBS`; other entries as they are."""
    if not isinstance(entry, Mapping) or entry.get("type") != "breadcrumbs":
        return entry
    raw_data = entry.get("data")
    data: Mapping[str, Any] = raw_data if isinstance(raw_data, Mapping) else {}
    raw_values = data.get("values")
    values: list[Any] = raw_values if isinstance(raw_values, list) else []
    return {**entry, "data": {**data, "values": values[-MAX_BREADCRUMBS:]}}


def event_shape(raw: Mapping[str, Any]) -> JSONObject:
    kept = {key: raw[key] for key in EVENT_KEYS if key in raw}
    if isinstance(kept.get("entries"), list):
        kept["entries"] = [_entry(e) for e in kept["entries"]]
    return kept


class SentryClient:
    def __init__(
        self,
        token: str,
        *,
        base_url: str = "https://sentry.io",
        organization: str | None = None,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), headers=headers, timeout=timeout, transport=transport
        )
        self._http = JsonHttp(self._client, "sentry", (token,))
        self._organization = organization
        self._retry = retry or RetryPolicy()
        self._sleep = sleep

    async def aclose(self) -> None:
        await self._client.aclose()

    def _issue_path(self, issue_id: str, organization: str | None) -> str:
        org = organization or self._organization
        issue = quote(issue_id, safe="")
        if org:
            return f"/api/0/organizations/{quote(org, safe='')}/issues/{issue}/"
        return f"/api/0/issues/{issue}/"

    async def _get(self, path: str) -> Mapping[str, Any]:
        what = f"GET {path}"
        body = await with_retries(
            lambda: self._http.json("GET", path, what),
            policy=self._retry,
            sleep=self._sleep,
            platform="sentry",
            what=what,
        )
        if not isinstance(body, Mapping):
            raise PlatformPermanentError(f"sentry: {what} is not an object", platform="sentry")
        return body

    async def issue(self, issue_id: str, *, organization: str | None = None) -> JSONObject:
        return issue_shape(await self._get(self._issue_path(issue_id, organization)))

    async def latest_event(self, issue_id: str, *, organization: str | None = None) -> JSONObject:
        path = self._issue_path(issue_id, organization) + "events/latest/"
        return event_shape(await self._get(path))
