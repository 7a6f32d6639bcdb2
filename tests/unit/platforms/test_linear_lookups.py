"""Linear reads for actions: an object by the id taskyard gave it (None when Linear has no
such entity), a team's directory of names, and rate limits however Linear signals them."""

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
ID = "0f6c3b3e-8d4a-4c55-9a51-3c2f7e0d9b11"


def linear(script: Script, sleeps: Sleeps) -> LinearClient:
    return LinearClient(KEY, transport=script.transport, sleep=sleeps, clock=Clock())


def sent(request: httpx.Request) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(request.content)
    return body


def not_found(entity: str, status: int = 200) -> httpx.Response:
    error = {
        "message": f"Entity not found: {entity}",
        "path": [entity.lower()],
        "extensions": {
            "code": "INPUT_ERROR",
            "statusCode": 400,
            "userError": True,
            "userPresentableMessage": f"Could not find referenced {entity}.",
        },
    }
    return json_response(status, {"errors": [error], "data": None})


async def test_find_issue_by_its_id(script: Script, sleeps: Sleeps) -> None:
    issue = {"id": ID, "identifier": "ENG-9", "url": "https://linear.app/a/issue/ENG-9"}
    script.on("POST", "/graphql", json_response(200, {"data": {"issue": issue}}))
    assert await linear(script, sleeps).find_issue(ID) == issue
    assert sent(script.requests[0]) == {"query": query("issue_ref"), "variables": {"id": ID}}


async def test_find_comment_by_its_id(script: Script, sleeps: Sleeps) -> None:
    comment = {"id": ID, "url": "https://linear.app/a/issue/ENG-9#comment-0f6c3b3e"}
    script.on("POST", "/graphql", json_response(200, {"data": {"comment": comment}}))
    assert await linear(script, sleeps).find_comment(ID) == comment
    assert sent(script.requests[0])["query"] == query("comment_ref")


@pytest.mark.parametrize("status", [200, 400])
async def test_entity_not_found_is_none(script: Script, sleeps: Sleeps, status: int) -> None:
    script.on("POST", "/graphql", not_found("Issue", status), not_found("Comment", status))
    client = linear(script, sleeps)
    assert await client.find_issue(ID) is None
    assert await client.find_comment(ID) is None
    assert len(script.requests) == 2 and sleeps.waits == []


async def test_not_found_by_its_presentable_message_alone(script: Script, sleeps: Sleeps) -> None:
    error = {
        "message": "x",
        "extensions": {"userPresentableMessage": "Could not find referenced Issue."},
    }
    script.on("POST", "/graphql", json_response(400, {"errors": [error]}))
    assert await linear(script, sleeps).find_issue(ID) is None


async def test_other_refusals_are_still_errors(script: Script, sleeps: Sleeps) -> None:
    error = {"message": "Authentication required", "extensions": {"code": "AUTHENTICATION_ERROR"}}
    script.on("POST", "/graphql", json_response(400, {"errors": [error]}))
    with pytest.raises(PlatformPermanentError, match="AUTHENTICATION_ERROR"):
        await linear(script, sleeps).find_issue(ID)


async def test_a_lookup_retries_server_errors(script: Script, sleeps: Sleeps) -> None:
    found = json_response(200, {"data": {"comment": {"id": ID, "url": "u"}}})
    script.on("POST", "/graphql", httpx.Response(502, text="bad gateway"), found)
    assert await linear(script, sleeps).find_comment(ID) == {"id": ID, "url": "u"}
    assert sleeps.waits == [0.5]


async def test_the_issue_reader_still_fails_for_a_missing_issue(
    script: Script, sleeps: Sleeps
) -> None:
    script.on("POST", "/graphql", not_found("Issue"))
    with pytest.raises(PlatformPermanentError, match="Could not find referenced Issue"):
        await linear(script, sleeps).issue("nope")


MEMBER = {
    "id": "u-1",
    "name": "Ann Lee",
    "displayName": "ann",
    "email": "ann@example.com",
    "active": True,
}
DIRECTORY = {
    "team": {
        "id": "t-1",
        "key": "ENG",
        "labels": {"nodes": [{"id": "l-1", "name": "Bug", "isGroup": False}]},
        "states": {"nodes": [{"id": "s-1", "name": "Done", "type": "completed"}]},
        "members": {"nodes": [MEMBER]},
    },
    "issueLabels": {"nodes": [{"id": "l-9", "name": "Security", "isGroup": False}]},
}


async def test_team_directory_in_one_request(script: Script, sleeps: Sleeps) -> None:
    script.on("POST", "/graphql", json_response(200, {"data": DIRECTORY}))
    directory = await linear(script, sleeps).team_directory("t-1")
    assert directory == {
        "id": "t-1",
        "key": "ENG",
        "labels": [
            {"id": "l-1", "name": "Bug", "isGroup": False},
            {"id": "l-9", "name": "Security", "isGroup": False},
        ],
        "states": [{"id": "s-1", "name": "Done", "type": "completed"}],
        "members": [MEMBER],
    }
    assert len(script.requests) == 1
    assert sent(script.requests[0]) == {
        "query": query("team_directory"),
        "variables": {"id": "t-1"},
    }


# --- rate limits ---------------------------------------------------------------------------


async def test_http_429_with_graphql_errors_but_no_code_is_a_rate_limit(
    script: Script, sleeps: Sleeps
) -> None:
    limited = json_response(
        429, {"errors": [{"message": "Too many requests"}]}, **{"retry-after": "3"}
    )
    script.on("POST", "/graphql", limited, json_response(200, {"data": {"issue": {"id": ID}}}))
    assert (await linear(script, sleeps).find_issue(ID)) == {"id": ID}
    assert sleeps.waits == [3.0]


async def test_http_429_without_a_wait_backs_off_then_gives_up_as_transient(
    script: Script, sleeps: Sleeps
) -> None:
    limited = json_response(429, {"errors": [{"message": "Too many requests"}]})
    script.on("POST", "/graphql", limited)
    with pytest.raises(PlatformTransientError, match="rate limited"):
        await linear(script, sleeps).issue("i-1")
    assert sleeps.waits == [0.5, 1.0, 2.0, 4.0, 8.0]  # the policy's backoff, 5 times


async def test_ratelimited_code_prefers_retry_after_to_the_reset(
    script: Script, sleeps: Sleeps
) -> None:
    reset_ms = str(int((time.time() + 20) * 1000))
    body = {"errors": [{"message": "Rate limit exceeded", "extensions": {"code": "RATELIMITED"}}]}
    limited = json_response(
        400, body, **{"retry-after": "4", "x-ratelimit-requests-reset": reset_ms}
    )
    script.on("POST", "/graphql", limited, json_response(200, {"data": {"issue": {"id": ID}}}))
    await linear(script, sleeps).find_issue(ID)
    assert sleeps.waits == [4.0]
