"""What `taskyard serve` does and says before and as it starts answering.

- `bind_listener(host, port)`: the HTTP socket, bound before anything else starts (no executor
  id claimed, no queue engine started), so a port already in use is a clear `ConfigError`
  ("cannot listen on 127.0.0.1:8080: address already in use …") and nothing is left behind.
  uvicorn then serves on that very socket.
- `announce_when_started(server, url, sources)`: "listening on http://HOST:PORT" and the UI's
  URL, logged once uvicorn has started serving on the socket (not before).
- `warn_unready_routes(settings, environ)`: a warning for each route whose agent cannot run
  (its CLI not found, no model key): the checks `taskyard doctor` makes, said at startup.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import Mapping, Sequence
from typing import Any

from taskyard.config import Settings
from taskyard.exceptions import ConfigError

log = logging.getLogger(__name__)

_STARTED_POLL_SECONDS = 0.02


def bind_listener(host: str, port: int) -> socket.socket:
    """A TCP socket bound to (host, port), not yet listening (uvicorn listens on it). Like
    uvicorn's own: SO_REUSEADDR, never SO_REUSEPORT (which would share a taken port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        hint = (
            " (another taskyard or another program uses it; choose one with --port)"
            if exc.errno == errno.EADDRINUSE
            else ""
        )
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}{hint}") from exc
    sock.set_inheritable(True)
    return sock


def base_url(sock: socket.socket) -> str:
    """`http://HOST:PORT` of a bound socket (the port it got when 0 was asked)."""
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


async def announce_when_started(server: Any, url: str, sources: Sequence[str]) -> None:
    """Log where taskyard answers once `server` (a uvicorn.Server) serves: the webhooks, the
    UI and the API."""
    while not server.started:
        if server.should_exit:
            return
        await asyncio.sleep(_STARTED_POLL_SECONDS)
    log.info(f"listening on {url}", extra={"url": url, "sources": list(sources)})
    log.info(f"UI at {url}/ (API at {url}/api/, webhooks at {url}/webhooks/SOURCE)")


def warn_unready_routes(settings: Settings, environ: Mapping[str, str]) -> list[str]:
    """Warn, once at startup, about each route whose agent cannot run here (returned too)."""
    from taskyard.service.doctor import agent_problems

    problems = list(agent_problems(settings, environ))
    for problem in problems:
        log.warning(f"{problem}: its tasks will fail (`taskyard doctor` checks the setup)")
    return problems
