"""GitHub reads that find again what taskyard posted: every comment and review of an issue or
pull request (all pages), and a repository's newest issues and pull requests (a few pages,
newest first), against a scripted GitHub (httpx MockTransport)."""

from __future__ import annotations

from typing import Any

import httpx

from taskyard.platforms.base import RetryPolicy
from taskyard.platforms.github import GitHubClient
from tests.unit.platforms.conftest import TOKEN, Script, Sleeps, json_response


def client(script: Script, sleeps: Sleeps) -> GitHubClient:
    return GitHubClient(token=TOKEN, transport=script.transport, sleep=sleeps, retry=RetryPolicy())


def comment(n: int, body: str = "") -> dict[str, Any]:
    return {
        "id": 1000 + n,
        "body": body or f"comment {n}",
        "html_url": f"https://github.com/octo/app/issues/7#issuecomment-{1000 + n}",
        "user": {"login": "mona"},
    }


def by_page(pages: list[list[dict[str, Any]]]) -> Any:
    def answer(request: httpx.Request) -> httpx.Response:
        number = int(request.url.params["page"])
        return json_response(200, pages[number - 1] if number <= len(pages) else [])

    return answer


async def test_every_comment_of_every_page(script: Script, sleeps: Sleeps) -> None:
    pages = [[comment(n) for n in range(p * 100, p * 100 + 100)] for p in range(4)]
    pages.append([comment(400, "the last one")])
    script.on("GET", "/repos/octo/app/issues/7/comments", by_page(pages))
    comments = await client(script, sleeps).all_issue_comments("octo/app", 7)
    assert len(comments) == 401  # past the context reader's 300
    assert comments[-1] == {
        "id": 1400,
        "number": None,
        "body": "the last one",
        "html_url": "https://github.com/octo/app/issues/7#issuecomment-1400",
        "title": None,
        "state": None,
    }
    assert [r.url.params["page"] for r in script.requests] == ["1", "2", "3", "4", "5"]
    assert {r.url.params["per_page"] for r in script.requests} == {"100"}


async def test_every_review_of_a_pull_request(script: Script, sleeps: Sleeps) -> None:
    review = {"id": 80, "body": "LGTM", "state": "APPROVED", "html_url": "https://r/80"}
    script.on("GET", "/repos/octo/app/pulls/9/reviews", json_response(200, [review]))
    reviews = await client(script, sleeps).pull_request_reviews("octo/app", 9)
    assert reviews == [
        {
            "id": 80,
            "number": None,
            "body": "LGTM",
            "html_url": "https://r/80",
            "title": None,
            "state": "APPROVED",
        }
    ]


async def test_recent_issues_are_newest_first_and_a_few_pages_only(
    script: Script, sleeps: Sleeps
) -> None:
    full = [
        {"id": n, "number": n, "title": f"t{n}", "body": None, "html_url": f"u{n}"}
        for n in range(100)
    ]
    script.on("GET", "/repos/octo/app/issues", json_response(200, full))
    issues = await client(script, sleeps).recent_issues("octo/app", pages=2)
    first = {"id": 0, "number": 0, "body": "", "html_url": "u0", "title": "t0", "state": None}
    assert len(issues) == 200 and issues[0] == first
    assert len(script.requests) == 2
    params = dict(script.requests[0].url.params)
    assert params == {
        "state": "all",
        "sort": "created",
        "direction": "desc",
        "per_page": "100",
        "page": "1",
    }


async def test_recent_pull_requests_are_newest_first(script: Script, sleeps: Sleeps) -> None:
    pull = {"id": 5, "number": 12, "body": "Fixes #7", "html_url": "https://github.com/p/12"}
    script.on("GET", "/repos/octo/app/pulls", json_response(200, [pull]))
    pulls = await client(script, sleeps).recent_pull_requests("octo/app")
    assert pulls == [
        {
            "id": 5,
            "number": 12,
            "body": "Fixes #7",
            "html_url": pull["html_url"],
            "title": None,
            "state": None,
        }
    ]
    params = script.requests[0].url.params
    assert (params["state"], params["sort"], params["direction"]) == ("all", "created", "desc")


async def test_a_failed_page_is_retried_and_the_listing_goes_on(
    script: Script, sleeps: Sleeps
) -> None:
    pages = [[comment(n) for n in range(100)], [comment(100)]]
    answers = [json_response(200, pages[0]), json_response(502, {}), json_response(200, pages[1])]
    script.on("GET", "/repos/octo/app/issues/7/comments", *answers)
    comments = await client(script, sleeps).all_issue_comments("octo/app", 7)
    assert len(comments) == 101 and sleeps.waits == [0.5]
