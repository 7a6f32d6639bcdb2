"""Linear reads: GraphQL over httpx. Every document sent is a file in `queries/`, and a
contract test validates each against Linear's published schema.

Errors: HTTP statuses as everywhere (`rest.status_error`); GraphQL errors by their
`extensions.code`: RATELIMITED, or any error under HTTP 429, is a rate limit (waits for
`Retry-After`, else until `X-RateLimit-Requests-Reset`, when given), INTERNAL_SERVER_ERROR is
transient, anything else (authentication, forbidden, entity not found, invalid input) is
permanent. `find_issue` / `find_comment` answer None for Linear's "Entity not found"."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any

import httpx

from taskyard.exceptions import (
    PlatformError,
    PlatformPermanentError,
    PlatformRateLimited,
    PlatformTransientError,
)
from taskyard.platforms.base import Clock, JSONObject, RetryPolicy, Sleep, redact
from taskyard.platforms.cache import TTLCache
from taskyard.platforms.rest import JsonHttp
from taskyard.platforms.retry import parse_retry_after, with_retries

QUERY_NAMES = (
    "issue",
    "issue_title",
    "related",
    "team",
    "team_directory",
    "issue_ref",
    "comment_ref",
)
_TRANSIENT_CODES = frozenset({"INTERNAL_SERVER_ERROR", "SERVICE_UNAVAILABLE"})


@cache
def query(name: str) -> str:
    """The GraphQL document `queries/<name>.graphql` shipped with taskyard."""
    return resources.files("taskyard.platforms").joinpath("queries", f"{name}.graphql").read_text()


def _nodes(connection: Any) -> list[Any]:
    nodes = connection.get("nodes") if isinstance(connection, Mapping) else None
    return list(nodes) if isinstance(nodes, list) else []


def _flatten(value: Any) -> Any:
    """`{"nodes": [...]}` connections as plain lists, all the way down."""
    if isinstance(value, Mapping):
        if set(value) == {"nodes"}:
            return [_flatten(v) for v in _nodes(value)]
        return {k: _flatten(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_flatten(v) for v in value]
    return value


def _reset_wait(headers: httpx.Headers, now: float) -> float | None:
    """Seconds to wait: `Retry-After`, else until `X-RateLimit-Requests-Reset` (epoch
    milliseconds), if Linear sent either."""
    retry_after = parse_retry_after(headers.get("retry-after"), now)
    if retry_after is not None:
        return retry_after
    raw = headers.get("x-ratelimit-requests-reset")
    try:
        return max(0.0, float(raw) / 1000.0 - now) if raw else None
    except ValueError:
        return None


def _entity_not_found(response: httpx.Response) -> bool:
    """True when Linear answered that the object asked for does not exist ("Entity not
    found: Issue", "Could not find referenced Comment.") and gave no data for it."""
    if response.status_code >= 500 or response.status_code == 429:
        return False
    try:
        body = response.json()
    except ValueError:
        return False
    errors = body.get("errors") if isinstance(body, Mapping) else None
    data = body.get("data") if isinstance(body, Mapping) else None
    if not errors or not isinstance(errors, list) or not isinstance(errors[0], Mapping):
        return False
    if isinstance(data, Mapping) and None not in data.values():
        return False
    first = errors[0]
    extensions = first.get("extensions")
    shown = extensions.get("userPresentableMessage") if isinstance(extensions, Mapping) else None
    message = str(first.get("message") or "").lower()
    return message.startswith("entity not found") or str(shown or "").lower().startswith(
        "could not find referenced"
    )


def graphql_error(
    errors: list[Any], what: str, response: httpx.Response, secrets: tuple[str, ...] = ()
) -> PlatformError:
    """The error for a GraphQL `errors` list, by the first error's `extensions.code`."""
    first: Mapping[str, Any] = errors[0] if errors and isinstance(errors[0], Mapping) else {}
    raw_extensions = first.get("extensions")
    extensions: Mapping[str, Any] = raw_extensions if isinstance(raw_extensions, Mapping) else {}
    code = str(extensions.get("code") or "")
    message = str(extensions.get("userPresentableMessage") or first.get("message") or "error")
    message = redact(message[:300], secrets)
    text = f"linear: {what}: {message}" + (f" ({code})" if code else "")
    status = response.status_code
    if code == "RATELIMITED" or status == 429:
        wait = _reset_wait(response.headers, time.time())
        return PlatformRateLimited(text, platform="linear", status=status, retry_after=wait)
    if code in _TRANSIENT_CODES:
        return PlatformTransientError(text, platform="linear", status=status)
    return PlatformPermanentError(f"{text}; permanent", platform="linear", status=status)


class LinearClient:
    def __init__(
        self,
        api_key: str,
        *,
        url: str = "https://api.linear.app/graphql",
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = time.monotonic,
        team_cache_seconds: float = 600.0,
        related_limit: int = 5,
    ) -> None:
        headers = {"Authorization": api_key, "Content-Type": "application/json"}
        self._client = httpx.AsyncClient(headers=headers, timeout=timeout, transport=transport)
        self._http = JsonHttp(self._client, "linear", (api_key,))
        self._url = url
        self._secret = api_key
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._teams: TTLCache[str, JSONObject] = TTLCache(team_cache_seconds, clock=clock)
        self.related_limit = related_limit

    async def aclose(self) -> None:
        await self._client.aclose()

    async def run(self, name: str, variables: Mapping[str, Any], what: str) -> JSONObject:
        """Run `queries/<name>.graphql`; its `data`, or the translated error."""

        async def once() -> JSONObject:
            return self._data(await self._post(name, variables, what), what)

        return await with_retries(
            once, policy=self._retry, sleep=self._sleep, what=what, platform="linear"
        )

    async def run_or_none(
        self, name: str, variables: Mapping[str, Any], what: str
    ) -> JSONObject | None:
        """Like `run`, but None when Linear answers that the entity asked for does not exist."""

        async def once() -> JSONObject | None:
            response = await self._post(name, variables, what)
            return None if _entity_not_found(response) else self._data(response, what)

        return await with_retries(
            once, policy=self._retry, sleep=self._sleep, what=what, platform="linear"
        )

    async def _post(self, name: str, variables: Mapping[str, Any], what: str) -> httpx.Response:
        payload = {"query": query(name), "variables": dict(variables)}
        return await self._http.request("POST", self._url, what, check_status=False, json=payload)

    def _data(self, response: httpx.Response, what: str) -> JSONObject:
        """`data` of a GraphQL answer. Linear reports some failures (rate limits, bad input)
        as GraphQL errors under a 4xx status: those are classified by their code."""
        if response.status_code >= 500:
            raise self._http.status(response, what)
        try:
            body = response.json()
        except ValueError:
            body = None
        data = body.get("data") if isinstance(body, Mapping) else None
        errors = body.get("errors") if isinstance(body, Mapping) else None
        usable = isinstance(data, Mapping) and None not in data.values()
        if errors and isinstance(errors, list) and not usable:
            raise graphql_error(errors, what, response, (self._secret,))
        if response.status_code >= 400:
            raise self._http.status(response, what)
        if not isinstance(data, Mapping):
            raise PlatformPermanentError(
                f"linear: {what} answered without GraphQL data", platform="linear"
            )
        return dict(data)

    async def issue(self, issue_id: str) -> JSONObject:
        data = await self.run("issue", {"id": issue_id}, f"issue {issue_id}")
        flat: JSONObject = _flatten(data["issue"])
        return flat

    async def related(
        self, issue_id: str, *, title: str | None = None, team_id: str | None = None
    ) -> JSONObject:
        """Up to `related_limit` other issues whose text is like this one's title."""
        if not title:
            found = await self._title_and_team(issue_id)
            title = str(found.get("title") or "")
            team_id = team_id or (found.get("team") or {}).get("id")
        variables = {"term": title, "first": self.related_limit + 1, "teamId": team_id}
        data = await self.run("related", variables, f"search issues like {issue_id}")
        hits = [_flatten(n) for n in _nodes(data.get("searchIssues"))]
        others = [h for h in hits if isinstance(h, Mapping) and h.get("id") != issue_id]
        return {"issue_id": issue_id, "term": title, "issues": others[: self.related_limit]}

    async def issue_team(self, issue_id: str) -> str:
        team = (await self._title_and_team(issue_id)).get("team") or {}
        if not isinstance(team.get("id"), str):
            raise PlatformPermanentError(f"linear: issue {issue_id} has no team", platform="linear")
        return str(team["id"])

    async def _title_and_team(self, issue_id: str) -> Mapping[str, Any]:
        found = await self.run("issue_title", {"id": issue_id}, f"issue {issue_id}")
        issue = found.get("issue")
        return issue if isinstance(issue, Mapping) else {}

    async def team(self, team_id: str) -> JSONObject:
        """Labels, workflow states and priorities of a team (cached for `team_cache_seconds`)."""
        return await self._teams.get_or_load(team_id, lambda: self._load_team(team_id))

    async def _load_team(self, team_id: str) -> JSONObject:
        data = await self.run("team", {"id": team_id}, f"team {team_id}")
        team: JSONObject = _flatten(data["team"])
        team["priorities"] = _flatten(data.get("issuePriorityValues") or [])
        return team

    async def team_directory(self, team_id: str) -> JSONObject:
        """What a team's names stand for, in one request (not cached: see
        `taskyard.actions.directory`): `labels` (the team's, then the workspace's), `states`
        and `members` (id, name, displayName, email), the first 250 of each."""
        data = await self.run("team_directory", {"id": team_id}, f"team {team_id} directory")
        team = _flatten(data["team"])
        workspace = _flatten(data.get("issueLabels") or {"nodes": []})
        return {
            "id": team.get("id", team_id),
            "key": team.get("key"),
            "labels": [*(team.get("labels") or []), *workspace],
            "states": team.get("states") or [],
            "members": team.get("members") or [],
        }

    async def find_issue(self, issue_id: str) -> JSONObject | None:
        """The issue's id, identifier and url; None when Linear has no issue `issue_id`."""
        data = await self.run_or_none("issue_ref", {"id": issue_id}, f"find issue {issue_id}")
        return None if data is None else _object(data, "issue", f"issue {issue_id}")

    async def find_comment(self, comment_id: str) -> JSONObject | None:
        """The comment's id and url; None when Linear has no comment `comment_id`."""
        what = f"find comment {comment_id}"
        data = await self.run_or_none("comment_ref", {"id": comment_id}, what)
        return None if data is None else _object(data, "comment", f"comment {comment_id}")


def _object(data: Mapping[str, Any], field: str, what: str) -> JSONObject:
    value = data.get(field)
    if not isinstance(value, Mapping):
        raise PlatformPermanentError(f"linear: {what} answered no {field}", platform="linear")
    return dict(value)
