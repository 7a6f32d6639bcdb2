"""The small interfaces every platform client implements, and what they share.

Reads come first (context for tasks); writes (labels, comments) are added later as further
protocol methods beside these, so a client, its fake and its callers grow together.

Every method raises `PlatformPermanentError` (retrying cannot help: 401/403/404, a missing
credential, an answer of the wrong shape) or `PlatformTransientError` (timeout, network, 5xx,
a rate limit beyond the retry budget) and nothing else from the libraries underneath. No
message ever holds a credential.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

JSONObject = dict[str, Any]
Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]


class RequestObserver(Protocol):
    """Hears of every platform API attempt (metrics): `kind` is read or write, `outcome` ok,
    error or rate_limited; and of every wait a rate limit asked for."""

    def platform_request(self, platform: str, kind: str, outcome: str) -> None: ...

    def rate_limit_waited(self, platform: str, seconds: float) -> None: ...


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a client retries one call. 5xx/network errors: `attempts` tries with exponential
    backoff. Rate limits: wait what the platform asks (Retry-After), at most
    `rate_limit_max_wait` seconds in all and `rate_limit_attempts` times; beyond that the call
    fails as transient."""

    attempts: int = 3
    backoff: float = 0.5
    backoff_max: float = 8.0
    rate_limit_max_wait: float = 30.0
    rate_limit_attempts: int = 5
    observer: RequestObserver | None = field(default=None, compare=False, repr=False)

    def delay(self, failures: int) -> float:
        """Seconds to wait after the `failures`-th transient failure (1-based)."""
        return float(min(self.backoff_max, self.backoff * 2 ** (failures - 1)))


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """`text` with every non-trivial secret replaced by `***`."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


class PermissionLookup(Protocol):
    """Who may trigger: a user's permission on a repository, and team membership."""

    async def permission(self, repo_full_name: str, login: str) -> str | None:
        """The role: admin, maintain, write, triage, read or none (a custom role counts as
        its base permission); None if `login` is not a collaborator (404)."""
        ...

    async def in_team(self, org: str, team_slug: str, login: str) -> bool:
        """True when `login` is an active member of the team (pending invitations are not)."""
        ...


class GitHubReader(Protocol):
    """GitHub reads. `installation_id` picks the App installation (ignored with a token)."""

    async def pull_request(
        self, repo: str, number: int, *, installation_id: int | None = None
    ) -> JSONObject: ...

    async def pull_request_diff(
        self, repo: str, number: int, *, installation_id: int | None = None
    ) -> JSONObject: ...

    async def pull_request_files(
        self, repo: str, number: int, *, installation_id: int | None = None
    ) -> JSONObject: ...

    async def issue(
        self, repo: str, number: int, *, installation_id: int | None = None
    ) -> JSONObject: ...

    async def issue_comments(
        self, repo: str, number: int, *, installation_id: int | None = None
    ) -> JSONObject: ...

    # What taskyard may have posted, for finding it again by its hidden marker: each item is
    # `{"id", "number", "body", "html_url"}` (number: issues and pull requests only).

    async def all_issue_comments(
        self, repo: str, number: int, *, installation_id: int | None = None
    ) -> list[JSONObject]:
        """Every comment of an issue or pull request (all pages), oldest first."""
        ...

    async def pull_request_reviews(
        self, repo: str, number: int, *, installation_id: int | None = None
    ) -> list[JSONObject]:
        """Every review of a pull request (all pages), oldest first."""
        ...

    async def recent_issues(
        self, repo: str, *, pages: int = 3, installation_id: int | None = None
    ) -> list[JSONObject]:
        """The repository's newest issues and pull requests, open or closed, newest first
        (at most `pages` pages of 100)."""
        ...

    async def recent_pull_requests(
        self, repo: str, *, pages: int = 3, installation_id: int | None = None
    ) -> list[JSONObject]:
        """The repository's newest pull requests, open or closed, newest first (at most
        `pages` pages of 100)."""
        ...

    async def permission(
        self, repo_full_name: str, login: str, *, installation_id: int | None = None
    ) -> str | None: ...

    async def in_team(
        self, org: str, team_slug: str, login: str, *, installation_id: int | None = None
    ) -> bool: ...

    async def aclose(self) -> None: ...


class LinearReader(Protocol):
    async def issue(self, issue_id: str) -> JSONObject: ...

    async def related(
        self, issue_id: str, *, title: str | None = None, team_id: str | None = None
    ) -> JSONObject: ...

    async def team(self, team_id: str) -> JSONObject: ...

    async def issue_team(self, issue_id: str) -> str:
        """The id of the team an issue belongs to."""
        ...

    async def team_directory(self, team_id: str) -> JSONObject:
        """`{"id", "key", "labels", "states", "members"}`: each label and state `{id, name}`,
        each member `{id, name, displayName, email}` (labels: the team's, then the
        workspace's)."""
        ...

    async def find_issue(self, issue_id: str) -> JSONObject | None:
        """`{"id", "identifier", "url"}`, or None when there is no such issue."""
        ...

    async def find_comment(self, comment_id: str) -> JSONObject | None:
        """`{"id", "url"}`, or None when there is no such comment."""
        ...

    async def aclose(self) -> None: ...


class SlackReader(Protocol):
    async def thread(self, channel: str, thread_ts: str) -> JSONObject: ...

    async def aclose(self) -> None: ...


class SentryReader(Protocol):
    async def issue(self, issue_id: str, *, organization: str | None = None) -> JSONObject: ...

    async def latest_event(
        self, issue_id: str, *, organization: str | None = None
    ) -> JSONObject: ...

    async def aclose(self) -> None: ...
