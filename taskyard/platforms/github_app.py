"""GitHub App authentication: a JWT signed with the App's key buys an installation token
(POST /app/installations/{installation_id}/access_tokens), valid for an hour. Tokens are
cached per installation and minted again `refresh_margin` seconds before they expire, by an
injected clock. Which installation serves a repository or an organisation, when the event
does not say, is looked up once (GET /repos/{owner}/{repo}/installation,
GET /orgs/{org}/installation) and cached."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from githubkit import AppAuthStrategy, GitHub
from githubkit.auth.base import BaseAuthStrategy
from githubkit.core import GitHubCore

from taskyard.exceptions import ConfigError, PlatformPermanentError
from taskyard.platforms.base import Clock
from taskyard.platforms.cache import TTLCache

log = logging.getLogger(__name__)

# Runs one githubkit call with error translation and retries: (what, call) -> its JSON body.
Caller = Callable[[str, Callable[[], Awaitable[Any]]], Awaitable[Any]]
INSTALLATION_TTL = 3600.0


def check_private_key(pem: str) -> None:
    """Raise ConfigError unless `pem` is a PEM private key (its text never in the message)."""
    try:
        load_pem_private_key(pem.encode("utf-8"), password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"the GitHub App private key is not a usable PEM private key ({type(exc).__name__})"
        ) from None


@dataclass(frozen=True, slots=True)
class _Token:
    value: str
    expires_at: float  # the clock's seconds


def _expiry(raw: Any) -> float:
    if not isinstance(raw, str):
        raise PlatformPermanentError(
            "github: the installation token answer has no expires_at", platform="github"
        )
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise PlatformPermanentError(
            f"github: the installation token's expires_at {raw!r} is not a timestamp",
            platform="github",
        ) from None


class AppTokens:
    """Installation tokens of one GitHub App."""

    def __init__(
        self, app: GitHub[AppAuthStrategy], call: Caller, *, clock: Clock, refresh_margin: float
    ) -> None:
        self._app = app
        self._call = call
        self._clock = clock
        self._margin = refresh_margin
        self._tokens: dict[int, _Token] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        self._installations: TTLCache[str, int] = TTLCache(INSTALLATION_TTL, clock=clock)

    async def token(self, installation_id: int) -> str:
        """A token for the installation, minted only when none is cached or it is about to
        expire."""
        async with self._locks.setdefault(installation_id, asyncio.Lock()):
            cached = self._tokens.get(installation_id)
            if cached is not None and self._clock() < cached.expires_at - self._margin:
                return cached.value
            fresh = await self._mint(installation_id)
            self._tokens[installation_id] = fresh
            return fresh.value

    def forget(self, installation_id: int) -> None:
        """Drop a cached token the platform refused (401); the next call mints a new one."""
        self._tokens.pop(installation_id, None)

    async def _mint(self, installation_id: int) -> _Token:
        what = f"POST /app/installations/{installation_id}/access_tokens"
        body = await self._call(
            what,
            lambda: self._app.rest.apps.async_create_installation_access_token(installation_id),
        )
        token = body.get("token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise PlatformPermanentError(
                f"github: {what} answered without a token", platform="github"
            )
        expires_at = _expiry(body.get("expires_at"))
        log.info(
            "github installation token minted",
            extra={"installation_id": installation_id, "expires_in": expires_at - self._clock()},
        )
        return _Token(token, expires_at)

    async def for_repo(self, repo_full_name: str) -> int:
        owner, name = repo_full_name.split("/", 1)
        return await self._installations.get_or_load(
            f"repo:{repo_full_name.lower()}",
            lambda: self._installation_id(
                f"GET /repos/{owner}/{name}/installation",
                lambda: self._app.rest.apps.async_get_repo_installation(owner, name),
            ),
        )

    async def for_org(self, org: str) -> int:
        return await self._installations.get_or_load(
            f"org:{org.lower()}",
            lambda: self._installation_id(
                f"GET /orgs/{org}/installation",
                lambda: self._app.rest.apps.async_get_org_installation(org),
            ),
        )

    async def _installation_id(self, what: str, request: Callable[[], Awaitable[Any]]) -> int:
        body = await self._call(what, request)
        value = body.get("id") if isinstance(body, dict) else None
        if not isinstance(value, int):
            raise PlatformPermanentError(
                f"github: {what} answered without an installation id", platform="github"
            )
        return value


class _InstallationAuth(httpx.Auth):
    """Adds `Authorization: token <installation token>` to each request."""

    def __init__(self, tokens: AppTokens, installation_id: int) -> None:
        self._tokens = tokens
        self._installation_id = installation_id

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self._tokens.token(self._installation_id)
        request.headers["Authorization"] = f"token {token}"
        yield request


class InstallationAuthStrategy(BaseAuthStrategy):
    """githubkit auth for one installation, its tokens from `AppTokens` (our cache, our clock)."""

    def __init__(self, tokens: AppTokens, installation_id: int) -> None:
        self.tokens = tokens
        self.installation_id = installation_id

    def get_auth_flow(self, github: GitHubCore[Any]) -> httpx.Auth:
        return _InstallationAuth(self.tokens, self.installation_id)
