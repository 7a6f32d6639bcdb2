"""One call's retries: Retry-After honoured within a budget, backoff for 5xx, none for 4xx."""

from __future__ import annotations

import email.utils

import pytest

from taskyard.exceptions import (
    PlatformPermanentError,
    PlatformRateLimited,
    PlatformTransientError,
)
from taskyard.platforms.base import RetryPolicy
from taskyard.platforms.retry import parse_retry_after, with_retries
from tests.unit.platforms.conftest import Sleeps


class Flaky:
    """Raises the given errors in turn, then returns "done"."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"


def test_retry_after_is_seconds_or_an_http_date() -> None:
    assert parse_retry_after("7", 0) == 7.0
    assert parse_retry_after(" 0 ", 0) == 0.0
    when = email.utils.formatdate(1_000_030, usegmt=True)
    assert parse_retry_after(when, 1_000_000) == pytest.approx(30.0)
    assert parse_retry_after("soon", 0) is None
    assert parse_retry_after(None, 0) is None


async def test_rate_limit_waits_what_the_platform_asks(sleeps: Sleeps) -> None:
    call = Flaky(
        PlatformRateLimited("429", retry_after=3), PlatformRateLimited("429", retry_after=5)
    )
    assert await with_retries(call, policy=RetryPolicy(), sleep=sleeps, what="x") == "done"
    assert sleeps.waits == [3, 5] and call.calls == 3


async def test_rate_limit_beyond_the_budget_fails_transient_without_waiting(sleeps: Sleeps) -> None:
    call = Flaky(PlatformRateLimited("github: GET /x answered 429", retry_after=45))
    policy = RetryPolicy(rate_limit_max_wait=30)
    with pytest.raises(PlatformTransientError, match="budget is 30 s") as caught:
        await with_retries(call, policy=policy, sleep=sleeps, what="x")
    assert not isinstance(caught.value, PlatformPermanentError)
    assert sleeps.waits == [] and call.calls == 1


async def test_rate_limit_budget_counts_all_waits(sleeps: Sleeps) -> None:
    errors = [PlatformRateLimited("429", retry_after=12) for _ in range(3)]
    with pytest.raises(PlatformTransientError):
        await with_retries(
            Flaky(*errors), policy=RetryPolicy(rate_limit_max_wait=30), sleep=sleeps, what="x"
        )
    assert sleeps.waits == [12, 12]


async def test_server_errors_back_off_then_give_up(sleeps: Sleeps) -> None:
    policy = RetryPolicy(attempts=3, backoff=0.5, backoff_max=8)
    call = Flaky(*(PlatformTransientError("503") for _ in range(5)))
    with pytest.raises(PlatformTransientError, match="503"):
        await with_retries(call, policy=policy, sleep=sleeps, what="x")
    assert call.calls == 3 and sleeps.waits == [0.5, 1.0]


async def test_server_error_then_success(sleeps: Sleeps) -> None:
    call = Flaky(PlatformTransientError("502"))
    assert await with_retries(call, policy=RetryPolicy(), sleep=sleeps, what="x") == "done"
    assert call.calls == 2


async def test_permanent_errors_are_not_retried(sleeps: Sleeps) -> None:
    call = Flaky(PlatformPermanentError("404"))
    with pytest.raises(PlatformPermanentError):
        await with_retries(call, policy=RetryPolicy(), sleep=sleeps, what="x")
    assert call.calls == 1 and sleeps.waits == []
