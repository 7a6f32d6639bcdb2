"""Every platform attempt and rate-limit wait is told to the retry policy's observer."""

from __future__ import annotations

import pytest

from taskyard.exceptions import (
    PlatformInDoubt,
    PlatformPermanentError,
    PlatformRateLimited,
    PlatformTransientError,
)
from taskyard.platforms.base import RetryPolicy
from taskyard.platforms.retry import with_retries
from tests.unit.platforms.conftest import Sleeps
from tests.unit.platforms.test_retry import Flaky


class Seen:
    def __init__(self) -> None:
        self.requests: list[tuple[str, str, str]] = []
        self.waits: list[tuple[str, float]] = []

    def platform_request(self, platform: str, kind: str, outcome: str) -> None:
        self.requests.append((platform, kind, outcome))

    def rate_limit_waited(self, platform: str, seconds: float) -> None:
        self.waits.append((platform, seconds))


@pytest.fixture
def seen() -> Seen:
    return Seen()


async def test_each_attempt_and_each_wait_is_told(sleeps: Sleeps, seen: Seen) -> None:
    call = Flaky(
        PlatformRateLimited("429", retry_after=3),
        PlatformTransientError("502"),
        PlatformRateLimited("429", retry_after=5),
    )
    policy = RetryPolicy(backoff=0.25, observer=seen)
    done = await with_retries(call, policy=policy, sleep=sleeps, what="x", platform="linear")
    assert done == "done"
    assert seen.requests == [
        ("linear", "read", "rate_limited"),
        ("linear", "read", "error"),
        ("linear", "read", "rate_limited"),
        ("linear", "read", "ok"),
    ]
    assert seen.waits == [("linear", 3), ("linear", 5)]  # backoff is no rate-limit wait
    assert sleeps.waits == [3, 0.25, 5]


async def test_failed_writes_are_told_before_they_are_raised(sleeps: Sleeps, seen: Seen) -> None:
    policy = RetryPolicy(observer=seen, rate_limit_max_wait=10)
    raised: list[tuple[Exception, type[Exception]]] = [
        (PlatformPermanentError("404"), PlatformPermanentError),
        (PlatformInDoubt("read timed out"), PlatformInDoubt),
        # beyond the budget: not waited, raised as transient
        (PlatformRateLimited("429", retry_after=60), PlatformTransientError),
        (ValueError("a bug"), ValueError),
    ]
    for error, expected in raised:
        with pytest.raises(expected):
            await with_retries(
                Flaky(error), policy=policy, sleep=sleeps, what="x", write=True, platform="github"
            )
    assert seen.requests == [
        ("github", "write", "error"),
        ("github", "write", "error"),
        ("github", "write", "rate_limited"),
        ("github", "write", "error"),
    ]
    assert seen.waits == [] and sleeps.waits == []


async def test_without_an_observer_nothing_is_told(sleeps: Sleeps) -> None:
    call = Flaky(PlatformRateLimited("429", retry_after=1))
    assert await with_retries(call, policy=RetryPolicy(), sleep=sleeps, what="x") == "done"
    assert RetryPolicy() == RetryPolicy(observer=Seen())  # the observer is no part of a policy
