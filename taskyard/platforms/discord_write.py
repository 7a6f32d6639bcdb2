"""Discord interaction webhooks: how taskyard answers a slash command after its first answer.

The intake answers every application command at once with a deferred message (`{"type": 5}`,
Discord's "thinking…"); the real answer follows through the interaction's webhook, which
needs no bot token — the interaction's own token (valid 15 minutes) is the credential, and it
sits in the path. So the token is redacted from every error, and the path is never logged.

Endpoints (Discord's "Receiving and Responding" document, API v10):
- `PATCH /webhooks/{application.id}/{interaction.token}/messages/@original`: edit the
  deferred answer into the real one (what `answer` does);
- `POST /webhooks/{application.id}/{interaction.token}`: a further follow-up message.

Errors are taskyard's platform errors (`taskyard.platforms.rest`): 429 waits for Discord's
Retry-After, 5xx and network errors are retried. Editing the original answer is idempotent, so
it is retried even when in doubt; a new follow-up message is not (it would be posted twice)."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

import httpx

from taskyard.platforms.base import RetryPolicy, Sleep
from taskyard.platforms.rest import JsonHttp
from taskyard.platforms.retry import with_retries

PLATFORM = "discord"
DEFAULT_URL = "https://discord.com/api/v10"
# Discord's documented routes, by what taskyard does with them.
OPERATIONS = {
    "edit_original": ("PATCH", "/webhooks/{application_id}/{interaction_token}/messages/@original"),
    "follow_up": ("POST", "/webhooks/{application_id}/{interaction_token}"),
}
# Nobody is pinged by what taskyard says: the text may quote what a person typed.
NO_MENTIONS: dict[str, Any] = {"parse": []}


def message(content: str) -> dict[str, Any]:
    """A message body (`content` at most Discord's 2000 characters)."""
    return {"content": content[:2000], "allowed_mentions": NO_MENTIONS}


def webhook_path(operation: str, application_id: str, token: str) -> str:
    _, template = OPERATIONS[operation]
    return template.format(
        application_id=quote(application_id, safe=""), interaction_token=quote(token, safe="")
    )


class DiscordWebhooks:
    """Answers to interactions. `base_url`: Discord's API root (tests: a test server)."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        sleep: Sleep = asyncio.sleep,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), timeout=timeout, transport=transport
        )
        self._retry = retry or RetryPolicy()
        self._sleep = sleep

    async def answer(self, application_id: str, token: str, content: str) -> dict[str, Any]:
        """Turn the deferred answer ("thinking…") into `content`; the message as Discord
        keeps it."""
        return await self._send("edit_original", application_id, token, content, write=False)

    async def follow_up(self, application_id: str, token: str, content: str) -> dict[str, Any]:
        """A new message after the answer."""
        return await self._send("follow_up", application_id, token, content, write=True)

    async def _send(
        self, operation: str, application_id: str, token: str, content: str, write: bool
    ) -> dict[str, Any]:
        method, _ = OPERATIONS[operation]
        path = webhook_path(operation, application_id, token)
        http = JsonHttp(self._client, PLATFORM, [token, quote(token, safe="")])
        what = f"{operation.replace('_', ' ')} of interaction webhook"

        async def call() -> Any:
            return await http.json(method, path, what, json=message(content))

        found = await with_retries(
            call, policy=self._retry, sleep=self._sleep, what=what, write=write, platform=PLATFORM
        )
        return found if isinstance(found, dict) else {}

    async def aclose(self) -> None:
        await self._client.aclose()
