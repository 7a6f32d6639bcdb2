"""A scripted model server: a real HTTP server on 127.0.0.1 that the real agent CLIs talk to
instead of a model provider, answering each request with the next turn of a script.

It speaks the part of two APIs the CLIs use:

- the OpenAI Responses API (codex): `POST /v1/responses`, answered as a server-sent event
  stream (`response.created`, `response.output_item.done`, `response.completed`);
- the Anthropic Messages API (claude): `HEAD /` (a probe, 200) and `POST /v1/messages` with any
  query string, answered as an SSE stream (`message_start` … `message_stop`), and
  `POST /v1/messages/count_tokens`.

Point codex at `f"{server.url}/v1"` (its provider's `base_url`) and claude at `server.url`
(`ANTHROPIC_BASE_URL`). The script format is described in `taskyard.devtools.model_script`;
every request is kept in `server.requests` for tests to look at.

Use it as `async with ModelServer(script) as server:` inside an event loop, or as
`with ModelServer(script) as server:` from synchronous code (it then runs in a thread).
`taskyard dev model-server --script FILE` runs one from the command line.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import socket
import threading
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from taskyard.devtools.model_script import (
    EXHAUSTED,
    Script,
    ScriptedError,
    ScriptedTool,
    ScriptedUsage,
    Turn,
    TurnKind,
    as_script,
)
from taskyard.exceptions import ConfigError

log = logging.getLogger(__name__)

_POLL_SECONDS = 0.05


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request the server received, as the client sent it."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: Any  # the parsed JSON body, or None
    script: str | None = None  # the conversation it was answered from
    turn: int | None = None  # the turn number it was answered with


@dataclass(frozen=True, slots=True)
class Exchange:
    """What one API request says about its conversation."""

    prompt: str  # the text of the user's messages, for `match`
    turn: int  # model turns already in the conversation
    model: str
    tools: frozenset[str]
    finishing: bool = False  # claude: the structured result was given; only end the turn


def _sse(events: list[dict[str, Any]]) -> Response:
    body = "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events)
    return Response(body, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


def _new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


# --- OpenAI Responses API (codex) ----------------------------------------------------------


def _texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    if not isinstance(content, list):
        return []
    return [str(part.get("text", "")) for part in content if isinstance(part, dict)]


def _tool_names(tools: Any) -> frozenset[str]:
    if not isinstance(tools, list):
        return frozenset()
    return frozenset(str(t.get("name", "")) for t in tools if isinstance(t, dict))


def responses_exchange(body: Mapping[str, Any]) -> Exchange:
    items = [i for i in body.get("input") or [] if isinstance(i, dict)]
    prompt = "\n".join(
        text
        for i in items
        if i.get("type", "message") == "message" and i.get("role") == "user"
        for text in _texts(i.get("content"))
    )
    calls = sum(1 for i in items if i.get("type") == "function_call")
    found = [
        t for i in items if i.get("type") == "tool_search_output" for t in i.get("tools") or []
    ]
    tools = _tool_names(body.get("tools")) | _tool_names(found)
    return Exchange(prompt, calls, str(body.get("model", "")), tools)


def _responses_usage(usage: ScriptedUsage) -> dict[str, Any]:
    return {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_input_tokens},
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.input_tokens + usage.output_tokens,
    }


def _responses_stream(item: dict[str, Any], ex: Exchange, usage: ScriptedUsage) -> Response:
    rid = _new_id("resp")
    base = {"id": rid, "object": "response", "model": ex.model}
    return _sse(
        [
            {"type": "response.created", "response": {**base, "status": "in_progress"}},
            {"type": "response.output_item.done", "output_index": 0, "item": item},
            {
                "type": "response.completed",
                "response": {
                    **base,
                    "status": "completed",
                    "output": [item],
                    "usage": _responses_usage(usage),
                },
            },
        ]
    )


def responses_shell(command: str, ex: Exchange, usage: ScriptedUsage) -> Response:
    arguments: dict[str, Any] = {"cmd": command}
    name = "exec_command"
    if name not in ex.tools and "shell" in ex.tools:  # older codex
        name, arguments = "shell", {"command": ["bash", "-lc", command]}
    item = {
        "type": "function_call",
        "id": _new_id("fc"),
        "call_id": _new_id("call"),
        "name": name,
        "arguments": json.dumps(arguments),
        "status": "completed",
    }
    return _responses_stream(item, ex, usage)


def responses_tool(tool: ScriptedTool, ex: Exchange, usage: ScriptedUsage) -> Response:
    """An MCP tool call: codex offers a server's tools in the namespace `mcp__<server>`."""
    namespace = f"mcp__{tool.server}"
    if namespace not in ex.tools:  # codex defers MCP tools: the model searches for them first
        item = {
            "type": "tool_search_call",
            "id": _new_id("ts"),
            "call_id": _new_id("call"),
            "execution": "client",
            "arguments": {"query": tool.name, "limit": 8},
            "status": "completed",
        }
        return _responses_stream(item, ex, usage)
    item = {
        "type": "function_call",
        "id": _new_id("fc"),
        "call_id": _new_id("call"),
        "namespace": namespace,
        "name": tool.name,
        "arguments": json.dumps(tool.arguments),
        "status": "completed",
    }
    return _responses_stream(item, ex, usage)


def responses_text(text: str, ex: Exchange, usage: ScriptedUsage) -> Response:
    item = {
        "type": "message",
        "id": _new_id("msg"),
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }
    return _responses_stream(item, ex, usage)


def responses_error(status: int, message: str) -> Response:
    kind = "server_error" if status >= 500 else "invalid_request_error"
    return JSONResponse({"error": {"message": message, "type": kind, "code": None}}, status)


# --- Anthropic Messages API (claude) -------------------------------------------------------

STRUCTURED_OUTPUT_TOOL = "StructuredOutput"


def _assistant_tools(message: Mapping[str, Any]) -> set[str]:
    content = message.get("content")
    if not isinstance(content, list):
        return set()
    return {
        str(b.get("name")) for b in content if isinstance(b, dict) and b.get("type") == "tool_use"
    }


def messages_exchange(body: Mapping[str, Any]) -> Exchange:
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    prompt = "\n".join(
        text for m in messages if m.get("role") == "user" for text in _texts(m.get("content"))
    )
    assistant = [m for m in messages if m.get("role") == "assistant"]
    finishing = bool(assistant) and STRUCTURED_OUTPUT_TOOL in _assistant_tools(assistant[-1])
    return Exchange(
        prompt,
        len(assistant),
        str(body.get("model", "")),
        _tool_names(body.get("tools")),
        finishing,
    )


def _messages_stream(
    block: dict[str, Any], delta: dict[str, Any], stop: str, ex: Exchange, usage: ScriptedUsage
) -> Response:
    message: dict[str, Any] = {
        "id": _new_id("msg"),
        "type": "message",
        "role": "assistant",
        "model": ex.model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {
            "input_tokens": usage.input_tokens - usage.cached_input_tokens,
            "cache_read_input_tokens": usage.cached_input_tokens,
            "cache_creation_input_tokens": 0,
            "output_tokens": 1,
        },
    }
    return _sse(
        [
            {"type": "message_start", "message": message},
            {"type": "content_block_start", "index": 0, "content_block": block},
            {"type": "content_block_delta", "index": 0, "delta": delta},
            {"type": "content_block_stop", "index": 0},
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": usage.output_tokens},
            },
            {"type": "message_stop"},
        ]
    )


def messages_tool_use(
    name: str, tool_input: Mapping[str, Any], ex: Exchange, usage: ScriptedUsage
) -> Response:
    block = {"type": "tool_use", "id": _new_id("toolu"), "name": name, "input": {}}
    delta = {"type": "input_json_delta", "partial_json": json.dumps(tool_input)}
    return _messages_stream(block, delta, "tool_use", ex, usage)


def messages_shell(command: str, ex: Exchange, usage: ScriptedUsage) -> Response:
    return messages_tool_use("Bash", {"command": command, "description": "scripted"}, ex, usage)


def messages_tool(tool: ScriptedTool, ex: Exchange, usage: ScriptedUsage) -> Response:
    """An MCP tool call: claude names a server's tools `mcp__<server>__<tool>`."""
    return messages_tool_use(f"mcp__{tool.server}__{tool.name}", tool.arguments, ex, usage)


def messages_text(text: str, ex: Exchange, usage: ScriptedUsage) -> Response:
    block = {"type": "text", "text": ""}
    return _messages_stream(block, {"type": "text_delta", "text": text}, "end_turn", ex, usage)


def messages_error(status: int, message: str) -> Response:
    kinds = {400: "invalid_request_error", 401: "authentication_error", 429: "rate_limit_error"}
    kind = kinds.get(status, "overloaded_error" if status == 529 else "api_error")
    return JSONResponse({"type": "error", "error": {"type": kind, "message": message}}, status)


def messages_final(text: str, final: Any, ex: Exchange, usage: ScriptedUsage) -> Response:
    """A structured result goes through claude's StructuredOutput tool when it offers one."""
    if isinstance(final, dict) and STRUCTURED_OUTPUT_TOOL in ex.tools:
        return messages_tool_use(STRUCTURED_OUTPUT_TOOL, final, ex, usage)
    return messages_text(text, ex, usage)


def responses_final(text: str, final: Any, ex: Exchange, usage: ScriptedUsage) -> Response:
    return responses_text(text, ex, usage)  # with --output-schema the message text is the JSON


@dataclass(frozen=True, slots=True)
class Dialect:
    """How one API reads a conversation and writes each kind of answer."""

    exchange: Callable[[Mapping[str, Any]], Exchange]
    shell: Callable[[str, Exchange, ScriptedUsage], Response]
    tool: Callable[[ScriptedTool, Exchange, ScriptedUsage], Response]
    text: Callable[[str, Exchange, ScriptedUsage], Response]
    final: Callable[[str, Any, Exchange, ScriptedUsage], Response]
    error: Callable[[int, str], Response]

    def answer(self, turn: Turn, ex: Exchange, usage: ScriptedUsage) -> Response:
        """The answer to a shell, tool, final or error turn."""
        error = turn.error or ScriptedError()
        writers: dict[TurnKind, Callable[[], Response]] = {
            TurnKind.SHELL: lambda: self.shell(turn.shell or "", ex, usage),
            TurnKind.TOOL: lambda: self.tool(turn.tool or ScriptedTool(name="?"), ex, usage),
            TurnKind.FINAL: lambda: self.final(turn.final_text(), turn.final, ex, usage),
            TurnKind.ERROR: lambda: self.error(error.status, error.message),
        }
        return writers[turn.kind]()


RESPONSES = Dialect(
    responses_exchange,
    responses_shell,
    responses_tool,
    responses_text,
    responses_final,
    responses_error,
)
MESSAGES = Dialect(
    messages_exchange, messages_shell, messages_tool, messages_text, messages_final, messages_error
)


# --- the server ----------------------------------------------------------------------------


class ModelServer:
    """Serves one script on `host:port` (port 0: any free port)."""

    def __init__(
        self,
        script: Script | Mapping[str, Any] | Path | str,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.script = as_script(script)
        self.requests: list[RecordedRequest] = []
        self._host = host
        self._port = port
        self._sock: socket.socket | None = None
        self._closing = False
        self._uvicorn: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.app = Starlette(
            routes=[
                Route("/", self._probe, methods=["GET", "HEAD"]),
                Route("/{path:path}", self._dispatch, methods=["GET", "POST", "HEAD"]),
            ]
        )
        self._handlers: dict[str, Callable[[Request, Any], Awaitable[Response]]] = {
            "/v1/responses": lambda r, b: self._turn(r, b, RESPONSES),
            "/v1/messages": lambda r, b: self._turn(r, b, MESSAGES),
            "/v1/messages/count_tokens": self._count_tokens,
        }

    @property
    def url(self) -> str:
        if self._sock is None:
            raise RuntimeError("the model server is not started")
        port = self._sock.getsockname()[1]
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{port}"

    def turn_requests(self) -> list[RecordedRequest]:
        """The requests answered from the script (not probes)."""
        return [r for r in self.requests if r.turn is not None]

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        self._sock = _listen(self._host, self._port)
        config = uvicorn.Config(
            self.app,
            access_log=False,
            log_config=None,
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        self._uvicorn = uvicorn.Server(config)
        self._task = asyncio.create_task(self._uvicorn.serve(sockets=[self._sock]))
        while not self._uvicorn.started and not self._task.done():
            await asyncio.sleep(0.005)
        if self._task.done():
            self._sock.close()
            self._task.result()  # raises what stopped it
        log.info("model server listening on %s", self.url, extra={"url": self.url})

    async def stop(self) -> None:
        self._closing = True
        if self._uvicorn is not None and self._task is not None:
            self._uvicorn.should_exit = True
            await self._task
        if self._sock is not None:
            self._sock.close()

    async def wait_closed(self) -> None:
        """Until the server stops (for the CLI: on SIGINT or SIGTERM)."""
        if self._task is not None:
            await self._task

    async def __aenter__(self) -> ModelServer:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def __enter__(self) -> ModelServer:
        loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=loop.run_forever, name="model-server", daemon=True)
        self._thread.start()
        self._loop = loop
        try:
            asyncio.run_coroutine_threadsafe(self.start(), loop).result()
        except BaseException:
            self._close_loop()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._loop is not None:
            try:
                asyncio.run_coroutine_threadsafe(self.stop(), self._loop).result()
            finally:
                self._close_loop()

    def _close_loop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()
        self._loop = None

    # -- requests -------------------------------------------------------------------------

    async def _probe(self, request: Request) -> Response:
        self._record(request, None)
        return Response(status_code=200)

    async def _dispatch(self, request: Request) -> Response:
        body = await _json_body(request)
        handler = self._handlers.get(request.url.path)
        if handler is None or request.method != "POST":
            self._record(request, body)
            log.warning(
                "unexpected request %s %s",
                request.method,
                request.url.path,
                extra={"path": request.url.path},
            )
            return JSONResponse({"error": {"message": f"no route {request.url.path}"}}, 404)
        return await handler(request, body)

    async def _count_tokens(self, request: Request, body: Any) -> Response:
        self._record(request, body)
        return JSONResponse({"input_tokens": len(json.dumps(body)) // 4})

    async def _turn(self, request: Request, body: Any, dialect: Dialect) -> Response:
        if not isinstance(body, dict):
            self._record(request, body)
            return dialect.error(400, "the request body is not a JSON object")
        ex = dialect.exchange(body)
        conversation = self.script.pick(ex.prompt)
        if conversation is None:
            self._record(request, body)
            log.warning("no script matches the prompt", extra={"prompt": ex.prompt[:200]})
            return dialect.error(400, "no script matches this conversation")
        self._record(request, body, conversation.name, ex.turn)
        if ex.finishing:
            return dialect.text("Done.", ex, conversation.usage)
        turn = conversation.turn(ex.turn)
        if turn is None:
            log.warning(
                "%s turn %d: script exhausted",
                conversation.name,
                ex.turn,
                extra={"script": conversation.name, "turn": ex.turn},
            )
            return dialect.text(EXHAUSTED, ex, conversation.usage)
        log.info(
            "%s turn %d: %s",
            conversation.name,
            ex.turn,
            turn.kind,
            extra={"script": conversation.name, "turn": ex.turn, "kind": str(turn.kind)},
        )
        if turn.kind is TurnKind.HANG:
            return await self._hang(request)
        return dialect.answer(turn, ex, conversation.usage)

    async def _hang(self, request: Request) -> Response:
        while not self._closing and not await request.is_disconnected():
            await asyncio.sleep(_POLL_SECONDS)
        return Response(status_code=503)

    def _record(
        self, request: Request, body: Any, script: str | None = None, turn: int | None = None
    ) -> None:
        self.requests.append(
            RecordedRequest(
                method=request.method,
                path=request.url.path,
                query=request.url.query,
                headers=dict(request.headers),
                body=body,
                script=script,
                turn=turn,
            )
        )


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def serve_until_signalled(
    script: Script | Mapping[str, Any] | Path | str,
    host: str,
    port: int,
    on_ready: Callable[[str], None],
) -> None:
    """Run a server (in a thread) until SIGINT or SIGTERM; `on_ready` gets its URL."""
    stop = threading.Event()
    handled = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in handled}
    try:
        with ModelServer(script, host, port) as server:
            on_ready(server.url)
            stop.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _listen(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"model server cannot listen on {host}:{port}: {exc}") from exc
    sock.listen(128)
    return sock
