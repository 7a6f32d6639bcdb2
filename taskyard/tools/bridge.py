"""The worker's end of a task's tools: a unix socket that answers tool calls in-process.

The agent CLI starts the stdio MCP server (`taskyard.tools.mcp_stdio`), which holds no token:
it only forwards `tools/list` and `tools/call` over the socket `<task_dir>/tools.sock`
(mode 0600, peers of another user refused) to the `ToolHandler` here, in the worker.

Wire protocol, one JSON object per line each way::

    → {"id": 1, "op": "list"}                       ← {"id": 1, "tools": [ToolSpec…]}
    → {"id": 2, "op": "call", "name": …, "arguments": {…}}
                                                    ← {"id": 2, "answer": ToolAnswer}
    ← {"id": …, "error": "…"}  when the request itself is malformed

Before a call reaches the handler the bridge checks the tool exists and the arguments satisfy
its input schema; a handler that raises is logged and answered "<tool> failed".

The socket is in the agent's box and the bridge in taskyard's process: each connection can
make it buffer up to a line (`LINE_LIMIT`), so at most `MAX_CONNECTIONS` are served at once
(an MCP server uses one) and more are closed as soon as accepted — else an agent opening
hundreds of connections would make the server hold gigabytes and its file descriptors.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import socket
import struct
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from jsonschema import Draft202012Validator

from taskyard.exceptions import ConfigError, ToolBridgeError
from taskyard.tools.base import McpLaunch, ToolAnswer, ToolHandler, ToolSpec

log = logging.getLogger(__name__)

SOCKET_NAME = "tools.sock"
LINE_LIMIT = 4 * 1024 * 1024  # one request or answer, as JSON
MAX_CONNECTIONS = 8  # served at once per bridge
_MAX_UNIX_PATH = 107  # sun_path holds 108 bytes with the terminating NUL
_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid
_ENV = shutil.which("env") or "/usr/bin/env"


def socket_path_fits(path: Path) -> bool:
    """Whether `path` is short enough for a unix socket's address."""
    return len(os.fsencode(path)) <= _MAX_UNIX_PATH


def _encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, ensure_ascii=False).encode() + b"\n"


def _peer(writer: asyncio.StreamWriter) -> tuple[int, int]:
    """(pid, uid) of the process at the other end of a unix socket (Linux SO_PEERCRED)."""
    sock = writer.get_extra_info("socket")
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    pid, uid, _gid = _PEERCRED.unpack(raw)
    return pid, uid


class ToolBridge:
    """Serves `handler` on `socket_path` while the agent runs::

    async with ToolBridge(handler, task_dir / SOCKET_NAME) as bridge:
        request = replace(request, mcp=bridge.mcp_launch())
        ... run the agent ...
    """

    def __init__(self, handler: ToolHandler, socket_path: Path) -> None:
        if not socket_path_fits(socket_path):
            raise ConfigError(f"tool socket path is too long for a unix socket: {socket_path}")
        self.handler = handler
        self.socket_path = socket_path
        self.peers: list[int] = []  # pids of the MCP server processes that connected
        self.overflowed = 0  # connections closed unserved for MAX_CONNECTIONS
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._ops: dict[str, Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]] = {
            "list": self._list,
            "call": self._call,
        }

    def mcp_launch(self) -> McpLaunch:
        """How the agent CLI starts the stdio MCP server for this bridge: through `env -i`, so
        it inherits nothing from the agent (claude passes its whole environment, model key
        included), and Python isolated (`-I`: no PYTHON* variables, no user site, the agent's
        cwd not on sys.path)."""
        module = ("-m", "taskyard.tools.mcp_stdio", "--socket", str(self.socket_path))
        args = ("-i", sys.executable, "-I", *module)
        names = tuple(spec.name for spec in self.handler.tools())
        return McpLaunch(command=_ENV, args=args, env={}, tools=names)

    async def __aenter__(self) -> ToolBridge:
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        if self.socket_path.is_socket():
            self.socket_path.unlink()  # left by a crashed run of the same task
        self._server = await asyncio.start_unix_server(
            self._serve, path=str(self.socket_path), limit=LINE_LIMIT
        )
        os.chmod(self.socket_path, 0o600)
        log.info("tool bridge listening", extra={"socket": str(self.socket_path)})
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for writer in list(self._writers):
            writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        self.socket_path.unlink(missing_ok=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        pid, uid = _peer(writer)
        if uid != os.getuid():
            log.warning("tool bridge refused a peer", extra={"pid": pid, "uid": uid})
            writer.close()
            return
        if len(self._writers) >= MAX_CONNECTIONS:
            writer.close()
            self.overflowed += 1
            if self.overflowed == 1:
                log.warning("tool bridge: over %d connections, more closed", MAX_CONNECTIONS)
            return
        if len(self.peers) < MAX_CONNECTIONS:
            self.peers.append(pid)
        self._writers.add(writer)
        try:
            while line := await reader.readline():
                writer.write(_encode(await self._answer(line)))
                await writer.drain()
        except (ConnectionError, asyncio.LimitOverrunError, ValueError) as exc:
            log.warning("tool bridge connection dropped: %s", exc, extra={"pid": pid})
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _answer(self, line: bytes) -> dict[str, Any]:
        try:
            request = json.loads(line)
        except ValueError:
            return {"id": None, "error": "the request is not JSON"}
        if not isinstance(request, dict):
            return {"id": None, "error": "the request is not a JSON object"}
        op = self._ops.get(str(request.get("op")))
        if op is None:
            return {"id": request.get("id"), "error": f"unknown op {request.get('op')!r}"}
        return {"id": request.get("id"), **await op(request)}

    async def _list(self, request: dict[str, Any]) -> dict[str, Any]:
        return {"tools": [spec.to_json() for spec in self.handler.tools()]}

    async def _call(self, request: dict[str, Any]) -> dict[str, Any]:
        name = str(request.get("name"))
        arguments = request.get("arguments")
        arguments = arguments if arguments is not None else {}
        answer = await self._checked_call(name, arguments)
        log.info("tool %s: %s", name, "ok" if answer.ok else answer.text, extra={"tool": name})
        return {"answer": answer.to_json()}

    async def _checked_call(self, name: str, arguments: Any) -> ToolAnswer:
        spec = next((s for s in self.handler.tools() if s.name == name), None)
        if spec is None:
            return ToolAnswer(False, f"unknown tool: {name}")
        problem = _invalid(spec, arguments)
        if problem is not None:
            return ToolAnswer(False, f"invalid arguments for {name}: {problem}")
        try:
            return await self.handler.call(name, arguments)
        except Exception:  # the handler's bug must not kill the agent's run; it is logged
            log.exception("tool %s failed", name, extra={"tool": name})
            return ToolAnswer(False, f"{name} failed: internal error (see taskyard's log)")


def _invalid(spec: ToolSpec, arguments: Any) -> str | None:
    if not isinstance(arguments, dict):
        return "arguments must be a JSON object"
    error = next(iter(Draft202012Validator(dict(spec.input_schema)).iter_errors(arguments)), None)
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path)
    return f"{where}: {error.message}" if where else error.message


class BridgeClient:
    """The MCP server's end: one connection to the worker's bridge, one request at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._lock = asyncio.Lock()
        self._next_id = 0

    @classmethod
    async def connect(cls, socket_path: Path) -> BridgeClient:
        try:
            reader, writer = await asyncio.open_unix_connection(str(socket_path), limit=LINE_LIMIT)
        except OSError as exc:
            raise ToolBridgeError(
                f"cannot reach taskyard's tool socket {socket_path}: {exc}"
            ) from exc
        return cls(reader, writer)

    async def close(self) -> None:
        self._writer.close()

    async def list_tools(self) -> list[ToolSpec]:
        reply = await self._request({"op": "list"})
        return [ToolSpec.from_json(t) for t in reply.get("tools") or []]

    async def call(self, name: str, arguments: dict[str, Any]) -> ToolAnswer:
        reply = await self._request({"op": "call", "name": name, "arguments": arguments})
        return ToolAnswer.from_json(reply["answer"])

    async def _request(self, message: dict[str, Any]) -> dict[str, Any]:
        async with self._lock:
            self._next_id += 1
            request_id = self._next_id
            try:
                self._writer.write(_encode({"id": request_id, **message}))
                await self._writer.drain()
                line = await self._reader.readline()
            except (ConnectionError, asyncio.LimitOverrunError, ValueError) as exc:
                raise ToolBridgeError(f"taskyard's tool socket failed: {exc}") from exc
        if not line:
            raise ToolBridgeError("taskyard closed the tool socket")
        try:
            reply = json.loads(line)
        except ValueError as exc:
            raise ToolBridgeError("taskyard's tool socket answered something not JSON") from exc
        if not isinstance(reply, dict) or reply.get("id") != request_id or "error" in reply:
            raise ToolBridgeError(f"taskyard's tool socket answered: {str(reply)[:300]}")
        return reply
