"""Load generators for `POST /webhooks/github`: max throughput and a fixed-rate open loop.

* `run_max` — as many requests as N keep-alive connections can carry for D seconds. It uses
  wrk (C, epoll) with `wrk_intake.lua`, which gives every request its own X-GitHub-Delivery and
  tallies every response status (wrk itself only counts non-2xx/3xx as errors, so a 200
  "duplicate" would otherwise pass as a success). Without wrk it falls back to the Python
  client below in closed loop, which is slower and says so.
* `run_fixed_rate` — an open loop: request i is *due* at start + i/rate, whatever happened to
  earlier ones, and its latency is measured from that due time, not from when a connection
  was free to send it. A server that stalls therefore shows the stall in every request that
  was due during it (no coordinated omission, which pacing with wrk's `delay()` has). It is a
  small asyncio client speaking raw HTTP/1.1 over a pool of keep-alive connections, with the
  request bytes prebuilt so only the delivery id changes; at 1,000 requests/s it uses a
  fraction of one core. If every connection is busy, a due request waits in the queue and
  that wait counts in its latency. A request still unanswered `grace` seconds after the last
  one was due counts as "no answer" with an infinite latency, so a server that cannot keep up
  shows p99 = inf rather than the p99 of the lucky requests.

Run alone: `python -m bench.loadgen --port 8000 --mode rate --rate 1000 --seconds 10`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

try:
    import uvloop
except ImportError:  # the asyncio loop works too, a little slower
    uvloop = None  # type: ignore[assignment]

from bench.payload import (
    DEFAULT_SECRET,
    build_body,
    delivery_id,
    delivery_prefix,
    signature,
    static_headers,
)

LUA_SCRIPT = Path(__file__).with_name("wrk_intake.lua")
WRK_INSTALL_HINT = "wrk not found: install it with `apt-get install -y wrk` (Debian/Ubuntu)"
_CONNECTION_ERRORS = (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError)


class ProtocolError(Exception):
    """The server answered something this minimal HTTP client does not handle."""


@dataclass(frozen=True)
class Result:
    """One load run. Latencies in milliseconds; `errors` are requests that got no answer."""

    tool: str
    seconds: float
    statuses: dict[int, int]
    errors: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    # open loop only: from due time to written, i.e. the client's own lag plus any wait
    # for a free connection; shows how much of the latency is not the server's
    send_delay_ms: tuple[float, float] | None = None  # (p50, p99)

    @property
    def accepted(self) -> int:
        return self.statuses.get(202, 0)

    @property
    def accepted_per_s(self) -> float:
        return self.accepted / self.seconds if self.seconds > 0 else 0.0

    @property
    def non_accepted(self) -> int:
        """Answers other than 202 plus requests that got no answer."""
        return sum(self.statuses.values()) - self.accepted + self.errors

    def summary(self) -> str:
        others = {code: n for code, n in sorted(self.statuses.items()) if code != 202}
        return (
            f"[{self.tool}] {self.accepted} accepted in {self.seconds:.2f}s = "
            f"{self.accepted_per_s:,.0f}/s; other statuses {others or '{}'}; "
            f"no answer {self.errors}; latency p50 {self.p50_ms:.2f} ms, "
            f"p99 {self.p99_ms:.2f} ms, max {self.max_ms:.2f} ms{self._delays()}"
        )

    def _delays(self) -> str:
        if self.send_delay_ms is None:
            return ""
        p50, p99 = self.send_delay_ms
        return f"; due->sent p50 {p50:.2f} ms, p99 {p99:.2f} ms"


@dataclass(frozen=True)
class Target:
    """Where to send, and what: the signed body and the headers shared by all requests."""

    url: str
    body: bytes
    secret: str

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or 80

    @property
    def path(self) -> str:
        return urlsplit(self.url).path or "/"


# ---------------------------------------------------------------------------- wrk


def run_max(target: Target, connections: int, seconds: float, threads: int = 1) -> Result:
    """Max throughput with wrk, or with the Python client when wrk is not installed."""
    wrk = shutil.which("wrk")
    if wrk is None:
        print(WRK_INSTALL_HINT + "; using the slower Python client", file=sys.stderr)
        return run_async(python_max(target, connections, seconds))
    return run_wrk(wrk, target, connections, seconds, threads)


def run_wrk(wrk: str, target: Target, connections: int, seconds: float, threads: int) -> Result:
    with tempfile.NamedTemporaryFile(prefix="bench-body-", suffix=".json") as body_file:
        body_file.write(target.body)
        body_file.flush()
        flags = ["--threads", str(threads), "--connections", str(connections)]
        flags += ["--duration", f"{max(1, round(seconds))}s", "--timeout", "10s", "--latency"]
        script = ["--script", str(LUA_SCRIPT), target.url, "--", body_file.name]
        script += [signature(target.body, target.secret), delivery_prefix()]
        command = [wrk, *flags, *script]
        done = subprocess.run(
            command, capture_output=True, text=True, check=True, timeout=seconds + 60
        )
    return parse_wrk(done.stdout)


def _fields(output: str, tag: str) -> dict[str, int]:
    match = re.search(rf"^{tag} (.*)$", output, re.MULTILINE)
    if match is None:
        raise ProtocolError(f"wrk printed no {tag} line:\n{output}")
    pairs = (item.split("=", 1) for item in match.group(1).split())
    return {key: int(value) for key, value in pairs}


def parse_wrk(output: str) -> Result:
    """Read the lines `wrk_intake.lua`'s done() prints."""
    totals = _fields(output, "BENCH")
    latency = _fields(output, "BENCH_LATENCY_US")
    statuses = {int(code): n for code, n in _fields(output, "BENCH_STATUS").items()}
    errors = sum(totals[key] for key in ("connect", "read", "write", "timeout"))
    return Result(
        tool="wrk",
        seconds=totals["duration_us"] / 1e6,
        statuses=statuses,
        errors=errors,
        p50_ms=latency["p50"] / 1000,
        p99_ms=latency["p99"] / 1000,
        max_ms=latency["max"] / 1000,
    )


# ------------------------------------------------------------- Python HTTP client


def _request_parts(target: Target) -> tuple[bytes, bytes]:
    """The request bytes before and after the delivery id."""
    headers = static_headers(target.body, target.secret)
    lines = [f"POST {target.path} HTTP/1.1", f"Host: {target.host}:{target.port}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines += [f"Content-Length: {len(target.body)}", "X-GitHub-Delivery: "]
    return "\r\n".join(lines).encode(), b"\r\n\r\n" + target.body


def _parse_head(head: bytes) -> tuple[int, int, bool]:
    """(status, content length, server closes) from a response head."""
    lines = head.split(b"\r\n")
    try:
        status = int(lines[0].split(b" ", 2)[1])
    except (IndexError, ValueError) as exc:
        raise ProtocolError(f"not an HTTP status line: {lines[0]!r}") from exc
    length, close = 0, False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection":
            close = value == b"close"
        elif name == b"transfer-encoding":
            raise ProtocolError("chunked responses are not supported by the bench client")
    return status, length, close


class Connection:
    """One keep-alive HTTP/1.1 connection posting the prebuilt delivery; reconnects on close."""

    def __init__(self, target: Target, stream: int, prefix: str) -> None:
        self._target = target
        self._before, self._after = _request_parts(target)
        self._stream, self._prefix, self._counter = stream, prefix, 0
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def post(self) -> int:
        """Send the next delivery; return the status. Raises the connection errors."""
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(
                self._target.host, self._target.port
            )
        assert self._reader is not None
        self._counter += 1
        delivery = delivery_id(self._prefix, self._stream, self._counter).encode()
        self._writer.write(self._before + delivery + self._after)
        try:
            status, length, close = _parse_head(await self._reader.readuntil(b"\r\n\r\n"))
            await self._reader.readexactly(length)
        except _CONNECTION_ERRORS:
            await self.close()
            raise
        if close:
            await self.close()
        return status

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._reader = self._writer = None


@dataclass
class _Tally:
    statuses: Counter[int] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    delays: list[float] = field(default_factory=list)  # due -> sent, open loop only
    errors: int = 0

    def result(self, tool: str, seconds: float) -> Result:
        ordered = sorted(self.latencies)
        delays = sorted(self.delays)
        return Result(
            tool=tool,
            seconds=seconds,
            statuses=dict(self.statuses),
            errors=self.errors,
            p50_ms=_percentile(ordered, 50) * 1000,
            p99_ms=_percentile(ordered, 99) * 1000,
            max_ms=(ordered[-1] if ordered else 0.0) * 1000,
            send_delay_ms=(
                (_percentile(delays, 50) * 1000, _percentile(delays, 99) * 1000) if delays else None
            ),
        )


def _percentile(ordered: list[float], percent: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not ordered:
        return 0.0
    return ordered[max(0, math.ceil(percent / 100 * len(ordered)) - 1)]


async def _post_once(connection: Connection, tally: _Tally, since: float) -> None:
    """One request; its latency runs from `since` (a `time.perf_counter()` value)."""
    try:
        status = await connection.post()
    except _CONNECTION_ERRORS:
        tally.errors += 1
        return
    tally.statuses[status] += 1
    tally.latencies.append(time.perf_counter() - since)


def _connections(target: Target, count: int) -> list[Connection]:
    prefix = delivery_prefix()
    return [Connection(target, stream, prefix) for stream in range(count)]


# ------------------------------------------------------------- closed loop (fallback)


async def python_max(target: Target, connections: int, seconds: float) -> Result:
    """Closed loop: each connection sends its next request as soon as the last is answered."""
    tally = _Tally()
    start = time.perf_counter()
    deadline = start + seconds

    async def drive(connection: Connection) -> None:
        while (now := time.perf_counter()) < deadline:
            await _post_once(connection, tally, now)
        await connection.close()

    await asyncio.gather(*(drive(c) for c in _connections(target, connections)))
    return tally.result("python closed loop", time.perf_counter() - start)


# ------------------------------------------------------------------ open loop


async def _dispatch(queue: asyncio.Queue[float], rate: float, count: int, start: float) -> None:
    """Put request i's due time on the queue at start + i/rate (late wake-ups catch up).

    Times are `time.perf_counter()` values: uvloop's `loop.time()` only ticks in milliseconds.
    """
    for i in range(count):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait(due)


async def _serve_queue(connection: Connection, queue: asyncio.Queue[float], tally: _Tally) -> None:
    while True:
        due = await queue.get()
        now = time.perf_counter()
        tally.delays.append(max(0.0, now - due))
        try:
            # uvloop's millisecond timers can wake a little early: then count from the send
            await _post_once(connection, tally, min(due, now))
        finally:
            queue.task_done()


async def python_fixed_rate(
    target: Target, rate: float, seconds: float, connections: int = 32, grace: float = 10.0
) -> Result:
    """Open loop at `rate` requests/s for `seconds`; latency measured from each due time."""
    queue: asyncio.Queue[float] = asyncio.Queue()
    tally = _Tally()
    pool = _connections(target, connections)
    workers = [asyncio.create_task(_serve_queue(c, queue, tally)) for c in pool]
    count = round(rate * seconds)
    start = time.perf_counter() + 0.05
    await _dispatch(queue, rate, count, start)
    with contextlib.suppress(TimeoutError):  # what is unanswered then is "no answer"
        await asyncio.wait_for(queue.join(), timeout=grace)
    elapsed = time.perf_counter() - start
    for worker in workers:
        worker.cancel()
    ended = await asyncio.gather(*workers, return_exceptions=True)
    for connection in pool:
        await connection.close()
    for outcome in ended:
        if isinstance(outcome, ProtocolError):
            raise outcome
    tally.errors = count - sum(tally.statuses.values())
    tally.latencies += [math.inf] * tally.errors  # unanswered: later than any answer
    return tally.result("python open loop", elapsed)


def run_fixed_rate(target: Target, rate: float, seconds: float, connections: int = 32) -> Result:
    return run_async(python_fixed_rate(target, rate, seconds, connections))


def run_async(coroutine: Coroutine[Any, Any, Result]) -> Result:
    """Run on uvloop when it is installed (as it is with uvicorn[standard])."""
    if uvloop is None:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


# ------------------------------------------------------------------------ CLI


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="default http://127.0.0.1:PORT/webhooks/github")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--mode", choices=("max", "rate"), default="max")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--rate-connections", type=int, default=32)
    parser.add_argument("--secret", default=DEFAULT_SECRET)
    args = parser.parse_args(argv)
    url = args.url or f"http://127.0.0.1:{args.port}/webhooks/github"
    target = Target(url=url, body=build_body(), secret=args.secret)
    if args.mode == "max":
        result = run_max(target, args.connections, args.seconds)
    else:
        result = run_fixed_rate(target, args.rate, args.seconds, args.rate_connections)
    print(result.summary())


if __name__ == "__main__":
    main()
