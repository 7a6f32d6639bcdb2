"""Linear reads over GraphQL, against a scripted Linear (httpx MockTransport)."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from taskyard.exceptions import PlatformPermanentError, PlatformTransientError
from taskyard.platforms.linear import LinearClient, query
from tests.unit.platforms.conftest import Clock, Script, Sleeps, json_response

KEY = "lin_api_SECRETKEYthatmustneverleak"


def linear(script: Script, sleeps: Sleeps, clock: Clock | None = None, **kw: Any) -> LinearClient:
    return LinearClient(KEY, transport=script.transport, sleep=sleeps, clock=clock or Clock(), **kw)


def sent(request: httpx.Request) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(request.content)
    return body


def answer(data: dict[str, Any]) -> httpx.Response:
    return json_response(200, {"data": data})


ISSUE = {
    "id": "i-1",
    "identifier": "ENG-1",
    "title": "Crash on save",
    "team": {"id": "t-1", "key": "ENG", "name": "Engineering"},
    "labels": {"nodes": [{"id": "l-1", "name": "Bug"}]},
    "comments": {"nodes": [{"id": "c-1", "body": "same here", "user": {"name": "Ann"}}]},
}


async def test_issue_sends_the_shipped_document(script: Script, sleeps: Sleeps) -> None:
    script.on("POST", "/graphql", answer({"issue": ISSUE}))
    issue = await linear(script, sleeps).issue("i-1")
    body = sent(script.requests[0])
    assert body == {"query": query("issue"), "variables": {"id": "i-1"}}
    assert script.requests[0].headers["authorization"] == KEY
    assert issue["labels"] == [{"id": "l-1", "name": "Bug"}]  # connections flattened
    assert issue["comments"][0]["body"] == "same here"


async def test_related_leaves_out_the_issue_itself(script: Script, sleeps: Sleeps) -> None:
    hits = [{"id": "i-1", "title": "Crash on save"}] + [
        {"id": f"i-{n}", "title": f"Crash {n}"} for n in range(2, 9)
    ]
    script.on("POST", "/graphql", answer({"searchIssues": {"nodes": hits}}))
    related = await linear(script, sleeps).related("i-1", title="Crash on save", team_id="t-1")
    assert [i["id"] for i in related["issues"]] == ["i-2", "i-3", "i-4", "i-5", "i-6"]
    variables = sent(script.requests[0])["variables"]
    assert variables == {"term": "Crash on save", "first": 6, "teamId": "t-1"}


async def test_related_without_a_title_reads_it_first(script: Script, sleeps: Sleeps) -> None:
    script.on(
        "POST",
        "/graphql",
        answer({"issue": {"id": "i-1", "title": "Crash on save", "team": {"id": "t-1"}}}),
        answer({"searchIssues": {"nodes": []}}),
    )
    related = await linear(script, sleeps).related("i-1")
    first, second = (sent(r) for r in script.requests)
    assert first["query"] == query("issue_title")
    assert second["variables"]["term"] == "Crash on save"
    assert second["variables"]["teamId"] == "t-1" and related["issues"] == []


TEAM = {
    "team": {
        "id": "t-1",
        "key": "ENG",
        "name": "Engineering",
        "labels": {"nodes": [{"id": "l-1", "name": "Bug"}]},
        "states": {"nodes": [{"id": "s-1", "name": "Todo", "type": "unstarted"}]},
    },
    "issuePriorityValues": [{"priority": 1, "label": "Urgent"}],
}


async def test_team_is_cached_per_team_until_the_ttl(
    script: Script, sleeps: Sleeps, clock: Clock
) -> None:
    script.on("POST", "/graphql", answer(TEAM))
    client = linear(script, sleeps, clock, team_cache_seconds=600)
    team = await client.team("t-1")
    assert team["labels"] == [{"id": "l-1", "name": "Bug"}]
    assert team["priorities"] == [{"priority": 1, "label": "Urgent"}]
    clock.now += 599
    await client.team("t-1")
    assert len(script.requests) == 1
    await client.team("t-2")
    assert len(script.requests) == 2
    clock.now += 1
    await client.team("t-1")
    assert len(script.requests) == 3


async def test_graphql_rate_limit_waits_for_the_reset(script: Script, sleeps: Sleeps) -> None:
    reset_ms = str(int((time.time() + 5) * 1000))
    limited = json_response(
        400,
        {"errors": [{"message": "Rate limit exceeded", "extensions": {"code": "RATELIMITED"}}]},
        **{"x-ratelimit-requests-reset": reset_ms},
    )
    script.on("POST", "/graphql", limited, answer({"issue": ISSUE}))
    assert (await linear(script, sleeps).issue("i-1"))["id"] == "i-1"
    assert len(sleeps.waits) == 1 and 3 < sleeps.waits[0] <= 5


async def test_http_429_honours_retry_after(script: Script, sleeps: Sleeps) -> None:
    limited = json_response(429, {}, **{"retry-after": "2"})
    script.on("POST", "/graphql", limited, answer({"issue": ISSUE}))
    await linear(script, sleeps).issue("i-1")
    assert sleeps.waits == [2.0]


async def test_entity_not_found_is_permanent(script: Script, sleeps: Sleeps) -> None:
    body = {
        "data": None,
        "errors": [{"message": "Entity not found: Issue", "extensions": {"code": "INVALID_INPUT"}}],
    }
    script.on("POST", "/graphql", json_response(200, body))
    with pytest.raises(PlatformPermanentError, match="Entity not found: Issue"):
        await linear(script, sleeps).issue("nope")
    assert len(script.requests) == 1


async def test_bad_key_is_permanent_and_not_echoed(script: Script, sleeps: Sleeps) -> None:
    error = {
        "message": f"Authentication required, not {KEY}",
        "extensions": {"code": "AUTHENTICATION_ERROR"},
    }
    script.on("POST", "/graphql", json_response(400, {"errors": [error]}))
    with pytest.raises(PlatformPermanentError, match="AUTHENTICATION_ERROR") as caught:
        await linear(script, sleeps).issue("i-1")
    assert KEY not in str(caught.value)


async def test_server_errors_are_transient_after_retries(script: Script, sleeps: Sleeps) -> None:
    script.on("POST", "/graphql", httpx.Response(503, text="upstream down"))
    with pytest.raises(PlatformTransientError, match="503"):
        await linear(script, sleeps).issue("i-1")
    assert len(script.requests) == 3 and sleeps.waits == [0.5, 1.0]
