"""One JSON request over httpx, its failures translated into taskyard's platform errors.

Used by the Linear and Sentry clients (GitHub goes through githubkit, Slack through slack-sdk,
both translated in their own modules with the same rules, from `status_error`)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import httpx

from taskyard.exceptions import (
    PlatformError,
    PlatformInDoubt,
    PlatformPermanentError,
    PlatformRateLimited,
    PlatformTransientError,
)
from taskyard.platforms.base import redact
from taskyard.platforms.retry import parse_retry_after

_MEANING = {
    401: "the credentials were refused",
    403: "the credentials lack permission",
    404: "not found, or the credentials cannot see it",
    410: "gone",
    422: "the request was refused as invalid",
}


def status_error(
    platform: str,
    what: str,
    status: int,
    detail: str = "",
    *,
    retry_after: float | None = None,
) -> PlatformError:
    """The error for an HTTP status: 429 rate limited, 5xx/408 transient, other 4xx permanent."""
    text = f"{platform}: {what} answered {status}"
    if detail:
        text += f": {detail[:300]}"
    if status == 429:
        return PlatformRateLimited(
            f"{text} (rate limited)", platform=platform, status=status, retry_after=retry_after
        )
    if status >= 500 or status == 408:
        return PlatformTransientError(f"{text} (server error)", platform=platform, status=status)
    meaning = _MEANING.get(status, "refused")
    return PlatformPermanentError(
        f"{text} ({meaning}; permanent)", platform=platform, status=status
    )


def error_detail(response: httpx.Response) -> str:
    """The platform's own short explanation from an error body, if it is JSON and has one."""
    try:
        body = response.json()
    except ValueError:
        return ""
    if isinstance(body, dict):
        for key in ("message", "detail", "error"):
            if isinstance(body.get(key), str):
                return str(body[key])
    return ""


class JsonHttp:
    """POST/GET JSON with an `httpx.AsyncClient` the caller gives (and closes)."""

    def __init__(self, client: httpx.AsyncClient, platform: str, secrets: Iterable[str]):
        self.client = client
        self.platform = platform
        self.secrets = tuple(secrets)

    async def request(
        self, method: str, url: str, what: str, *, check_status: bool = True, **kwargs: Any
    ) -> httpx.Response:
        """Send; raise the translated error for a network failure or (unless told not to
        check) an error status."""
        try:
            response = await self.client.request(method, url, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise self._transient(f"{what} failed: {type(exc).__name__}: {exc}") from exc
        except httpx.TimeoutException as exc:  # the answer, not the connection, timed out
            said = f"{what} timed out ({type(exc).__name__})"
            raise PlatformInDoubt(f"{self.platform}: {said}", platform=self.platform) from exc
        except httpx.HTTPError as exc:  # it may have been sent: a write is not sent again
            said = f"{what} failed: {type(exc).__name__}: {exc}".rstrip(": ")
            raise PlatformInDoubt(f"{self.platform}: {said}", platform=self.platform) from exc
        if check_status and response.status_code >= 400:
            raise self.status(response, what)
        return response

    async def json(self, method: str, url: str, what: str, **kwargs: Any) -> Any:
        response = await self.request(method, url, what, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise PlatformPermanentError(
                f"{self.platform}: {what} answered {response.status_code} with a body that is "
                "not JSON",
                platform=self.platform,
                status=response.status_code,
            ) from None

    def status(self, response: httpx.Response, what: str) -> PlatformError:
        """The error for `response`'s status (call it for statuses >= 400)."""
        wait = parse_retry_after(response.headers.get("retry-after"), time.time())
        detail = redact(error_detail(response), self.secrets)
        return status_error(self.platform, what, response.status_code, detail, retry_after=wait)

    def _transient(self, message: str) -> PlatformTransientError:
        text = redact(f"{self.platform}: {message}", self.secrets)
        return PlatformTransientError(text, platform=self.platform)
