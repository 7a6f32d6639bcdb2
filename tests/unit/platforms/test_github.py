"""GitHub reads with a token, against a scripted GitHub (httpx MockTransport)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from taskyard.exceptions import PlatformPermanentError, PlatformTransientError
from taskyard.platforms.base import RetryPolicy
from taskyard.platforms.github import DIFF_MEDIA_TYPE, GitHubClient
from tests.unit.platforms.conftest import TOKEN, Script, Sleeps, json_response

PR = "/repos/octo/app/pulls/7"


def client(script: Script, sleeps: Sleeps, **kwargs: Any) -> GitHubClient:
    return GitHubClient(
        token=TOKEN, transport=script.transport, sleep=sleeps, retry=RetryPolicy(), **kwargs
    )


def pull(**extra: object) -> dict[str, object]:
    return {
        "number": 7,
        "title": "Fix the parser",
        "body": "Closes #3",
        "state": "open",
        "draft": False,
        "user": {"login": "mona"},
        "labels": [{"name": "bug"}, {"name": "P1"}],
        "head": {"ref": "fix", "sha": "abc", "repo": {"full_name": "mona/app"}},
        "base": {"ref": "main", "sha": "def", "repo": {"full_name": "octo/app"}},
        **extra,
    }


async def test_pull_request_is_summarised(script: Script, sleeps: Sleeps) -> None:
    script.on("GET", PR, json_response(200, pull()))
    summary = await client(script, sleeps).pull_request("octo/app", 7)
    assert summary["title"] == "Fix the parser" and summary["author"] == "mona"
    assert summary["labels"] == ["bug", "P1"]
    assert summary["head"] == {"ref": "fix", "sha": "abc", "repo": "mona/app"}
    sent = script.requests[0]
    assert sent.headers["authorization"] == f"token {TOKEN}"
    assert sent.headers["x-github-api-version"]


async def test_diff_is_asked_for_as_a_diff_and_cut(script: Script, sleeps: Sleeps) -> None:
    diff = "diff --git a/x b/x\n" + "+line\n" * 100
    script.on("GET", PR, httpx.Response(200, text=diff))
    result = await client(script, sleeps, max_diff_bytes=50).pull_request_diff("octo/app", 7)
    assert script.requests[0].headers["accept"] == DIFF_MEDIA_TYPE
    assert result["truncated"] is True and result["bytes"] == len(diff)
    assert result["diff"] == diff[:50]


async def test_files_are_read_page_by_page(script: Script, sleeps: Sleeps) -> None:
    page = [{"filename": f"f{i}.py", "status": "modified", "patch": "@@"} for i in range(100)]
    script.on(
        "GET",
        f"{PR}/files",
        json_response(200, page),
        json_response(200, [{"filename": "last.py", "status": "added"}]),
    )
    result = await client(script, sleeps).pull_request_files("octo/app", 7)
    assert len(result["files"]) == 101 and result["truncated"] is False
    assert result["files"][-1]["filename"] == "last.py"
    pages = [r.url.params["page"] for r in script.requests]
    assert pages == ["1", "2"] and script.requests[0].url.params["per_page"] == "100"


async def test_files_stop_at_the_limit(script: Script, sleeps: Sleeps) -> None:
    page = [{"filename": f"f{i}.py"} for i in range(100)]
    script.on("GET", f"{PR}/files", json_response(200, page))
    result = await client(script, sleeps, max_files=100).pull_request_files("octo/app", 7)
    assert len(result["files"]) == 100 and result["truncated"] is True
    assert len(script.requests) == 1


async def test_not_found_is_permanent_and_says_what(script: Script, sleeps: Sleeps) -> None:
    script.on("GET", PR, json_response(404, {"message": "Not Found"}))
    with pytest.raises(PlatformPermanentError) as caught:
        await client(script, sleeps).pull_request("octo/app", 7)
    message = str(caught.value)
    assert "GET /repos/octo/app/pulls/7" in message and "404" in message
    assert caught.value.status == 404 and len(script.requests) == 1 and sleeps.waits == []


async def test_forbidden_is_permanent_with_githubs_reason(script: Script, sleeps: Sleeps) -> None:
    body = {"message": "Resource not accessible by integration"}
    script.on("GET", PR, json_response(403, body))
    with pytest.raises(PlatformPermanentError, match="403: Resource not accessible"):
        await client(script, sleeps).pull_request("octo/app", 7)
    assert len(script.requests) == 1


async def test_429_honours_retry_after(script: Script, sleeps: Sleeps) -> None:
    limited = json_response(429, {"message": "slow down"}, **{"retry-after": "4"})
    script.on("GET", PR, limited, json_response(200, pull()))
    summary = await client(script, sleeps).pull_request("octo/app", 7)
    assert summary["number"] == 7 and sleeps.waits == [4.0]


async def test_exhausted_primary_rate_limit_is_transient(script: Script, sleeps: Sleeps) -> None:
    reset = str(int(time.time()) + 3600)
    headers = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": reset}
    script.on("GET", PR, json_response(403, {"message": "API rate limit exceeded"}, **headers))
    with pytest.raises(PlatformTransientError, match="rate limited") as caught:
        await client(script, sleeps).pull_request("octo/app", 7)
    assert not isinstance(caught.value, PlatformPermanentError) and sleeps.waits == []


async def test_server_errors_are_retried_with_backoff(script: Script, sleeps: Sleeps) -> None:
    script.on("GET", PR, json_response(502, {}), json_response(200, pull()))
    assert (await client(script, sleeps).pull_request("octo/app", 7))["number"] == 7
    assert sleeps.waits == [0.5]


async def test_network_failure_is_transient(script: Script, sleeps: Sleeps) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    script.on("GET", PR, refuse)
    with pytest.raises(PlatformTransientError, match="ConnectError"):
        await client(script, sleeps).pull_request("octo/app", 7)
    assert len(script.requests) == 3


async def test_token_never_appears_in_errors(script: Script, sleeps: Sleeps) -> None:
    script.on("GET", PR, json_response(401, {"message": f"Bad credentials: {TOKEN}"}))
    with pytest.raises(PlatformPermanentError) as caught:
        await client(script, sleeps).pull_request("octo/app", 7)
    assert TOKEN not in str(caught.value) and TOKEN not in repr(caught.value)
    assert "401" in str(caught.value)


async def test_bad_repo_name_is_permanent(script: Script, sleeps: Sleeps) -> None:
    with pytest.raises(PlatformPermanentError, match="owner/repo"):
        await client(script, sleeps).pull_request("just-a-name", 7)
    assert script.requests == []


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (json_response(200, {"permission": "write", "role_name": "maintain"}), "maintain"),
        (json_response(200, {"permission": "read", "role_name": "triage"}), "triage"),
        (json_response(200, {"permission": "write", "role_name": "security-reviewer"}), "write"),
        (json_response(200, {"permission": "admin"}), "admin"),
        (json_response(404, {"message": "Not Found"}), None),
    ],
)
async def test_permission(
    script: Script, sleeps: Sleeps, answer: httpx.Response, expected: str | None
) -> None:
    script.on("GET", "/repos/octo/app/collaborators/mona/permission", answer)
    assert await client(script, sleeps).permission("octo/app", "mona") == expected


async def test_permission_lookup_refused_is_an_error_not_none(
    script: Script, sleeps: Sleeps
) -> None:
    path = "/repos/octo/app/collaborators/mona/permission"
    script.on("GET", path, json_response(403, {"message": "Must have push access"}))
    with pytest.raises(PlatformPermanentError, match="403"):
        await client(script, sleeps).permission("octo/app", "mona")


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (json_response(200, {"state": "active", "role": "member"}), True),
        (json_response(200, {"state": "pending", "role": "member"}), False),
        (json_response(404, {"message": "Not Found"}), False),
    ],
)
async def test_in_team(
    script: Script, sleeps: Sleeps, answer: httpx.Response, expected: bool
) -> None:
    script.on("GET", "/orgs/octo/teams/core/memberships/mona", answer)
    assert await client(script, sleeps).in_team("octo", "core", "mona") is expected


async def test_enterprise_base_url_is_used(script: Script, sleeps: Sleeps) -> None:
    script.on("GET", "/api/v3" + PR, json_response(200, pull()))
    github = client(script, sleeps, base_url="https://ghe.example.com/api/v3")
    await github.pull_request("octo/app", 7)
    assert str(script.requests[0].url).startswith("https://ghe.example.com/api/v3/repos/")


def test_no_credentials_is_a_clear_error() -> None:
    with pytest.raises(PlatformPermanentError, match="TASKYARD_GITHUB_TOKEN or a GitHub App"):
        GitHubClient()
