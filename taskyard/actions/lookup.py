"""`PlatformLookup`: what an in-doubt action already created, found again on the platform.

The apply step asks it when request `request` of an action that is not idempotent may have
reached the platform (a crash, a timeout) without its answer. It looks where that request
would have put its object:

| action (request) | where it looks | what identifies it |
|---|---|---|
| comment, mention_users on GitHub | every comment of the issue / pull request | hidden marker |
| review (GitHub) | every review of the pull request | hidden marker |
| create_issue on GitHub | the repository's newest issues (`pages` pages of 100) | hidden marker |
| create_pr (GitHub) | the repository's newest pull requests (`pages` pages) | hidden marker |
| create_issue on Linear | `issue(id:)` | the id taskyard chose |
| comment, mention_users on Linear | `comment(id:)` | the id taskyard chose |
| anything else (Slack, set_check, merge_pr, …) | nowhere: `ActionError` | |

The hidden marker is `<!-- taskyard:KEY -->` of `action.key` in the posted body; the id is
`linear_uuid(action.key)`, sent in the mutation's input. Found: a `WriteResult` with the id
and URL the writer would have recorded (a GitHub issue's or pull request's number, a
comment's or review's id; a Linear issue's identifier, a comment's id). Surely not there:
None. Cannot look for this kind of request (no reader, no marker or id in the request):
`ActionError`. A platform failure propagates as `PlatformError`.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from taskyard.actions.keys import find_marked, marker
from taskyard.actions.models import ParsedAction, Target
from taskyard.exceptions import ActionError
from taskyard.platforms import github_write as gh
from taskyard.platforms import linear_write as lin
from taskyard.platforms.base import GitHubReader, JSONObject, LinearReader
from taskyard.platforms.writes import PlannedRequest, WriteResult

_REPO = r"^/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)"
_GITHUB_PATHS: Mapping[str, re.Pattern[str]] = {
    "comments": re.compile(_REPO + r"/issues/(?P<number>\d+)/comments$"),
    "reviews": re.compile(_REPO + r"/pulls/(?P<number>\d+)/reviews$"),
    "issues": re.compile(_REPO + r"/issues$"),
    "pulls": re.compile(_REPO + r"/pulls$"),
}


@dataclass(frozen=True, slots=True)
class _Sent:
    """Where a GitHub POST taskyard sent went: the repository, and the issue or pull request
    number for a comment or a review."""

    repo: str
    number: int | None

    def thread(self) -> int:
        if self.number is None:
            raise ActionError(f"the request names no issue or pull request in {self.repo}")
        return self.number


Finder = Callable[["PlatformLookup", ParsedAction, PlannedRequest], Awaitable[WriteResult | None]]


class PlatformLookup:
    """The real `MarkerLookup` (see `taskyard.actions.apply`) over the platform readers; a
    platform without one cannot be looked on. `pages`: how many pages of 100 of a
    repository's newest issues or pull requests are searched for a created one."""

    def __init__(
        self, github: GitHubReader | None, linear: LinearReader | None, *, pages: int = 3
    ) -> None:
        self.github = github
        self.linear = linear
        self.pages = pages

    async def find(
        self, action: ParsedAction, target: Target, request: PlannedRequest
    ) -> WriteResult | None:
        finder = _FINDERS.get((request.platform, action.type))
        if finder is None:
            raise ActionError(
                f"cannot look on {request.platform} for {action.type}: taskyard has no way "
                "to find what such a request made"
            )
        return await finder(self, action, request)

    def require_github(self, action: ParsedAction) -> GitHubReader:
        if self.github is None:
            raise ActionError(
                f"cannot look on github for {action.type}: no GitHub credentials to read with"
            )
        return self.github

    def require_linear(self, action: ParsedAction) -> LinearReader:
        if self.linear is None:
            raise ActionError(
                f"cannot look on linear for {action.type}: no Linear API key to read with"
            )
        return self.linear


# --- GitHub: by the hidden marker -------------------------------------------------------


def _sent(action: ParsedAction, request: PlannedRequest, kind: str) -> _Sent:
    """Where a GitHub request of `kind` went; ActionError when it is not one, or when its
    body does not carry the action's marker (nothing to recognise it by)."""
    found = _GITHUB_PATHS[kind].match(request.path)
    if request.method != "POST" or found is None:
        raise ActionError(
            f"cannot look on github for {action.type}: {request.method} {request.path} "
            f"does not create {kind}"
        )
    if marker(action.key) not in str(request.body.get("body") or ""):
        raise ActionError(
            f"cannot look on github for {action.type}: the request's body carries no marker"
        )
    number = found.groupdict().get("number")
    repo = f"{unquote(found['owner'])}/{unquote(found['repo'])}"
    return _Sent(repo, None if number is None else int(number))


def _marked(key: str, items: Sequence[JSONObject], id_field: str) -> WriteResult | None:
    """The first item whose body carries `key`'s marker, as the writer would record it."""
    index = find_marked(
        key, ((str(i), str(item.get("body") or "")) for i, item in enumerate(items))
    )
    if index is None:
        return None
    item = items[int(index)]
    found, url = item.get(id_field), item.get("html_url")
    return WriteResult(
        external_id=None if found is None else str(found),
        url=url if isinstance(url, str) else None,
        response=dict(item),
    )


async def _github_comment(
    lookup: PlatformLookup, action: ParsedAction, request: PlannedRequest
) -> WriteResult | None:
    github = lookup.require_github(action)
    sent = _sent(action, request, "comments")
    comments = await github.all_issue_comments(sent.repo, sent.thread())
    return _marked(action.key, comments, "id")


async def _github_review(
    lookup: PlatformLookup, action: ParsedAction, request: PlannedRequest
) -> WriteResult | None:
    github = lookup.require_github(action)
    sent = _sent(action, request, "reviews")
    reviews = await github.pull_request_reviews(sent.repo, sent.thread())
    return _marked(action.key, reviews, "id")


async def _github_issue(
    lookup: PlatformLookup, action: ParsedAction, request: PlannedRequest
) -> WriteResult | None:
    github = lookup.require_github(action)
    sent = _sent(action, request, "issues")
    issues = await github.recent_issues(sent.repo, pages=lookup.pages)
    return _marked(action.key, issues, "number")


async def _github_pull(
    lookup: PlatformLookup, action: ParsedAction, request: PlannedRequest
) -> WriteResult | None:
    github = lookup.require_github(action)
    sent = _sent(action, request, "pulls")
    pulls = await github.recent_pull_requests(sent.repo, pages=lookup.pages)
    return _marked(action.key, pulls, "number")


# --- Linear: by the id taskyard chose ---------------------------------------------------


def _chosen_id(action: ParsedAction, request: PlannedRequest, mutation: str) -> str:
    """The id a Linear create request gave its object; ActionError when it is not that
    mutation or gave none."""
    variables = request.body.get("variables")
    given: Any = variables.get("input") if isinstance(variables, Mapping) else None
    chosen = given.get("id") if isinstance(given, Mapping) else None
    if request.body.get("query") != lin.mutation(mutation) or not isinstance(chosen, str):
        raise ActionError(
            f"cannot look on linear for {action.type}: the request is not a {mutation} "
            "with an id taskyard chose"
        )
    return chosen


def _linear_result(found: JSONObject | None) -> WriteResult | None:
    if found is None:
        return None
    ident, url = found.get("identifier") or found.get("id"), found.get("url")
    return WriteResult(
        external_id=None if ident is None else str(ident),
        url=url if isinstance(url, str) else None,
        response=found,
    )


async def _linear_issue(
    lookup: PlatformLookup, action: ParsedAction, request: PlannedRequest
) -> WriteResult | None:
    linear = lookup.require_linear(action)
    return _linear_result(await linear.find_issue(_chosen_id(action, request, "issue_create")))


async def _linear_comment(
    lookup: PlatformLookup, action: ParsedAction, request: PlannedRequest
) -> WriteResult | None:
    linear = lookup.require_linear(action)
    chosen = _chosen_id(action, request, "comment_create")
    return _linear_result(await linear.find_comment(chosen))


_GH, _LIN = gh.PLATFORM, lin.PLATFORM
_FINDERS: Mapping[tuple[str, str], Finder] = {
    (_GH, "comment"): _github_comment,
    (_GH, "mention_users"): _github_comment,
    (_GH, "review"): _github_review,
    (_GH, "create_issue"): _github_issue,
    (_GH, "create_pr"): _github_pull,
    (_LIN, "create_issue"): _linear_issue,
    (_LIN, "comment"): _linear_comment,
    (_LIN, "mention_users"): _linear_comment,
}
