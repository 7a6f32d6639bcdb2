"""Fake GitHub, Linear and Slack HTTP servers on 127.0.0.1 that RECORD every request and CHECK
it against what the platform published.

Each runs in a thread (`with github_server() as gh:` …). `server.requests` lists every
`Recorded` request, oldest first (`server.mark()` and `server.since(mark)`: the ones after a
point). Whatever breaks the platform's contract is appended to `server.problems`, which a test
asserts stays empty:
- GitHub: the method and path are an operation of GitHub's OpenAPI description (npm
  @octokit/openapi), and a JSON body fits the operation's request schema (documented fields,
  JSON types, enums, required fields: `openapi_problems`);
- Linear: the GraphQL document validates against Linear's published schema
  (shared/platforms/linear-schema.graphql) and its variables coerce to their declared types
  (`graphql_problems`); a default answer the server cannot give (a field it has no data for)
  is a problem too;
- Slack: the Web API method is a method of slack-sdk's `WebClient`, and every argument a
  keyword that method names (`slack_problems`).

Answers, in this order:
1. replies queued for (method, path) with `server.queue(method, path, Reply(...), ...)`, each
   used once, in order;
2. standing answers set with `server.route(method, path, reply_or_function)`;
3. the platform's default answer:
   - GitHub: the first documented 2xx example of the matched operation; an undocumented
     method/path answers 404. `serve_pull_request(gh, payload, diff)` makes the reads of a
     delivery's pull request (the pull request, its diff, its files) answer from the delivery
     and a real diff.
   - Linear: the document EXECUTED against Linear's schema (graphql-core), by its top-level
     fields, over a `LinearWorkspace` (tests/linear_workspace.py; `linear_server(workspace)`):
     a small Linear whose reads (`issue`, `comment`, `team`, `searchIssues`, `issueLabels`,
     `issuePriorityValues`) answer from it and whose mutations (`issueCreate`,
     `issueUpdate`, `commentCreate`, `reactionCreate`) change it and refuse what Linear
     refuses, with Linear's errors. Seeded from a real `Issue` webhook
     (`add_delivered_issue`), its reads agree with the delivery. Without a workspace, every
     mutation succeeds with a sample object (ENG-123) and every read finds nothing.
   - Slack: `chat.postMessage` → ok with a fresh `ts`; `reactions.add` → ok;
     `conversations.replies` → the thread's messages; messages come from a `SlackWorkspace`
     (`SlackWorkspace.add_message`, plus every message posted); `chat.update` → the message
     rewritten (`message_not_found` for one the workspace does not have);
     `chat.postEphemeral` → ok with a `message_ts`; other methods
     `{"ok": false, "error": "unknown_method"}`.
Point taskyard at `server.base_url` (GitHub REST root; Linear's GraphQL endpoint; Slack's
`…/api/`)."""

from __future__ import annotations

import inspect
import itertools
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from graphql import ExecutionResult, execute_sync
from slack_sdk import WebClient

from tests.linear_workspace import (
    LinearRefusal,
    LinearWorkspace,
    graphql_problems,
    linear_schema,
    operation_name,
    parse_request,
    sample_root,
)

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
    at: float = 0.0  # time.monotonic() when it arrived (orders requests across servers)

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    def arguments(self) -> dict[str, Any]:
        """Slack: the method's arguments, whether sent as JSON, as a form or in the query."""
        if self.headers.get("content-type", "").startswith("application/json"):
            data: dict[str, Any] = self.json()
            return data
        form = {**self.query, **parse_qs(self.body.decode() or "")}
        return {k: v[0] if len(v) == 1 else v for k, v in form.items()}

    def everything_but_auth(self) -> str:
        """The request as text without its Authorization header (for secret-leak checks)."""
        headers = {k: v for k, v in self.headers.items() if k != "authorization"}
        return f"{self.method} {self.path} {self.query} {headers} {self.body!r}"


Default = Callable[["PlatformServer", Recorded], Reply]
Answer = Reply | Callable[[Recorded], Reply]
Check = Callable[[Recorded], list[str]]


class PlatformServer:
    """A recording, checking HTTP server; see the module docstring."""

    def __init__(self, default: Default, api_root: str = "", check: Check | None = None) -> None:
        self._default = default
        self._check = check
        self._queued: dict[tuple[str, str], list[Reply]] = {}
        self._routes: dict[tuple[str, str], Answer] = {}
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)  # notified at each request
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

    def route(self, method: str, path: str, answer: Answer) -> None:
        """Answer every request to `method path` (the decoded path) with `answer`: a reply,
        or a function of the request giving one."""
        with self._lock:
            self._routes[(method.upper(), path)] = answer

    def mark(self) -> int:
        """A point in `requests`, for `since`."""
        with self._lock:
            return len(self.requests)

    def since(self, mark: int) -> list[Recorded]:
        with self._lock:
            return self.requests[mark:]

    def wait_for(
        self, found: Callable[[Recorded], bool], mark: int = 0, seconds: float = 30.0
    ) -> Recorded | None:
        """The first request since `mark` that `found` accepts, waiting (without polling) at
        most `seconds` for it to arrive; None if it did not."""
        deadline = time.monotonic() + seconds
        seen = mark
        with self._arrived:
            while True:
                for request in self.requests[seen:]:
                    if found(request):
                        return request
                seen = len(self.requests)
                left = deadline - time.monotonic()
                if left <= 0 or not self._arrived.wait(left):
                    return None

    def answer(self, request: Recorded) -> Reply:
        problems = self._check(request) if self._check is not None else []
        where = (request.method, unquote(request.path))
        with self._lock:
            self.requests.append(request)
            self._arrived.notify_all()
            self.problems.extend(problems)
            queue = self._queued.get(where)
            if queue:
                return queue.pop(0)
            standing = self._routes.get(where)
        if standing is not None:
            return standing if isinstance(standing, Reply) else standing(request)
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
                at=time.monotonic(),
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


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
}


def _type_ok(value: Any, expected: str | list[str]) -> bool:
    kinds = [expected] if isinstance(expected, str) else expected
    if isinstance(value, bool):
        return "boolean" in kinds
    if value is None:
        return "null" in kinds
    return any(isinstance(value, _JSON_TYPES.get(k, ())) for k in kinds)


def openapi_problems(
    spec: dict[str, Any], schema: Any, value: Any, where: str = "body"
) -> list[str]:
    """Why `value` does not fit the OpenAPI `schema` (empty when it does): undocumented
    fields, wrong JSON types, values outside an enum, missing required fields. Follows
    `$ref`, `oneOf`, `anyOf` and `allOf`."""
    schema = resolve(spec, schema)
    for combinator in ("oneOf", "anyOf"):
        if combinator in schema:
            tries = [openapi_problems(spec, alt, value, where) for alt in schema[combinator]]
            return [] if any(not t for t in tries) else [p for t in tries for p in t]
    if "allOf" in schema:
        return [p for part in schema["allOf"] for p in openapi_problems(spec, part, value, where)]
    if value is None:
        return [] if schema.get("nullable") else [f"{where}: null is not allowed"]
    if "type" in schema and not _type_ok(value, schema["type"]):
        return [f"{where}: {type(value).__name__} where the schema says {schema['type']}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{where}: {value!r} is not one of {schema['enum']}"]
    if isinstance(value, list):
        items = schema.get("items", {})
        return [
            p
            for i, v in enumerate(value)
            for p in openapi_problems(spec, items, v, f"{where}[{i}]")
        ]
    if isinstance(value, dict):
        props = schema.get("properties", {})
        problems = [f"{where}.{k}: not a documented field" for k in value if k not in props]
        missing = [k for k in schema.get("required", []) if k not in value]
        problems += [f"{where}.{k}: required but missing" for k in missing]
        for key in value.keys() & props.keys():
            problems += openapi_problems(spec, props[key], value[key], f"{where}.{key}")
        return problems
    return []


def github_request_schema(operation: dict[str, Any]) -> Any:
    """The JSON request-body schema of an operation, or None when it takes no JSON body."""
    body = resolve(github_spec(), operation.get("requestBody", {}))
    return body.get("content", {}).get("application/json", {}).get("schema")


def github_problems(request: Recorded) -> list[str]:
    """What GitHub's description says is wrong with `request` (empty: nothing)."""
    found = github_operation(request.method, request.path)
    said = f"{request.method} {request.path}"
    if found is None:
        return [f"{said} is not a documented operation"]
    try:
        body = request.json()
    except ValueError:
        return [f"{said}: the body is not JSON"]
    if body is None:
        return []
    schema = github_request_schema(found[1])
    if schema is None:
        return [f"{said}: a JSON body where GitHub documents none"]
    return [f"{said}: {p}" for p in openapi_problems(github_spec(), schema, body)]


def _github_default(server: PlatformServer, request: Recorded) -> Reply:
    found = github_operation(request.method, request.path)
    if found is None:
        return Reply(404, {"message": "Not Found"})
    return github_example(found[1])


@contextmanager
def github_server(check: bool = True) -> Iterator[PlatformServer]:
    """`check=False` (benchmarks) skips checking each request and answer against GitHub's
    OpenAPI description: tens of milliseconds of CPU per request, in the measuring process."""
    checker = github_problems if check else None
    with _running(PlatformServer(_github_default, check=checker)) as server:
        yield server


_DIFF_FILE = re.compile(r"^diff --git a/(?P<old>\S+) b/(?P<new>\S+)$", re.M)
_HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+(?P<start>\d+)(?:,\d+)? @@", re.M)


def _diff_sections(diff: str) -> Iterator[tuple[str, str, str]]:
    """(old path, new path, text) of each file of a unified git diff."""
    starts = list(_DIFF_FILE.finditer(diff))
    for n, found in enumerate(starts):
        end = starts[n + 1].start() if n + 1 < len(starts) else len(diff)
        yield found["old"], found["new"], diff[found.end() : end]


def diff_files(
    diff: str, repo: str = "octocat/Hello-World", ref: str = "HEAD"
) -> list[dict[str, Any]]:
    """The files of a unified git diff as GitHub lists a pull request's files ("diff-entry")."""
    files = []
    for old, new, text in _diff_sections(diff):
        hunk = _HUNK.search(text)
        patch = text[hunk.start() :].rstrip("\n") if hunk else ""
        lines = patch.splitlines()
        added = sum(ln.startswith("+") for ln in lines)
        removed = sum(ln.startswith("-") for ln in lines)
        status = (
            "added"
            if "\nnew file mode" in text
            else "removed"
            if "\ndeleted file" in text
            else "modified"
        )
        entry: dict[str, Any] = {
            "sha": uuid.uuid5(uuid.NAMESPACE_URL, new + patch).hex[:40].ljust(40, "0"),
            "filename": new,
            "status": "renamed" if old != new else status,
            "additions": added,
            "deletions": removed,
            "changes": added + removed,
            "blob_url": f"https://github.com/{repo}/blob/{ref}/{new}",
            "raw_url": f"https://github.com/{repo}/raw/{ref}/{new}",
            "contents_url": f"https://api.github.com/repos/{repo}/contents/{new}?ref={ref}",
            "patch": patch,
        }
        if old != new:
            entry["previous_filename"] = old
        files.append(entry)
    return files


def changed_lines(diff: str) -> dict[str, set[int]]:
    """Path → the new-side line numbers a unified diff adds (where a review comment on the
    RIGHT side may go)."""
    found: dict[str, set[int]] = {}
    for _, new, text in _diff_sections(diff):
        lines = found.setdefault(new, set())
        line = 0
        for row in text.splitlines():
            hunk = _HUNK.match(row)
            if hunk:
                line = int(hunk["start"])
            elif line and row.startswith("+"):
                lines.add(line)
                line += 1
            elif line and not row.startswith("-"):
                line += 1
    return found


def serve_pull_request(server: PlatformServer, payload: Mapping[str, Any], diff: str) -> None:
    """Make the GitHub server answer the reads of the pull request of a `pull_request`
    delivery from that delivery: `GET /repos/{repo}/pulls/{n}` (the pull request; the diff
    for `Accept: application/vnd.github.diff`) and `GET …/pulls/{n}/files` (the files of
    `diff`, all on the first page)."""
    pull = dict(payload["pull_request"])
    repo = str(payload["repository"]["full_name"])
    path = f"/repos/{repo}/pulls/{pull['number']}"
    files = diff_files(diff, repo, str(pull["head"]["sha"]))

    def pull_request(request: Recorded) -> Reply:
        if "diff" in request.headers.get("accept", ""):
            return Reply(200, diff.encode(), {"content-type": "text/x-diff; charset=utf-8"})
        return Reply(200, pull)

    def pull_files(request: Recorded) -> Reply:
        first = request.query.get("page", ["1"])[0] == "1"
        return Reply(200, files if first else [])

    server.route("GET", path, pull_request)
    server.route("GET", f"{path}/files", pull_files)


# --- Linear ------------------------------------------------------------------------------


def _linear_check(request: Recorded) -> list[str]:
    where = f"{request.method} {request.path}"
    if request.method != "POST":
        return [f"{where}: Linear's API takes POST only"]
    try:
        body = request.json()
    except ValueError:
        return [f"{where}: the body is not JSON"]
    name = operation_name(body)
    return [f"linear {name}: {p}" for p in graphql_problems(body)]


def _linear_answer(root: Callable[[], dict[str, Any]]) -> Default:
    def answer(server: PlatformServer, request: Recorded) -> Reply:
        body = request.json() or {}
        document, errors = parse_request(body)
        if document is None:  # the check recorded why
            codes = {"code": "GRAPHQL_VALIDATION_FAILED"}
            return Reply(400, {"errors": [{"message": e, "extensions": codes} for e in errors]})
        result: ExecutionResult = execute_sync(
            linear_schema(),
            document,
            root_value=root(),
            variable_values=body.get("variables") or {},
            operation_name=body.get("operationName"),
        )
        failures = result.errors or []
        own = [e for e in failures if e.path and not isinstance(e.original_error, LinearRefusal)]
        name = operation_name(body)
        server.problems.extend(
            f"linear {name}: cannot answer {'.'.join(map(str, e.path or ()))}: {e.message}"
            for e in own
        )
        reply: dict[str, Any] = {"data": result.data}
        if failures:
            reply["errors"] = [e.formatted for e in failures]
        return Reply(200 if result.data is not None else 400, reply)

    return answer


@contextmanager
def linear_server(workspace: LinearWorkspace | None = None) -> Iterator[PlatformServer]:
    """A Linear GraphQL endpoint (`server.base_url`) over `workspace` (see the module
    docstring); without one, the sample answers."""
    root = workspace.root if workspace is not None else sample_root
    server = PlatformServer(_linear_answer(root), "/graphql", check=_linear_check)
    with _running(server) as running:
        yield running


# --- Slack -------------------------------------------------------------------------------

_SLACK_TS = itertools.count(1)


@dataclass
class SlackWorkspace:
    """The messages the Slack server knows, by channel: those a test adds (the messages its
    deliveries are about) and those posted through it."""

    messages: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def add_message(self, channel: str, message: Mapping[str, Any]) -> None:
        self.messages.setdefault(channel, []).append(dict(message))

    def update(self, channel: str, ts: str, text: str, blocks: Any = None) -> dict[str, Any] | None:
        """Message `ts` of `channel` rewritten (`chat.update`); None when there is none."""
        for message in self.messages.get(channel, []):
            if message.get("ts") == ts:
                message["text"] = text
                if blocks is not None:
                    message["blocks"] = blocks
                return message
        return None

    def thread(self, channel: str, ts: str) -> list[dict[str, Any]]:
        """The message `ts` and its replies, oldest first."""
        found = [
            m for m in self.messages.get(channel, []) if ts in (m.get("ts"), m.get("thread_ts"))
        ]
        return sorted(found, key=lambda m: float(m["ts"]))


def slack_problems(method: str, arguments: Mapping[str, Any]) -> list[str]:
    """What slack-sdk says is wrong with a Web API call: not a `WebClient` method, an
    argument the method does not name, or a required one missing."""
    function = getattr(WebClient, method.replace(".", "_"), None)
    if not callable(function):
        return [f"{method} is not a slack-sdk WebClient method"]
    params = inspect.signature(function).parameters
    named = {n for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
    required = {n for n in named if params[n].default is inspect.Parameter.empty}
    return [f"{method}: {k} is not an argument" for k in arguments if k not in named] + [
        f"{method}: {k} is missing" for k in sorted(required - set(arguments))
    ]


def _slack_check(request: Recorded) -> list[str]:
    return slack_problems(request.path.rsplit("/", 1)[-1], request.arguments())


def _slack_answer(workspace: SlackWorkspace) -> Default:
    def answer(server: PlatformServer, request: Recorded) -> Reply:
        method = request.path.rsplit("/", 1)[-1]
        args = request.arguments()
        if method == "chat.postMessage":
            ts = f"1700000000.{next(_SLACK_TS):06d}"
            message = {"type": "message", "text": args.get("text", ""), "ts": ts, "bot_id": "B1"}
            if args.get("thread_ts"):
                message["thread_ts"] = args["thread_ts"]
            workspace.add_message(str(args.get("channel")), message)
            return Reply(
                200, {"ok": True, "channel": args.get("channel"), "ts": ts, "message": message}
            )
        if method == "reactions.add":
            return Reply(200, {"ok": True})
        if method == "conversations.replies":
            found = workspace.thread(str(args.get("channel")), str(args.get("ts")))
            if not found:
                return Reply(200, {"ok": False, "error": "thread_not_found"})
            meta = {"next_cursor": ""}
            return Reply(
                200, {"ok": True, "messages": found, "has_more": False, "response_metadata": meta}
            )
        if method == "chat.update":
            return _slack_update(workspace, args)
        if method == "chat.postEphemeral":
            return Reply(200, {"ok": True, "message_ts": f"1700000000.{next(_SLACK_TS):06d}"})
        server.problems.append(f"no default answer for {method}")
        return Reply(200, {"ok": False, "error": "unknown_method"})

    return answer


def _slack_update(workspace: SlackWorkspace, args: Mapping[str, Any]) -> Reply:
    """`chat.update` as Slack answers it: the channel, ts and text of the rewritten message."""
    blocks = args.get("blocks")
    if isinstance(blocks, str):  # sent as a form: the blocks are JSON text
        blocks = json.loads(blocks)
    channel, ts, text = str(args.get("channel")), str(args.get("ts")), args.get("text", "")
    if workspace.update(channel, ts, text, blocks) is None:
        return Reply(200, {"ok": False, "error": "message_not_found"})
    return Reply(200, {"ok": True, "channel": channel, "ts": ts, "text": text})


@contextmanager
def slack_server(workspace: SlackWorkspace | None = None) -> Iterator[PlatformServer]:
    server = PlatformServer(_slack_answer(workspace or SlackWorkspace()), "/api/", _slack_check)
    with _running(server) as running:
        yield running
