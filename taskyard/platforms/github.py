"""GitHub reads over githubkit: with a token (PAT), or as a GitHub App installation.

With an App, the installation is the event's (`installation_id=`), else the configured one,
else the one installed on the repository / organisation (looked up and cached). githubkit's
own retries and HTTP cache are off: `with_retries` decides (injected sleep), errors are
translated here. Answers are read as raw JSON (see `github_shapes`).

Every REST operation this client sends is listed in `OPERATIONS`; a contract test checks each
one against GitHub's OpenAPI description (npm @octokit/openapi)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx
from githubkit import AppAuthStrategy, GitHub, TokenAuthStrategy
from githubkit.config import Config, get_config
from githubkit.exception import (
    GitHubException,
    RateLimitExceeded,
    RequestError,
    RequestFailed,
    RequestTimeout,
)
from githubkit.response import Response

from taskyard.exceptions import (
    PlatformError,
    PlatformInDoubt,
    PlatformPermanentError,
    PlatformRateLimited,
    PlatformTransientError,
)
from taskyard.platforms import github_shapes as shapes
from taskyard.platforms.base import Clock, JSONObject, RetryPolicy, Sleep, redact
from taskyard.platforms.github_app import AppTokens, InstallationAuthStrategy, check_private_key
from taskyard.platforms.rest import error_detail, status_error
from taskyard.platforms.retry import with_retries

# Transport errors that mean the request was never sent.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)

OPERATIONS: Mapping[str, tuple[str, str]] = {
    "pull_request": ("GET", "/repos/{owner}/{repo}/pulls/{pull_number}"),
    "pull_request_files": ("GET", "/repos/{owner}/{repo}/pulls/{pull_number}/files"),
    "issue": ("GET", "/repos/{owner}/{repo}/issues/{issue_number}"),
    "issue_comments": ("GET", "/repos/{owner}/{repo}/issues/{issue_number}/comments"),
    "pull_request_reviews": ("GET", "/repos/{owner}/{repo}/pulls/{pull_number}/reviews"),
    "repo_issues": ("GET", "/repos/{owner}/{repo}/issues"),
    "repo_pulls": ("GET", "/repos/{owner}/{repo}/pulls"),
    "permission": ("GET", "/repos/{owner}/{repo}/collaborators/{username}/permission"),
    "team_membership": ("GET", "/orgs/{org}/teams/{team_slug}/memberships/{username}"),
    "installation_token": ("POST", "/app/installations/{installation_id}/access_tokens"),
    "repo_installation": ("GET", "/repos/{owner}/{repo}/installation"),
    "org_installation": ("GET", "/orgs/{org}/installation"),
}
# Called as the App itself (a JWT), not with an installation token.
APP_JWT_OPERATIONS = frozenset({"installation_token", "repo_installation", "org_installation"})
STANDARD_ROLES = frozenset({"admin", "maintain", "write", "triage", "read"})
DIFF_MEDIA_TYPE = "application/vnd.github.diff"
PAGE_SIZE = 100
_NEWEST_FIRST: Mapping[str, Any] = {"state": "all", "sort": "created", "direction": "desc"}
GitHubCall = Callable[[], Awaitable[Response[Any]]]


class SharedTransport(httpx.AsyncBaseTransport):
    """One connection pool for every githubkit client; githubkit closes its per-request
    clients (and so their transport), so closing is left to `close()`."""

    def __init__(self, inner: httpx.AsyncBaseTransport | None = None) -> None:
        self.inner = inner or httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        """Not closed here: still in use by the other clients."""

    async def close(self) -> None:
        await self.inner.aclose()


def translate(
    exc: GitHubException, what: str, secrets: tuple[str | None, ...] = ()
) -> PlatformError:
    """githubkit's exception as taskyard's; `secrets` are scrubbed from anything GitHub said."""
    if isinstance(exc, RequestError) and isinstance(exc.exc, PlatformError):
        return exc.exc  # raised while minting an installation token
    if isinstance(exc, RateLimitExceeded):
        status = exc.response.status_code
        return PlatformRateLimited(
            f"github: {what} answered {status} (rate limited)",
            platform="github",
            status=status,
            retry_after=exc.retry_after.total_seconds(),
        )
    if isinstance(exc, RequestFailed):
        raw = exc.response.raw_response
        detail = redact(error_detail(raw), secrets)
        return status_error("github", what, raw.status_code, detail)
    if isinstance(exc, RequestTimeout):
        return PlatformTransientError(f"github: {what} timed out", platform="github")
    if isinstance(exc, RequestError):
        cause = redact(f"{type(exc.exc).__name__}: {exc.exc}", secrets)
        if isinstance(exc.exc, NOT_SENT):  # it never left: sending it again is safe
            return PlatformTransientError(f"github: {what} failed: {cause}", platform="github")
        return PlatformInDoubt(f"github: {what} failed: {cause}", platform="github")
    return PlatformPermanentError(f"github: {what} failed: {type(exc).__name__}", platform="github")


def _permission(body: Any) -> str | None:
    """The finer `role_name` when it is a standard role, else GitHub's base `permission`
    (which reports maintain as write and triage as read)."""
    if not isinstance(body, dict):
        return None
    role, base = body.get("role_name"), body.get("permission")
    if role in STANDARD_ROLES:
        return str(role)
    return base if isinstance(base, str) else None


def _posted_item(raw: Mapping[str, Any]) -> JSONObject:
    """What a lookup (and a search) needs of a comment, review, issue or pull request."""
    number = raw.get("number")
    body = raw.get("body")
    url = raw.get("html_url")
    title = raw.get("title")
    state = raw.get("state")
    return {
        "id": raw.get("id"),
        "number": number if isinstance(number, int) else None,
        "body": body if isinstance(body, str) else "",
        "html_url": url if isinstance(url, str) else None,
        "title": title if isinstance(title, str) else None,
        "state": state if isinstance(state, str) else None,
    }


def _split_repo(repo: str) -> tuple[str, str]:
    owner, _, name = repo.partition("/")
    if not owner or not name or "/" in name:
        raise PlatformPermanentError(
            f"github: {repo!r} is not an owner/repo name", platform="github"
        )
    return owner, name


class GitHubClient:
    def __init__(
        self,
        *,
        token: str | None = None,
        app_id: str | None = None,
        private_key: str | None = None,
        installation_id: int | None = None,
        base_url: str = "https://api.github.com",
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = time.time,
        refresh_margin: float = 300.0,
        max_diff_bytes: int = 1_000_000,
        max_files: int = 300,
        max_comments: int = 300,
    ) -> None:
        if not token and not (app_id and private_key):
            raise PlatformPermanentError(
                "github needs TASKYARD_GITHUB_TOKEN or a GitHub App "
                "(TASKYARD_GITHUB_APP_ID and TASKYARD_GITHUB_APP_PRIVATE_KEY)",
                platform="github",
            )
        self._transport = SharedTransport(transport)
        self._config: Config = get_config(
            base_url=base_url,
            timeout=timeout,
            async_transport=self._transport,
            http_cache=False,
            auto_retry=False,
        )
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._secrets = (token, private_key)
        self._installation_id = installation_id
        self.max_diff_bytes = max_diff_bytes
        self.max_files = max_files
        self.max_comments = max_comments
        self._clients: dict[int, GitHub[Any]] = {}
        self._token_client: GitHub[Any] | None = None
        self._tokens: AppTokens | None = None
        if app_id and private_key:
            check_private_key(private_key)
            app = GitHub(AppAuthStrategy(app_id, private_key), config=self._config)
            self._tokens = AppTokens(app, self._json, clock=clock, refresh_margin=refresh_margin)
        elif token:
            self._token_client = GitHub(TokenAuthStrategy(token), config=self._config)

    @property
    def uses_app(self) -> bool:
        return self._tokens is not None

    async def aclose(self) -> None:
        await self._transport.close()

    # --- calls ----------------------------------------------------------------------------

    async def _send(
        self, what: str, call: GitHubCall, installation: int | None = None, write: bool = False
    ) -> Any:
        async def once() -> Response[Any]:
            try:
                return await call()
            except GitHubException as exc:
                if self._forgot_refused_token(exc, installation):
                    raise PlatformTransientError(
                        f"github: {what} answered 401 (installation token refused; "
                        "a new one is minted)",
                        platform="github",
                        status=401,
                    ) from exc
                raise translate(exc, what, self._secrets) from exc

        return await with_retries(
            once,
            policy=self._retry,
            sleep=self._sleep,
            what=what,
            write=write,
            platform="github",
        )

    def _forgot_refused_token(self, exc: GitHubException, installation: int | None) -> bool:
        """An installation token refused (401) before it expired is dropped, so the retry
        mints a new one. A 401 while minting is not this: it stays permanent."""
        refused = isinstance(exc, RequestFailed) and exc.response.status_code == 401
        if not refused or self._tokens is None or installation is None:
            return False
        self._tokens.forget(installation)
        return True

    async def _json(self, what: str, call: GitHubCall, installation: int | None = None) -> Any:
        response = await self._send(what, call, installation)
        try:
            return response.json()
        except ValueError:
            raise PlatformPermanentError(
                f"github: {what} answered with a body that is not JSON", platform="github"
            ) from None

    async def _client(
        self, *, repo: str | None = None, org: str | None = None, installation_id: int | None
    ) -> tuple[GitHub[Any], int | None]:
        if self._tokens is None:
            assert self._token_client is not None
            return self._token_client, None
        chosen = installation_id or self._installation_id
        if chosen is None and repo is not None:
            chosen = await self._tokens.for_repo(repo)
        elif chosen is None and org is not None:
            chosen = await self._tokens.for_org(org)
        if chosen is None:
            raise PlatformPermanentError("github: no App installation to act as", platform="github")
        if chosen not in self._clients:
            auth = InstallationAuthStrategy(self._tokens, chosen)
            self._clients[chosen] = GitHub(auth, config=self._config)
        return self._clients[chosen], chosen

    # --- reads ----------------------------------------------------------------------------

    async def pull_request(
        self, repo: str, number: int, *, installation_id: int | None = None
    ) -> JSONObject:
        owner, name = _split_repo(repo)
        gh, inst = await self._client(repo=repo, installation_id=installation_id)
        what = f"GET /repos/{repo}/pulls/{number}"
        raw = await self._json(what, lambda: gh.rest.pulls.async_get(owner, name, number), inst)
        return shapes.pull_request(raw)

    async def pull_request_diff(
        self, repo: str, number: int, *, installation_id: int | None = None
    ) -> JSONObject:
        owner, name = _split_repo(repo)
        gh, inst = await self._client(repo=repo, installation_id=installation_id)
        what = f"GET /repos/{repo}/pulls/{number} (diff)"
        headers = {"Accept": DIFF_MEDIA_TYPE}
        response = await self._send(
            what, lambda: gh.rest.pulls.async_get(owner, name, number, headers=headers), inst
        )
        data = response.content
        truncated = len(data) > self.max_diff_bytes
        text = data[: self.max_diff_bytes].decode("utf-8", errors="replace")
        return {
            "repo": repo,
            "number": number,
            "diff": text,
            "bytes": len(data),
            "truncated": truncated,
        }

    async def pull_request_files(
        self, repo: str, number: int, *, installation_id: int | None = None
    ) -> JSONObject:
        owner, name = _split_repo(repo)
        gh, inst = await self._client(repo=repo, installation_id=installation_id)

        def page(n: int) -> GitHubCall:
            return lambda: gh.rest.pulls.async_list_files(
                owner, name, number, per_page=PAGE_SIZE, page=n
            )

        what = f"GET /repos/{repo}/pulls/{number}/files"
        items, truncated = await self._pages(what, page, self.max_files, inst)
        files = [shapes.changed_file(f) for f in items]
        return {"repo": repo, "number": number, "files": files, "truncated": truncated}

    async def issue(
        self, repo: str, number: int, *, installation_id: int | None = None
    ) -> JSONObject:
        owner, name = _split_repo(repo)
        gh, inst = await self._client(repo=repo, installation_id=installation_id)
        what = f"GET /repos/{repo}/issues/{number}"
        raw = await self._json(what, lambda: gh.rest.issues.async_get(owner, name, number), inst)
        return shapes.issue(raw)

    async def issue_comments(
        self, repo: str, number: int, *, installation_id: int | None = None
    ) -> JSONObject:
        owner, name = _split_repo(repo)
        gh, inst = await self._client(repo=repo, installation_id=installation_id)

        def page(n: int) -> GitHubCall:
            return lambda: gh.rest.issues.async_list_comments(
                owner, name, number, per_page=PAGE_SIZE, page=n
            )

        what = f"GET /repos/{repo}/issues/{number}/comments"
        items, truncated = await self._pages(what, page, self.max_comments, inst)
        comments = [shapes.comment(c) for c in items]
        return {"repo": repo, "number": number, "comments": comments, "truncated": truncated}

    async def _pages(
        self, what: str, page: Callable[[int], GitHubCall], limit: int, inst: int | None
    ) -> tuple[list[Mapping[str, Any]], bool]:
        """Up to `limit` items of a paginated list; True when more were left unread."""
        items: list[Mapping[str, Any]] = []
        number = 1
        while True:
            batch = await self._page(what, page, number, inst)
            items.extend(batch)
            if len(batch) < PAGE_SIZE or len(items) >= limit:
                return items[:limit], len(items) > limit or len(batch) == PAGE_SIZE
            number += 1

    async def _page(
        self, what: str, page: Callable[[int], GitHubCall], number: int, inst: int | None
    ) -> list[Mapping[str, Any]]:
        batch = await self._json(f"{what}?page={number}", page(number), inst)
        if not isinstance(batch, list):
            raise PlatformPermanentError(f"github: {what} is not a list", platform="github")
        return [item for item in batch if isinstance(item, Mapping)]

    async def _posted(
        self, what: str, page: Callable[[int], GitHubCall], inst: int | None, pages: int | None
    ) -> list[JSONObject]:
        """`_posted_item` of every item of a paginated list, or of its first `pages` pages."""
        items: list[JSONObject] = []
        number = 1
        while pages is None or number <= pages:
            batch = await self._page(what, page, number, inst)
            items.extend(_posted_item(item) for item in batch)
            if len(batch) < PAGE_SIZE:
                break
            number += 1
        return items

    # --- what taskyard may have posted (found again by its hidden marker) ------------------

    async def all_issue_comments(
        self, repo: str, number: int, *, installation_id: int | None = None
    ) -> list[JSONObject]:
        """Every comment of an issue or pull request (all pages), oldest first."""
        owner, name = _split_repo(repo)
        gh, inst = await self._client(repo=repo, installation_id=installation_id)

        def page(n: int) -> GitHubCall:
            return lambda: gh.rest.issues.async_list_comments(
                owner, name, number, per_page=PAGE_SIZE, page=n
            )

        return await self._posted(f"GET /repos/{repo}/issues/{number}/comments", page, inst, None)

    async def pull_request_reviews(
        self, repo: str, number: int, *, installation_id: int | None = None
    ) -> list[JSONObject]:
        """Every review of a pull request (all pages), oldest first."""
        owner, name = _split_repo(repo)
        gh, inst = await self._client(repo=repo, installation_id=installation_id)

        def page(n: int) -> GitHubCall:
            return lambda: gh.rest.pulls.async_list_reviews(
                owner, name, number, per_page=PAGE_SIZE, page=n
            )

        return await self._posted(f"GET /repos/{repo}/pulls/{number}/reviews", page, inst, None)

    async def recent_issues(
        self, repo: str, *, pages: int = 3, installation_id: int | None = None
    ) -> list[JSONObject]:
        """The newest issues and pull requests, open or closed, newest first."""
        owner, name = _split_repo(repo)
        gh, inst = await self._client(repo=repo, installation_id=installation_id)

        def page(n: int) -> GitHubCall:
            return lambda: gh.rest.issues.async_list_for_repo(
                owner, name, **_NEWEST_FIRST, per_page=PAGE_SIZE, page=n
            )

        return await self._posted(f"GET /repos/{repo}/issues", page, inst, pages)

    async def recent_pull_requests(
        self, repo: str, *, pages: int = 3, installation_id: int | None = None
    ) -> list[JSONObject]:
        """The newest pull requests, open or closed, newest first."""
        owner, name = _split_repo(repo)
        gh, inst = await self._client(repo=repo, installation_id=installation_id)

        def page(n: int) -> GitHubCall:
            return lambda: gh.rest.pulls.async_list(
                owner, name, **_NEWEST_FIRST, per_page=PAGE_SIZE, page=n
            )

        return await self._posted(f"GET /repos/{repo}/pulls", page, inst, pages)

    # --- who may trigger (PermissionLookup) -----------------------------------------------

    async def permission(
        self, repo_full_name: str, login: str, *, installation_id: int | None = None
    ) -> str | None:
        """The role: admin, maintain, write, triage, read or none (a custom role counts as
        its base permission); None when `login` is not a collaborator (404)."""
        owner, name = _split_repo(repo_full_name)
        gh, inst = await self._client(repo=repo_full_name, installation_id=installation_id)
        what = f"GET /repos/{repo_full_name}/collaborators/{login}/permission"
        try:
            body = await self._json(
                what,
                lambda: gh.rest.repos.async_get_collaborator_permission_level(owner, name, login),
                inst,
            )
        except PlatformPermanentError as exc:
            if exc.status == 404:
                return None
            raise
        return _permission(body)

    async def in_team(
        self, org: str, team_slug: str, login: str, *, installation_id: int | None = None
    ) -> bool:
        """True when `login` is an active member (or maintainer) of the team."""
        gh, inst = await self._client(org=org, installation_id=installation_id)
        what = f"GET /orgs/{org}/teams/{team_slug}/memberships/{login}"
        try:
            body = await self._json(
                what,
                lambda: gh.rest.teams.async_get_membership_for_user_in_org(org, team_slug, login),
                inst,
            )
        except PlatformPermanentError as exc:
            if exc.status == 404:
                return False
            raise
        return isinstance(body, dict) and body.get("state") == "active"
