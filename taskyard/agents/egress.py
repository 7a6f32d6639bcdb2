"""The agent's only way out of its box: an allowlisting proxy in taskyard's process, outside it.

    async with EgressProxy(socket_path, endpoints_of(launch)) as proxy:
        await proxy.serve_box(listeners)   # with `taskyard.agents.netns`, or else
        relay = proxy.relay()       # what `taskyard.agents.sandbox.relay_argv` needs
        env = proxy.agent_env()     # HTTPS_PROXY & co for the agent
        ... run the boxed agent ...
    proxy.denied                    # "host:port" of the first refused connections

The box has no network but loopback. Its 127.0.0.1 ports are served here, one of two ways:

- `serve_box(listeners)`: sockets taskyard bound in the box's own network namespace before
  the agent started (`taskyard.agents.netns`, needs CAP_SYS_ADMIN). A forward port carries
  its connection to its endpoint as it is; the proxy port reads CONNECT or a GET as below.
- The in-box relay (`taskyard/agents/relay.py`) listens there and carries each connection
  over this unix socket (bound into the box; mode 0600, peers of another uid refused).

On the unix socket a connection says where it goes in its first line:

- `TARGET host:port` — a loopback forward (the agent connects to `127.0.0.1:PORT` as its
  `base_url` says; the relay asks for that endpoint outside). Answer `OK` or `DENIED`.
- `CONNECT host:port HTTP/1.1` — HTTPS through `HTTPS_PROXY`. Answer 200 or 403.
- `GET http://host:port/path HTTP/1.1` (any method, absolute URL) — plain HTTP through
  `HTTP_PROXY`: the request goes on to that host with its path only. Answer 403 if denied.

Only the allowlisted endpoints (`Endpoint`: host and port, exactly; from the agent's provider
URLs — `Launch.egress` and every `*_BASE_URL` in its env) are reached; everything else is
refused and logged. Loopback endpoints (127.0.0.1, localhost) are forwarded on the same port
inside the box, so a `base_url` such as `http://127.0.0.1:8123/v1` works unchanged; other
hosts go through the proxy port (`HTTPS_PROXY=http://127.0.0.1:<proxy_port>`).

Bounded: the proxy runs in taskyard's own process, so a box holds at most `MAX_CONNECTIONS`
connections at once (each costs the server a descriptor or two; more are closed as soon as
accepted, or an agent could use up the server's file descriptors), and its refusals are
logged and kept for the first `MAX_DENIED_KEPT` only (then counted in `denied_count`).
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import os
import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit

from taskyard.agents.base import Launch
from taskyard.agents.sandbox import Relay
from taskyard.exceptions import SandboxError

__all__ = ["EgressProxy", "Endpoint", "endpoints_of", "socket_for"]

log = logging.getLogger(__name__)

HEAD_LIMIT = 16 * 1024  # the first line and headers of a proxy request
CONNECT_TIMEOUT = 10.0
PROXY_PORT = 3128  # the proxy's port inside the box (another if a forward takes it)
_CHUNK = 65536
MAX_CONNECTIONS = 64  # open at once per box, forwards and proxy together
MAX_DENIED_KEPT = 50
_PEERCRED = struct.Struct("3i")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_LOOPBACK_NAMES = {"localhost"}


@dataclass(frozen=True, slots=True, order=True)
class Endpoint:
    host: str  # lower case; an IPv6 address without brackets
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def loopback(self) -> bool:
        if self.host in _LOOPBACK_NAMES:
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    @classmethod
    def parse(cls, text: str) -> Endpoint:
        """`host:port` or `[v6]:port`; ValueError when it is not one."""
        host, sep, port = text.strip().rpartition(":")
        if not sep or not port.isdigit() or not host or not 0 < int(port) < 65536:
            raise ValueError(f"not a host:port: {text[:100]!r}")
        return cls(host.strip("[]").lower(), int(port))

    @classmethod
    def of_url(cls, url: str) -> Endpoint | None:
        parts = urlsplit(url.strip())
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            return None
        try:
            port = parts.port or _DEFAULT_PORTS[parts.scheme]
        except ValueError:
            return None
        return cls(parts.hostname.lower(), port)


def endpoints_of(launch: Launch) -> tuple[Endpoint, ...]:
    """The endpoints a launch may reach: `launch.egress` and its env's `*_BASE_URL` values."""
    urls = [*launch.egress, *(v for k, v in launch.env.items() if k.endswith("_BASE_URL"))]
    found = {e for url in urls if (e := Endpoint.of_url(url)) is not None}
    return tuple(sorted(found))


def _peer_uid(writer: asyncio.StreamWriter) -> int:
    sock = writer.get_extra_info("socket")
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    return int(_PEERCRED.unpack(raw)[1])


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass


class EgressProxy:
    """Serves one run's box; see the module docstring."""

    def __init__(self, socket_path: Path, endpoints: Iterable[Endpoint]) -> None:
        self.socket_path = socket_path
        self.allowed = frozenset(endpoints)
        self.denied: list[str] = []
        self.denied_count = 0
        self.overflowed = 0  # connections closed unserved for MAX_CONNECTIONS
        self._server: asyncio.AbstractServer | None = None
        self._box_servers: list[asyncio.AbstractServer] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    def relay(self) -> Relay:
        forwards = tuple((e.port, str(e)) for e in sorted(self.allowed) if e.loopback)
        taken = {port for port, _ in forwards}
        proxy_port = next(p for p in range(PROXY_PORT, 65536) if p not in taken)
        return Relay(self.socket_path, forwards, proxy_port)

    def agent_env(self) -> dict[str, str]:
        """The proxy variables for the agent (both spellings: tools read one or the other)."""
        url = f"http://127.0.0.1:{self.relay().proxy_port}"
        no_proxy = "127.0.0.1,localhost,::1"
        env: dict[str, str] = {}
        for name, value in (("https_proxy", url), ("http_proxy", url), ("no_proxy", no_proxy)):
            env[name] = env[name.upper()] = value
        return env

    async def __aenter__(self) -> EgressProxy:
        self.socket_path.unlink(missing_ok=True)
        try:
            self._server = await asyncio.start_unix_server(
                self._serve, path=str(self.socket_path), limit=HEAD_LIMIT
            )
            os.chmod(self.socket_path, 0o600)
        except OSError as exc:
            raise SandboxError(f"cannot open the egress socket {self.socket_path}: {exc}") from exc
        return self

    async def serve_box(self, listeners: list[socket.socket]) -> None:
        """Serves listening sockets made in the box's own network namespace
        (`taskyard.agents.netns`), one per port of `relay()` in its order (the forwards, then
        the proxy port): a forward carries its connection to its endpoint as it is (no
        `TARGET` line: the port says where), the proxy port reads CONNECT or a GET."""
        relay = self.relay()
        targets = [Endpoint.parse(target) for _, target in relay.forwards]
        for listener, target in zip(listeners, [*targets, None], strict=True):
            handler = functools.partial(self._serve, target=target)
            server = await asyncio.start_server(handler, sock=listener, limit=HEAD_LIMIT)
            self._box_servers.append(server)

    def box_ports(self) -> list[int]:
        """The ports `serve_box` wants listeners on, in its order."""
        relay = self.relay()
        return [*(port for port, _ in relay.forwards), relay.proxy_port]

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for server in self._box_servers:
            server.close()
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()  # each connection's task then ends on its own
        if self._tasks:
            _, late = await asyncio.wait(self._tasks, timeout=2)
            for task in late:
                task.cancel()
        self.socket_path.unlink(missing_ok=True)

    async def _serve(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        target: Endpoint | None = None,
    ) -> None:
        """One connection: from the unix socket (peer uid checked), or from a listener in the
        box's own namespace (only the box's processes can reach it)."""
        task = asyncio.current_task()
        assert task is not None
        if len(self._tasks) >= MAX_CONNECTIONS:
            self._overflow(writer)
            return
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            if target is not None:
                await self._forward(target, reader, writer, answer=False)
            elif _is_tcp(writer) or _peer_uid(writer) == os.getuid():  # box's port, or ours
                await self._handle(reader, writer)
        except (ConnectionError, OSError, asyncio.LimitOverrunError, ValueError) as exc:
            log.debug("egress connection dropped: %s", exc)
        finally:
            self._tasks.discard(task)
            self._writers.discard(writer)
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = (await reader.readline()).decode("latin-1")
        verb, _, rest = line.strip().partition(" ")
        if verb == "TARGET":
            await self._forward(Endpoint.parse(rest), reader, writer)
        elif verb == "CONNECT":
            await self._connect(rest.split(" ")[0], reader, writer)
        elif rest.startswith(("http://", "https://")):
            await self._http(verb, rest, reader, writer)
        else:
            writer.write(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")

    def _overflow(self, writer: asyncio.StreamWriter) -> None:
        writer.close()
        self.overflowed += 1
        if self.overflowed == 1:
            log.warning("agent egress: over %d connections at once, more closed", MAX_CONNECTIONS)

    def _allows(self, endpoint: Endpoint) -> bool:
        if endpoint in self.allowed:
            return True
        self.denied_count += 1
        if len(self.denied) < MAX_DENIED_KEPT:
            self.denied.append(str(endpoint))
            log.warning("agent egress refused", extra={"endpoint": str(endpoint)})
        return False

    async def _open(self, endpoint: Endpoint) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.wait_for(
            asyncio.open_connection(endpoint.host, endpoint.port), CONNECT_TIMEOUT
        )

    async def _forward(
        self,
        endpoint: Endpoint,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        answer: bool = True,
    ) -> None:
        """A loopback forward; `answer` (the relay's protocol) says OK or DENIED first."""
        if not self._allows(endpoint):
            if answer:
                writer.write(b"DENIED not on the egress allowlist\n")
            return
        try:
            up_reader, up_writer = await self._open(endpoint)
        except (OSError, TimeoutError) as exc:
            if answer:
                writer.write(f"DENIED cannot reach {endpoint}: {exc}\n".encode())
            return
        if answer:
            writer.write(b"OK\n")
        await self._splice(reader, writer, up_reader, up_writer)

    async def _connect(
        self, target: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await _skip_headers(reader)
        endpoint = Endpoint.parse(target)
        if not self._allows(endpoint):
            writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            return
        try:
            up_reader, up_writer = await self._open(endpoint)
        except (OSError, TimeoutError):
            writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            return
        writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        await self._splice(reader, writer, up_reader, up_writer)

    async def _http(
        self, verb: str, rest: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        url, _, version = rest.partition(" ")
        endpoint = Endpoint.of_url(url)
        if endpoint is None or not self._allows(endpoint):
            writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            return
        parts = urlsplit(url)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            up_reader, up_writer = await self._open(endpoint)
        except (OSError, TimeoutError):
            writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            return
        up_writer.write(f"{verb} {path} {version}\r\n".encode("latin-1"))
        await self._splice(reader, writer, up_reader, up_writer)

    async def _splice(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        up_reader: asyncio.StreamReader,
        up_writer: asyncio.StreamWriter,
    ) -> None:
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            up_writer.close()


def _is_tcp(writer: asyncio.StreamWriter) -> bool:
    sock = writer.get_extra_info("socket")
    return sock is not None and sock.family == socket.AF_INET


async def _skip_headers(reader: asyncio.StreamReader) -> None:
    while await reader.readline() not in (b"\r\n", b"\n", b""):
        pass


def socket_for(task_dir: Path, name: str = "egress.sock") -> Path:
    """The egress socket's path: in the task's directory, or a private temp dir when that
    path is too long for a unix socket address."""
    path = task_dir / name
    if len(os.fsencode(path)) <= 107:
        return path
    private = Path("/tmp") / f"taskyard-{os.getuid()}"
    private.mkdir(mode=0o700, exist_ok=True)
    return private / f"{task_dir.name}-{os.getpid()}-{name}"
