"""Retrying one platform call: Retry-After for rate limits, backoff for 5xx and network errors.

Permanent errors are raised at once. The sleep is injected so tests see every wait.
"""

from __future__ import annotations

import email.utils
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from taskyard.exceptions import (
    PlatformInDoubt,
    PlatformRateLimited,
    PlatformTransientError,
)
from taskyard.platforms.base import RetryPolicy, Sleep

log = logging.getLogger(__name__)
T = TypeVar("T")


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a `Retry-After` header: delta-seconds or an HTTP date."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


class _Budget:
    """What one call has spent on waiting so far."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.failures = 0
        self.rate_limited = 0
        self.rate_waited = 0.0

    def after_rate_limit(self, exc: PlatformRateLimited) -> float:
        wait = exc.retry_after
        if wait is None:
            wait = self.policy.delay(self.rate_limited + 1)
        self.rate_limited += 1
        too_long = self.rate_waited + wait > self.policy.rate_limit_max_wait
        if too_long or self.rate_limited > self.policy.rate_limit_attempts:
            raise PlatformTransientError(
                f"{exc}; still rate limited after waiting {self.rate_waited:.0f} s "
                f"(the platform asks for {wait:.0f} s more, the budget is "
                f"{self.policy.rate_limit_max_wait:.0f} s)",
                platform=exc.platform,
                status=exc.status,
            ) from exc
        self.rate_waited += wait
        return wait

    def after_failure(self, exc: PlatformTransientError) -> float:
        self.failures += 1
        if self.failures >= self.policy.attempts:
            raise exc
        return self.policy.delay(self.failures)


async def with_retries(
    call: Callable[[], Awaitable[T]],
    *,
    policy: RetryPolicy,
    sleep: Sleep,
    what: str,
    write: bool = False,
    platform: str = "unknown",
) -> T:
    """Run `call` until it succeeds, fails permanently, or the retry budget is spent. A
    `write` is not sent again after an error that leaves it in doubt (`PlatformInDoubt`).
    Each attempt, and each rate-limit wait, is told to `policy.observer` (when set)."""
    budget = _Budget(policy)
    seen = policy.observer or _UNSEEN
    kind = "write" if write else "read"
    while True:
        try:
            answer = await call()
        except PlatformRateLimited as exc:
            seen.platform_request(platform, kind, "rate_limited")
            wait, error = budget.after_rate_limit(exc), str(exc)
            seen.rate_limit_waited(platform, wait)
        except PlatformTransientError as exc:
            seen.platform_request(platform, kind, "error")
            if write and isinstance(exc, PlatformInDoubt):
                raise
            wait, error = budget.after_failure(exc), str(exc)
        except Exception:
            seen.platform_request(platform, kind, "error")
            raise
        else:
            seen.platform_request(platform, kind, "ok")
            return answer
        log.info(
            "platform call retried",
            extra={
                "platform": platform,
                "call": what,
                "wait_seconds": round(wait, 3),
                "attempt": budget.failures,
                "error": error,
            },
        )
        await sleep(wait)


class _Unseen:
    def platform_request(self, platform: str, kind: str, outcome: str) -> None:
        pass

    def rate_limit_waited(self, platform: str, seconds: float) -> None:
        pass


_UNSEEN = _Unseen()
