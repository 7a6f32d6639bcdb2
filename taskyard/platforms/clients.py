"""`Platforms`: the platform clients taskyard holds, one per platform that has credentials.

Built once from the settings (the CLI does it), passed down, closed at shutdown (an async
context manager). Tests build it from fakes: `Platforms(github=FakeGitHub(...))`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Protocol

import httpx

from taskyard.exceptions import ConfigError, CredentialsMissing
from taskyard.platforms.base import (
    Clock,
    GitHubReader,
    LinearReader,
    PermissionLookup,
    RequestObserver,
    RetryPolicy,
    SentryReader,
    SlackReader,
    Sleep,
)
from taskyard.platforms.writes import PlatformWriter

if TYPE_CHECKING:  # config imports routing, which may import the fetcher names from here
    from taskyard.config import GitHubPlatformConfig, PlatformsConfig
    from taskyard.platforms.github import GitHubClient
    from taskyard.platforms.linear import LinearClient
    from taskyard.platforms.slack import SlackClient

CREDENTIALS = {
    "github": "TASKYARD_GITHUB_TOKEN or a GitHub App "
    "(TASKYARD_GITHUB_APP_ID and TASKYARD_GITHUB_APP_PRIVATE_KEY[_FILE])",
    "linear": "TASKYARD_LINEAR_API_KEY",
    "slack": "TASKYARD_SLACK_BOT_TOKEN",
    "sentry": "TASKYARD_SENTRY_TOKEN",
}


def _missing(platform: str, needed_by: str) -> CredentialsMissing:
    return CredentialsMissing(
        f"{needed_by} needs {CREDENTIALS[platform]}", platform=platform, status=None
    )


def retry_policy(config: PlatformsConfig, observer: RequestObserver | None = None) -> RetryPolicy:
    return RetryPolicy(
        observer=observer,
        attempts=config.retry_attempts,
        backoff=config.backoff_seconds,
        backoff_max=config.backoff_max_seconds,
        rate_limit_max_wait=config.rate_limit_max_wait_seconds,
    )


def _private_key(config: GitHubPlatformConfig) -> str | None:
    if config.app_private_key is not None:
        return config.app_private_key.get_secret_value()
    if config.app_private_key_file is None:
        return None
    try:
        return config.app_private_key_file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"cannot read the GitHub App private key file {config.app_private_key_file}: "
            f"{exc.strerror}"
        ) from None


@dataclass(frozen=True, slots=True)
class _Build:
    """What every client is built with."""

    config: PlatformsConfig
    retry: RetryPolicy
    sleep: Sleep
    clock: Clock
    transports: Mapping[str, httpx.AsyncBaseTransport]


def _github(b: _Build, cls: type[GitHubClient] | None = None) -> GitHubClient | None:
    from taskyard.platforms.github import GitHubClient

    gh = b.config.github
    key = _private_key(gh)
    if gh.token is None and key is None:
        return None
    return (cls or GitHubClient)(
        token=gh.token.get_secret_value() if gh.token is not None else None,
        app_id=gh.app_id,
        private_key=key,
        installation_id=gh.installation_id,
        base_url=gh.base_url,
        timeout=b.config.request_timeout_seconds,
        retry=b.retry,
        transport=b.transports.get("github"),
        sleep=b.sleep,
        clock=b.clock,
        refresh_margin=gh.token_refresh_margin_seconds,
        max_diff_bytes=gh.max_diff_bytes,
        max_files=gh.max_files,
    )


def _linear(b: _Build, cls: type[LinearClient] | None = None) -> LinearClient | None:
    from taskyard.platforms.linear import LinearClient

    li = b.config.linear
    if li.api_key is None:
        return None
    return (cls or LinearClient)(
        li.api_key.get_secret_value(),
        url=li.url,
        timeout=b.config.request_timeout_seconds,
        retry=b.retry,
        transport=b.transports.get("linear"),
        sleep=b.sleep,
        team_cache_seconds=li.team_cache_seconds,
        related_limit=li.related_limit,
    )


def _slack(b: _Build, cls: type[SlackClient] | None = None) -> SlackClient | None:
    from taskyard.platforms.slack import SlackClient

    sl = b.config.slack
    if sl.bot_token is None:
        return None
    return (cls or SlackClient)(
        sl.bot_token.get_secret_value(),
        base_url=sl.base_url,
        timeout=b.config.request_timeout_seconds,
        retry=b.retry,
        sleep=b.sleep,
        thread_limit=sl.thread_limit,
    )


def _sentry(b: _Build) -> SentryReader | None:
    from taskyard.platforms.sentry import SentryClient

    se = b.config.sentry
    if se.token is None:
        return None
    return SentryClient(
        se.token.get_secret_value(),
        base_url=se.base_url,
        organization=se.organization,
        timeout=b.config.request_timeout_seconds,
        retry=b.retry,
        transport=b.transports.get("sentry"),
        sleep=b.sleep,
    )


@dataclass
class Platforms:
    github: GitHubReader | None = None
    linear: LinearReader | None = None
    slack: SlackReader | None = None
    sentry: SentryReader | None = None

    @classmethod
    def from_settings(
        cls,
        config: PlatformsConfig,
        *,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = time.time,
        transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
        observer: RequestObserver | None = None,
    ) -> Platforms:
        """Clients for the platforms that have credentials. `transports` (by platform name)
        replace the network, for tests; `observer` hears of every request (metrics). Raises
        ConfigError for an unreadable or invalid App key."""
        policy = retry_policy(config, observer)
        build = _Build(config, policy, sleep, clock, dict(transports or {}))
        return cls(
            github=_github(build), linear=_linear(build), slack=_slack(build), sentry=_sentry(build)
        )

    def require_github(self, needed_by: str) -> GitHubReader:
        if self.github is None:
            raise _missing("github", needed_by)
        return self.github

    def require_linear(self, needed_by: str) -> LinearReader:
        if self.linear is None:
            raise _missing("linear", needed_by)
        return self.linear

    def require_slack(self, needed_by: str) -> SlackReader:
        if self.slack is None:
            raise _missing("slack", needed_by)
        return self.slack

    def require_sentry(self, needed_by: str) -> SentryReader:
        if self.sentry is None:
            raise _missing("sentry", needed_by)
        return self.sentry

    def permission_lookup(self, installation_id: int | None = None) -> PermissionLookup:
        """Who-may-trigger lookups on GitHub, as the given App installation (the event's)."""
        return _BoundLookup(self.require_github("the GitHub permission check"), installation_id)

    async def aclose(self) -> None:
        clients = (self.github, self.linear, self.slack, self.sentry)
        for client in clients:
            if client is not None:
                await client.aclose()

    async def __aenter__(self) -> Platforms:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class ClosableWriter(PlatformWriter, Protocol):
    async def aclose(self) -> None: ...


def writers_from_settings(
    config: PlatformsConfig,
    *,
    sleep: Sleep = asyncio.sleep,
    clock: Clock = time.time,
    transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
    observer: RequestObserver | None = None,
) -> dict[str, ClosableWriter]:
    """Writers (by platform name: github, linear, slack) for the platforms that have
    credentials, built like the readers; the caller closes each (`aclose`)."""
    from taskyard.platforms.github_write import GitHubWriter
    from taskyard.platforms.linear_write import LinearWriter
    from taskyard.platforms.slack_write import SlackWriter

    build = _Build(config, retry_policy(config, observer), sleep, clock, dict(transports or {}))
    found = {
        "github": _github(build, GitHubWriter),
        "linear": _linear(build, LinearWriter),
        "slack": _slack(build, SlackWriter),
    }
    writers: dict[str, ClosableWriter] = {}
    for name, writer in found.items():
        if isinstance(writer, GitHubWriter | LinearWriter | SlackWriter):
            writers[name] = writer
    return writers


class _BoundLookup:
    """`PermissionLookup` bound to one App installation."""

    def __init__(self, github: GitHubReader, installation_id: int | None) -> None:
        self._github = github
        self._installation_id = installation_id

    async def permission(self, repo_full_name: str, login: str) -> str | None:
        return await self._github.permission(
            repo_full_name, login, installation_id=self._installation_id
        )

    async def in_team(self, org: str, team_slug: str, login: str) -> bool:
        return await self._github.in_team(
            org, team_slug, login, installation_id=self._installation_id
        )
