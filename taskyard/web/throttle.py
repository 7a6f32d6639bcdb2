"""Throttling failed API/UI token attempts, per client.

A client (its address; an IPv6 address by its /64, which one machine usually holds whole)
may get the token wrong `free` times; then it waits, and each further failure makes it wait
twice as long as the one before (`base_seconds`, then double, up to `max_seconds`); while it
waits every request it sends that carries a token (a bearer header, the sign-in form) is answered
429 with `Retry-After`, without the token being looked at. A success clears the client's
record; failures are forgotten `window_seconds` after the last one. Other clients are not
touched by one client's failures. A request without any token is not an attempt (it is
answered 401 as before) and is never throttled.

Memory is bounded: at most `max_clients` clients are remembered, the least recently failed
forgotten first (an attacker with many addresses only forgets its own oldest records).

The client is the connection's peer; `X-Forwarded-For` is believed only with
`trusted_proxies` (from `intake.trust_forwarded_for` and `intake.trusted_proxies`), and then
read as intake reads it (`taskyard.intake.limits.client_address`: the right-most hop that is
not a trusted proxy), so that a client cannot name a fresh address for every attempt. Without
it, behind a reverse proxy every client has the proxy's address: they share one record.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from taskyard.config import IntakeConfig, IPNetwork
from taskyard.intake.limits import client_address

__all__ = ["AuthThrottle", "client_key"]

log = logging.getLogger(__name__)


def forwarded_for(scope: Mapping[str, Any]) -> list[str]:
    """Every `X-Forwarded-For` header of a request, in order."""
    headers = scope.get("headers") or ()
    return [v.decode("latin-1") for n, v in headers if n.lower() == b"x-forwarded-for"]


def client_key(scope: Mapping[str, Any], trusted_proxies: Sequence[IPNetwork] | None = None) -> str:
    """Who is asking: the peer address (an IPv6 one by its /64); `local` for a unix socket.
    With `trusted_proxies`, a trusted peer's `X-Forwarded-For` names the client (the
    right-most hop that is not a trusted proxy, as at intake)."""
    client = scope.get("client")
    if not client:
        return "local"
    peer = str(client[0])
    if trusted_proxies is not None:
        peer = client_address(peer, forwarded_for(scope), trusted_proxies) or peer
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return peer
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


@dataclass(slots=True)
class _Record:
    failures: int = 0
    last: float = 0.0
    until: float = 0.0  # no attempt is looked at before this (monotonic)


class AuthThrottle:
    """Failed-attempt bookkeeping; thread-safe, clock injectable (tests)."""

    def __init__(
        self,
        free: int = 5,
        base_seconds: float = 1.0,
        max_seconds: float = 300.0,
        window_seconds: float = 600.0,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
        trusted_proxies: Sequence[IPNetwork] | None = None,
    ) -> None:
        self.free = free
        self.base_seconds = base_seconds
        self.max_seconds = max_seconds
        self.window_seconds = window_seconds
        self.max_clients = max_clients
        self.clock = clock
        self.trusted_proxies = None if trusted_proxies is None else tuple(trusted_proxies)
        self._records: OrderedDict[str, _Record] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def for_intake(cls, intake: IntakeConfig) -> AuthThrottle:
        """A throttle that tells clients apart as intake does (`trust_forwarded_for`)."""
        return cls(trusted_proxies=intake.trusted_proxies if intake.trust_forwarded_for else None)

    def client(self, scope: Mapping[str, Any]) -> str:
        """The key of the client asking (see `client_key`)."""
        return client_key(scope, self.trusted_proxies)

    def retry_after(self, client: str) -> int | None:
        """Seconds the client must still wait (at least 1), or None when it may try now."""
        with self._lock:
            record = self._records.get(client)
            if record is None:
                return None
            now = self.clock()
            if now >= record.until and now - record.last > self.window_seconds:
                del self._records[client]
                return None
            wait = record.until - now
            return max(1, math.ceil(wait)) if wait > 0 else None

    def failed(self, client: str) -> None:
        with self._lock:
            now = self.clock()
            record = self._records.pop(client, None) or _Record()
            if now - record.last > self.window_seconds and now >= record.until:
                record = _Record()
            record.failures += 1
            record.last = now
            over = record.failures - self.free + 1  # the `free`-th failure starts a wait
            if over > 0:
                wait = min(self.max_seconds, self.base_seconds * 2 ** min(over - 1, 30))
                record.until = now + wait
                if over == 1:
                    log.warning("token attempts throttled", extra={"client": client})
            self._records[client] = record  # the most recent last
            while len(self._records) > self.max_clients:
                self._records.popitem(last=False)

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._records.pop(client, None)

    @property
    def clients(self) -> int:
        """How many clients are remembered now."""
        return len(self._records)
