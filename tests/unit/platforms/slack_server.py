"""A scripted Slack Web API on 127.0.0.1 (slack-sdk's blocking client speaks urllib, which an
httpx mock cannot intercept). Runs in a thread; answers by API method name."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Reply:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class SlackScript:
    replies: dict[str, list[Reply]] = field(default_factory=dict)
    seen: list[tuple[str, dict[str, list[str]], dict[str, str]]] = field(default_factory=list)
    base_url: str = ""

    def on(self, method: str, *replies: Reply) -> None:
        self.replies[method] = list(replies)

    def next_reply(self, method: str) -> Reply:
        queue = self.replies.get(method) or [Reply(404, {"ok": False, "error": "unknown_method"})]
        return queue.pop(0) if len(queue) > 1 else queue[0]


def _handler(script: SlackScript) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # slack-sdk posts every method, its arguments as a form
            url = urlsplit(self.path)
            method = url.path.rsplit("/", 1)[-1]
            length = int(self.headers.get("content-length") or 0)
            form = parse_qs(self.rfile.read(length).decode() or url.query)
            script.seen.append((method, form, dict(self.headers.items())))
            reply = script.next_reply(method)
            data = json.dumps(reply.body).encode()
            self.send_response(reply.status)
            self.send_header("content-type", "application/json; charset=utf-8")
            self.send_header("content-length", str(len(data)))
            for key, value in reply.headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    return Handler


@contextmanager
def slack_server() -> Iterator[SlackScript]:
    script = SlackScript()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(script))
    script.base_url = f"http://127.0.0.1:{server.server_address[1]}/api/"
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield script
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
