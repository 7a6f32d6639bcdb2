"""Per-source rate limits and address allowlists."""

from __future__ import annotations

import ipaddress
import math
import time
from collections.abc import Callable, Sequence

from taskyard.config import IPNetwork
from taskyard.exceptions import Forbidden, RateLimited


class RateLimiter:
    """A token bucket: `per_hour` deliveries an hour, up to `per_hour` at once after a quiet hour.
    `check` refuses when the bucket is empty without spending; `spend` takes one token."""

    def __init__(self, per_hour: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_hour = per_hour
        self.clock = clock
        self._tokens = float(per_hour)
        self._at = clock()

    def _refill(self) -> None:
        now = self.clock()
        rate = self.per_hour / 3600.0
        self._tokens = min(float(self.per_hour), self._tokens + (now - self._at) * rate)
        self._at = now

    def check(self, source: str) -> None:
        if self.per_hour <= 0:
            return
        self._refill()
        if self._tokens < 1.0:
            wait = (1.0 - self._tokens) * 3600.0 / self.per_hour
            raise RateLimited(
                f"source {source} is over its limit of {self.per_hour} deliveries an hour",
                retry_after=max(1, math.ceil(wait)),
            )

    def spend(self) -> None:
        if self.per_hour > 0:
            self._tokens -= 1.0


def check_address(source: str, client: str | None, allowed: Sequence[IPNetwork]) -> None:
    if not allowed:
        return
    try:
        address = ipaddress.ip_address(client or "")
    except ValueError:
        raise Forbidden(f"source {source} accepts listed addresses only") from None
    if not any(address in net for net in allowed):
        raise Forbidden(f"source {source} does not accept deliveries from {address}")
