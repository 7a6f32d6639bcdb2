"""Fake GitHub, Linear and Slack HTTP servers on 127.0.0.1 that RECORD every request.

Each runs in a thread (`with github_server() as gh:` …) and answers, in this order:
1. replies queued for (method, path) with `server.queue(method, path, Reply(...), ...)`, each
   used once, in order;
2. the platform's default answer, in the shape its published description gives:
   - GitHub: the first documented 2xx example of the matched OpenAPI operation (npm
     @octokit/openapi); an undocumented method/path answers 404 and is noted in `problems`;
   - Linear: a successful mutation payload for the mutation named in the document
     (`issueUpdate`/`issueCreate` → issue id/identifier/url, `commentCreate` → comment,
     `reactionCreate` → reaction), GraphQL errors for anything else;
   - Slack: `chat.postMessage` → ok with a fresh `ts`; `reactions.add` → ok; other methods
     `{"ok": false, "error": "unknown_method"}`.
Point taskyard at `server.base_url` (GitHub REST root; Linear's GraphQL endpoint; Slack's
`…/api/`). `server.requests` lists every `Recorded` request, oldest first."""

from __future__ import annotations

import itertools
import json
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

ROOT = Path(__file__).resolve().parents[1]
OPENAPI = ROOT / ".cache" / "npm" / "node_modules" / "@octokit" / "openapi" / "generated"
INSTALL = "npm install --silent --no-audit --no-fund --prefix .cache/npm @octokit/openapi@23"


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any = None  # JSON-encoded unless it is bytes; None sends no body
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str  # as sent, still percent-encoded
    query: dict[str, list[str]]
    headers: dict[str, str]  # names lower-cased
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    def arguments(self) -> dict[str, Any]:
        """Slack: the method's arguments, whether sent as JSON or as a form."""
        if self.headers.get("content-type", "").startswith("application/json"):
            data: dict[str, Any] = self.json()
            return data
        form = parse_qs(self.body.decode() or "")
        return {k: v[0] if len(v) == 1 else v for k, v in form.items()}

    def everything_but_auth(self) -> str:
        """The request as text without its Authorization header (for secret-leak checks)."""
        headers = {k: v for k, v in self.headers.items() if k != "authorization"}
        return f"{self.method} {self.path} {self.query} {headers} {self.body!r}"


Default = Callable[["PlatformServer", Recorded], Reply]


class PlatformServer:
    """A recording HTTP server; see the module docstring."""

    def __init__(self, default: Default, api_root: str = "") -> None:
        self._default = default
        self._queued: dict[tuple[str, str], list[Reply]] = {}
        self._lock = threading.Lock()
        self.requests: list[Recorded] = []
        self.problems: list[str] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.base_url = self.url + api_root
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.01,))

    def queue(self, method: str, path: str, *replies: Reply) -> None:
        """Answer the next requests to `method path` (the decoded path) with `replies`."""
        with self._lock:
            self._queued.setdefault((method.upper(), path), []).extend(replies)

    def answer(self, request: Recorded) -> Reply:
        with self._lock:
            self.requests.append(request)
            queue = self._queued.get((request.method, unquote(request.path)))
            if queue:
                return queue.pop(0)
        return self._default(self, request)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def _handler(server: PlatformServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("content-length") or 0)
            recorded = Recorded(
                method=self.command,
                path=url.path,
                query=parse_qs(url.query),
                headers={k.lower(): v for k, v in self.headers.items()},
                body=self.rfile.read(length),
            )
            reply = server.answer(recorded)
            data = b"" if reply.body is None else _encode(reply.body)
            self.send_response(reply.status)
            if reply.body is not None and not isinstance(reply.body, bytes):
                self.send_header("content-type", "application/json; charset=utf-8")
            self.send_header("content-length", str(len(data)))
            for key, value in reply.headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    return Handler


def _encode(body: Any) -> bytes:
    return body if isinstance(body, bytes) else json.dumps(body).encode()


@contextmanager
def _running(server: PlatformServer) -> Iterator[PlatformServer]:
    server.start()
    try:
        yield server
    finally:
        server.stop()


# --- GitHub ------------------------------------------------------------------------------


@cache
def github_spec(name: str = "api.github.com.json") -> dict[str, Any]:
    path = OPENAPI / name
    if not path.is_file():
        raise FileNotFoundError(f"GitHub's OpenAPI description is missing ({path}); {INSTALL}")
    spec: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return spec


def resolve(spec: dict[str, Any], node: Any) -> Any:
    """`node` with its `$ref` (a `#/...` pointer into `spec`) followed, repeatedly."""
    while isinstance(node, dict) and "$ref" in node:
        target: Any = spec
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


@cache
def _routes(name: str) -> list[tuple[re.Pattern[str], str]]:
    paths = github_spec(name)["paths"]
    return [(re.compile("^" + re.sub(r"\{[^/}]+\}", "[^/]+", p) + "$"), p) for p in paths]


def github_operation(
    method: str, path: str, name: str = "api.github.com.json"
) -> tuple[str, dict[str, Any]] | None:
    """The (path template, operation) GitHub documents for a concrete request, if any; the
    template with the most literal segments wins (`/issues/comments/{id}` over
    `/issues/{number}`)."""
    paths = github_spec(name)["paths"]
    found = [t for rx, t in _routes(name) if rx.match(path) and method.lower() in paths[t]]
    if not found:
        return None
    template = max(found, key=lambda t: sum("{" not in s for s in t.split("/")))
    return template, paths[template][method.lower()]


def github_example(operation: dict[str, Any], name: str = "api.github.com.json") -> Reply:
    """The operation's first documented 2xx answer: its example, or no body (204)."""
    spec = github_spec(name)
    for status, response in operation["responses"].items():
        if not status.startswith("2"):
            continue
        content = resolve(spec, response).get("content", {}).get("application/json", {})
        for example in content.get("examples", {}).values():
            value = resolve(spec, example).get("value")
            return Reply(int(status), resolve(spec, value) if isinstance(value, dict) else value)
        return Reply(int(status))
    raise AssertionError(f"{operation.get('operationId')}: no documented 2xx answer")


def _github_default(server: PlatformServer, request: Recorded) -> Reply:
    found = github_operation(request.method, request.path)
    if found is None:
        server.problems.append(f"{request.method} {request.path} is not a documented operation")
        return Reply(404, {"message": "Not Found"})
    return github_example(found[1])


@contextmanager
def github_server() -> Iterator[PlatformServer]:
    with _running(PlatformServer(_github_default)) as server:
        yield server


# --- Linear ------------------------------------------------------------------------------

_LINEAR_ISSUE = {"id": "9cfb482a-81e3-4154-b5b9-2c805e70a02d", "identifier": "ENG-123"}
_LINEAR_ANSWERS: dict[str, dict[str, Any]] = {
    "issueUpdate": {"issue": {**_LINEAR_ISSUE, "url": "https://linear.app/acme/issue/ENG-123"}},
    "issueCreate": {"issue": {**_LINEAR_ISSUE, "url": "https://linear.app/acme/issue/ENG-123"}},
    "commentCreate": {
        "comment": {
            "id": "c0a8b1e2-0000-4000-8000-000000000001",
            "url": "https://linear.app/acme/issue/ENG-123#comment-c0a8b1e2",
        }
    },
    "reactionCreate": {"reaction": {"id": "r0a8b1e2-0000-4000-8000-000000000002", "emoji": "eyes"}},
}


def _linear_default(server: PlatformServer, request: Recorded) -> Reply:
    body = request.json() or {}
    text = str(body.get("query", ""))
    for field_name, answer in _LINEAR_ANSWERS.items():
        if re.search(rf"\b{field_name}\s*\(", text):
            payload = {"success": True, "lastSyncId": 1.0, **answer}
            return Reply(200, {"data": {field_name: payload}})
    server.problems.append(f"no default answer for {text[:80]!r}")
    error = {"message": "unknown operation", "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"}}
    return Reply(400, {"errors": [error]})


@contextmanager
def linear_server() -> Iterator[PlatformServer]:
    with _running(PlatformServer(_linear_default, "/graphql")) as server:
        yield server


# --- Slack -------------------------------------------------------------------------------

_SLACK_TS = itertools.count(1)


def _slack_default(server: PlatformServer, request: Recorded) -> Reply:
    method = request.path.rsplit("/", 1)[-1]
    args = request.arguments()
    if method == "chat.postMessage":
        ts = f"1700000000.{next(_SLACK_TS):06d}"
        message = {"type": "message", "text": args.get("text", ""), "ts": ts, "bot_id": "B1"}
        return Reply(
            200, {"ok": True, "channel": args.get("channel"), "ts": ts, "message": message}
        )
    if method == "reactions.add":
        return Reply(200, {"ok": True})
    server.problems.append(f"no default answer for {method}")
    return Reply(200, {"ok": False, "error": "unknown_method"})


@contextmanager
def slack_server() -> Iterator[PlatformServer]:
    with _running(PlatformServer(_slack_default, "/api/")) as server:
        yield server
