"""Per-source rate limits and address allowlists."""

from __future__ import annotations

import ipaddress
import math
import time
from collections.abc import Callable, Sequence

from taskyard.config import IPNetwork
from taskyard.exceptions import Forbidden, RateLimited
from taskyard.intake.shared import BucketCell


class RateLimiter:
    """A token bucket: `per_hour` deliveries an hour, up to `per_hour` at once after a quiet hour.
    `check` refuses when the bucket is empty without spending; `spend` takes one token. The
    bucket's state lives in a `BucketCell`: this process's own, or one shared by every intake
    process (see `taskyard.intake.shared`)."""

    def __init__(
        self,
        per_hour: int,
        clock: Callable[[], float] = time.monotonic,
        cell: BucketCell | None = None,
    ) -> None:
        self.per_hour = per_hour
        self.clock = clock
        self.cell = cell or BucketCell()

    def _refilled(self) -> tuple[float, float]:
        """Tokens now (call with the cell held)."""
        now = self.clock()
        tokens, at = self.cell.read()
        if math.isnan(tokens):
            return float(self.per_hour), now
        rate = self.per_hour / 3600.0
        return min(float(self.per_hour), tokens + max(0.0, now - at) * rate), now

    def check(self, source: str) -> None:
        if self.per_hour <= 0:
            return
        with self.cell.held():
            tokens, _ = self._refilled()
        if tokens < 1.0:
            wait = (1.0 - tokens) * 3600.0 / self.per_hour
            raise RateLimited(
                f"source {source} is over its limit of {self.per_hour} deliveries an hour",
                retry_after=max(1, math.ceil(wait)),
            )

    def spend(self) -> None:
        if self.per_hour <= 0:
            return
        with self.cell.held():
            tokens, now = self._refilled()
            self.cell.write(tokens - 1.0, now)


def check_address(source: str, client: str | None, allowed: Sequence[IPNetwork]) -> None:
    if not allowed:
        return
    try:
        address = ipaddress.ip_address(client or "")
    except ValueError:
        raise Forbidden(f"source {source} accepts listed addresses only") from None
    if not any(address in net for net in allowed):
        raise Forbidden(f"source {source} does not accept deliveries from {address}")


def client_address(
    peer: str | None, forwarded_for: Sequence[str], trusted: Sequence[IPNetwork]
) -> str | None:
    """The delivering client's address. `peer` is the connection's; when it is a trusted
    proxy, `forwarded_for` (every X-Forwarded-For header, in order) is read from the right:
    each proxy appends the address it got the request from, so the right-most entry that is no
    trusted proxy is the client (entries further left are whatever the client wrote). A
    malformed entry ends the walk: the last trusted hop is answered then."""
    if not _trusted(peer, trusted):
        return peer
    hops = [h.strip() for value in forwarded_for for h in value.split(",")]
    client = peer
    for hop in reversed(hops):
        try:
            address = ipaddress.ip_address(hop)
        except ValueError:
            break
        client = str(address)
        if not any(address in net for net in trusted):
            break
    return client


def _trusted(address: str | None, trusted: Sequence[IPNetwork]) -> bool:
    try:
        parsed = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    return any(parsed in net for net in trusted)
