"""A Discord test server (`PlatformServer`, tests/platform_servers.py) for interaction
webhooks: every request is checked against the routes and fields Discord documents, and a
documented request is answered with a message object.

The routes are Discord's own, copied from discord/discord-api-docs
(developers/interactions/receiving-and-responding.mdx, "Followup Messages", at c98d64bc):
the `<Route method=…>` lines of the interaction webhook endpoints. The body fields are those of
"Edit Webhook Message" / "Execute Webhook" (developers/resources/webhook.mdx), which the
interaction endpoints "function the same as". Interaction webhooks take no bot token, so a
request carrying `Authorization` is a problem too (it would hand a credential to a URL that
needs none)."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.platform_servers import PlatformServer, Recorded, Reply

API_ROOT = "/api/v10"
ROUTES = (
    ("GET", "/webhooks/{application.id}/{interaction.token}/messages/@original"),
    ("PATCH", "/webhooks/{application.id}/{interaction.token}/messages/@original"),
    ("DELETE", "/webhooks/{application.id}/{interaction.token}/messages/@original"),
    ("POST", "/webhooks/{application.id}/{interaction.token}"),
    ("GET", "/webhooks/{application.id}/{interaction.token}/messages/{message.id}"),
    ("PATCH", "/webhooks/{application.id}/{interaction.token}/messages/{message.id}"),
    ("DELETE", "/webhooks/{application.id}/{interaction.token}/messages/{message.id}"),
    ("POST", "/interactions/{interaction.id}/{interaction.token}/callback"),
)
MESSAGE_FIELDS = frozenset(
    {
        "content",
        "embeds",
        "flags",
        "allowed_mentions",
        "components",
        "payload_json",
        "attachments",
        "poll",
        "tts",  # Execute Webhook (POST) only
    }
)


def _pattern(template: str) -> re.Pattern[str]:
    literal = [re.escape(p) if not p.startswith("{") else "[^/]+" for p in template.split("/")]
    return re.compile("^" + API_ROOT + "/".join(literal) + "$")


_COMPILED = [(method, _pattern(t), t) for method, t in ROUTES]


def route_of(method: str, path: str) -> str | None:
    """The documented route of a request (`@original` wins over `{message.id}`)."""
    for known, pattern, template in _COMPILED:
        if known == method and pattern.match(path):
            return template
    return None


def discord_problems(request: Recorded) -> list[str]:
    where = f"{request.method} {request.path}"
    found = []
    if route_of(request.method, request.path) is None:
        found.append(f"{where}: not an endpoint Discord documents")
    if "authorization" in request.headers:
        found.append(f"{where}: an interaction webhook takes no Authorization")
    body = request.json() if request.method in ("POST", "PATCH") else None
    if request.method in ("POST", "PATCH") and not isinstance(body, dict):
        found.append(f"{where}: the body is not a JSON object")
    elif isinstance(body, dict):
        unknown = sorted(set(body) - MESSAGE_FIELDS)
        if unknown:
            found.append(f"{where}: fields Discord does not document: {unknown}")
        if len(str(body.get("content") or "")) > 2000:
            found.append(f"{where}: content over 2000 characters")
    return found


_IDS = itertools.count(1_100_000_000_000_000_000)


def _answer(server: PlatformServer, request: Recorded) -> Reply:
    """Each answer closes its connection: taskyard's clients run on the durable queue's own
    loop, and a pooled connection would outlive it (see tests/integration/pipeline_harness)."""
    close = {"connection": "close"}
    if route_of(request.method, request.path) is None:
        return Reply(404, {"message": "404: Not Found", "code": 0}, close)
    if request.method == "DELETE":
        return Reply(204, None, close)
    body: dict[str, Any] = request.json() or {}
    message = {"id": str(next(_IDS)), "type": 20, "content": body.get("content", "")}
    return Reply(200, message, close)


@contextmanager
def discord_server() -> Iterator[PlatformServer]:
    """Point taskyard's `ideas.discord_api_url` at `server.base_url`."""
    server = PlatformServer(_answer, API_ROOT, discord_problems)
    server.start()
    try:
        yield server
    finally:
        server.stop()
