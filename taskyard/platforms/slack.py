"""Slack reads: slack-sdk's Web API client (`conversations.replies` for a thread).

slack-sdk's async client needs aiohttp, which taskyard does not ship; its blocking client runs
in a worker thread instead (`asyncio.to_thread`), with slack-sdk's own retry handlers off so
`with_retries` decides. A Slack "ok": false answer names its error code: `ratelimited` (or
HTTP 429) waits for Retry-After, server-side codes are transient, the rest (channel_not_found,
thread_not_found, not_in_channel, missing_scope, invalid_auth, ...) permanent."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from taskyard.exceptions import (
    PlatformError,
    PlatformPermanentError,
    PlatformRateLimited,
    PlatformTransientError,
)
from taskyard.platforms.base import JSONObject, RetryPolicy, Sleep, redact
from taskyard.platforms.retry import parse_retry_after, with_retries

_TRANSIENT_ERRORS = frozenset(
    {"internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)
_MESSAGE_KEYS = ("ts", "thread_ts", "user", "bot_id", "username", "subtype", "text", "edited")
PAGE_LIMIT = 200
REPLIES = "conversations.replies"
METHODS = (REPLIES,)  # every Web API method called; a contract test checks slack-sdk has each


def api_error(exc: SlackApiError, what: str, secrets: tuple[str, ...] = ()) -> PlatformError:
    """slack-sdk's `SlackApiError` as taskyard's error."""
    response = exc.response
    status = int(getattr(response, "status_code", 0) or 0)
    data = getattr(response, "data", None)
    code = str(data.get("error") or "") if isinstance(data, Mapping) else ""
    text = redact(f"slack: {what} answered {status} {code or 'error'}".rstrip(), secrets)
    if status == 429 or code == "ratelimited":
        headers = {k.lower(): v for k, v in (getattr(response, "headers", None) or {}).items()}
        wait = parse_retry_after(_header(headers.get("retry-after")), 0.0)
        return PlatformRateLimited(
            f"{text} (rate limited)", platform="slack", status=status, retry_after=wait
        )
    if status >= 500 or code in _TRANSIENT_ERRORS:
        return PlatformTransientError(f"{text} (server error)", platform="slack", status=status)
    return PlatformPermanentError(f"{text} (permanent)", platform="slack", status=status)


def _header(value: Any) -> str | None:
    if isinstance(value, list):
        value = value[0] if value else None
    return None if value is None else str(value)


def message(raw: Mapping[str, Any]) -> JSONObject:
    kept: JSONObject = {key: raw[key] for key in _MESSAGE_KEYS if key in raw}
    files = raw.get("files")
    if isinstance(files, list):
        kept["files"] = [
            {"name": f.get("name"), "title": f.get("title")} for f in files if isinstance(f, dict)
        ]
    return kept


class SlackClient:
    def __init__(
        self,
        bot_token: str,
        *,
        base_url: str = "https://slack.com/api/",
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        sleep: Sleep = asyncio.sleep,
        thread_limit: int = 200,
    ) -> None:
        self._web = WebClient(
            token=bot_token, base_url=base_url, timeout=max(1, round(timeout)), retry_handlers=[]
        )
        self._secrets = (bot_token,)
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self.thread_limit = thread_limit

    async def aclose(self) -> None:
        """Nothing held open: slack-sdk opens a connection per call."""

    async def _call(self, what: str, method: str, **params: Any) -> Mapping[str, Any]:
        async def once() -> Mapping[str, Any]:
            try:
                response = await asyncio.to_thread(self._web.api_call, method, params=params)
            except SlackApiError as exc:
                raise api_error(exc, what, self._secrets) from exc
            except SlackClientError as exc:
                text = redact(f"slack: {what} failed: {type(exc).__name__}: {exc}", self._secrets)
                raise PlatformPermanentError(text, platform="slack") from exc
            except OSError as exc:  # urllib: URLError, timeouts, refused connections
                text = redact(f"slack: {what} failed: {type(exc).__name__}: {exc}", self._secrets)
                raise PlatformTransientError(text, platform="slack") from exc
            data = response.data
            if not isinstance(data, Mapping):
                raise PlatformPermanentError(f"slack: {what} answered no JSON", platform="slack")
            return data

        return await with_retries(
            once, policy=self._retry, sleep=self._sleep, what=what, platform="slack"
        )

    async def thread(self, channel: str, thread_ts: str) -> JSONObject:
        """The thread's messages, oldest first (the parent first), up to `thread_limit`."""
        messages: list[JSONObject] = []
        cursor: str | None = None
        while True:
            page = await self._call(
                f"{REPLIES} {channel} {thread_ts}",
                REPLIES,
                channel=channel,
                ts=thread_ts,
                limit=min(PAGE_LIMIT, self.thread_limit),
                **({"cursor": cursor} if cursor else {}),
            )
            raw = page.get("messages")
            messages.extend(message(m) for m in (raw if isinstance(raw, list) else []))
            cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor or len(messages) >= self.thread_limit:
                break
        return {
            "channel": channel,
            "thread_ts": thread_ts,
            "messages": messages[: self.thread_limit],
            "has_more": bool(cursor),
        }
