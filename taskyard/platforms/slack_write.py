"""Slack writes: planners (pure: a Web API method and its arguments) and `SlackWriter`.

A planned request's `path` is the Web API method ("chat.postMessage") and its `body` the
keyword arguments of slack-sdk's method of that name (`WebClient.chat_postMessage`), which the
writer calls as they are, so slack-sdk encodes them as it always does (JSON for messages with
blocks). Errors as for reads (`slack.api_error`): `ok: false` is permanent unless it is a rate
limit (`ratelimited`/429: waits for Retry-After) or a Slack server error. A reaction that is
already there (`already_reacted`) is the state asked for: a success, like GitHub's 200.

A transport error that means the call never reached Slack (connection refused, the name did
not resolve) is transient and retried; any other (a timeout waiting for the answer, a dropped
connection) leaves the write in doubt (`PlatformInDoubt`): it is not sent again, since a
message Slack did post would be posted twice."""

from __future__ import annotations

import asyncio
import http.client
import socket
import urllib.error
from collections.abc import Mapping, Sequence
from typing import Any

from slack_sdk.errors import SlackApiError, SlackClientError

from taskyard.exceptions import PlatformInDoubt, PlatformPermanentError, PlatformTransientError
from taskyard.platforms.base import redact
from taskyard.platforms.retry import with_retries
from taskyard.platforms.slack import SlackClient, api_error
from taskyard.platforms.writes import PlannedRequest, WriteResult

PLATFORM = "slack"
POST_MESSAGE = "chat.postMessage"
ADD_REACTION = "reactions.add"
UPDATE_MESSAGE = "chat.update"
POST_EPHEMERAL = "chat.postEphemeral"
# A contract test checks slack-sdk has each.
METHODS = (POST_MESSAGE, ADD_REACTION, UPDATE_MESSAGE, POST_EPHEMERAL)
# Transport errors that mean the request never left (urllib wraps errors of connecting and
# sending in URLError; those of reading the answer come as they are).
NOT_SENT = (ConnectionRefusedError, socket.gaierror)


def never_sent(exc: BaseException) -> bool:
    """Whether a transport error means Slack cannot have received the call."""
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    return isinstance(reason, NOT_SENT)


# Slack error codes that mean the call's effect is already in place, by method.
ALREADY_DONE: Mapping[str, frozenset[str]] = {ADD_REACTION: frozenset({"already_reacted"})}


def post_message(
    channel: str,
    text: str,
    thread_ts: str | None = None,
    blocks: Sequence[Mapping[str, Any]] | None = None,
) -> PlannedRequest:
    """A message in `channel` (a reply in the thread `thread_ts` when given). `text` is kept
    with blocks: Slack shows it in notifications."""
    body: dict[str, Any] = {"channel": channel, "text": text}
    if thread_ts:
        body["thread_ts"] = thread_ts
    if blocks:
        body["blocks"] = [dict(b) for b in blocks]
    where = f"{channel} thread {thread_ts}" if thread_ts else channel
    return PlannedRequest(PLATFORM, "POST", POST_MESSAGE, body, f"post a message in {where}")


def add_reaction(channel: str, ts: str, name: str) -> PlannedRequest:
    """The reaction `name` (an emoji name without colons, e.g. "eyes") on message `ts`."""
    body = {"channel": channel, "timestamp": ts, "name": name.strip(":")}
    text = f"react :{body['name']}: to {channel} {ts}"
    return PlannedRequest(PLATFORM, "POST", ADD_REACTION, body, text)


def update_message(
    channel: str, ts: str, text: str, blocks: Sequence[Mapping[str, Any]] | None = None
) -> PlannedRequest:
    """Message `ts` in `channel` (a channel id, as Slack answered a post) rewritten: its
    `text`, and its blocks replaced by `blocks` when given."""
    body: dict[str, Any] = {"channel": channel, "ts": ts, "text": text}
    if blocks is not None:
        body["blocks"] = [dict(b) for b in blocks]
    return PlannedRequest(PLATFORM, "POST", UPDATE_MESSAGE, body, f"update {channel} {ts}")


def post_ephemeral(
    channel: str, user: str, text: str, thread_ts: str | None = None
) -> PlannedRequest:
    """A message in `channel` that only `user` sees (in the thread `thread_ts` when given)."""
    body: dict[str, Any] = {"channel": channel, "user": user, "text": text}
    if thread_ts:
        body["thread_ts"] = thread_ts
    where = f"{channel} thread {thread_ts}" if thread_ts else channel
    return PlannedRequest(
        PLATFORM, "POST", POST_EPHEMERAL, body, f"tell {user} privately in {where}"
    )


def _already_done(method: str, exc: SlackApiError) -> Mapping[str, Any] | None:
    """Slack's answer when it refused `method` only because its effect is already there."""
    data = getattr(exc.response, "data", None)
    if not isinstance(data, Mapping):
        return None
    return data if data.get("error") in ALREADY_DONE.get(method, frozenset()) else None


# Where a method's answer names the message it made or changed (a reaction has no id of its
# own: the reacted-to message's `timestamp` stands for it).
_ANSWER_ID = {POST_MESSAGE: "ts", UPDATE_MESSAGE: "ts", POST_EPHEMERAL: "message_ts"}


def write_result(method: str, body: Mapping[str, Any], data: Mapping[str, Any]) -> WriteResult:
    """A posted or updated message's `ts` (its id in its channel)."""
    key = _ANSWER_ID.get(method)
    ts = data.get(key) if key else body.get("timestamp")
    return WriteResult(external_id=None if ts is None else str(ts), response=dict(data))


class SlackWriter(SlackClient):
    """Sends planned Slack Web API calls with the bot token."""

    platform = PLATFORM

    async def send(self, request: PlannedRequest) -> WriteResult:
        method = request.path
        if request.platform != PLATFORM or method not in METHODS:
            raise PlatformPermanentError(
                f"slack: cannot send {request.platform} {method}", platform=PLATFORM
            )
        what = f"{method} {request.body.get('channel', '')}".strip()
        call = getattr(self._web, method.replace(".", "_"))
        body = dict(request.body)

        async def once() -> Mapping[str, Any]:
            try:
                response = await asyncio.to_thread(call, **body)
            except SlackApiError as exc:
                done = _already_done(method, exc)
                if done is not None:
                    return done
                raise api_error(exc, what, self._secrets) from exc
            except SlackClientError as exc:
                text = redact(f"slack: {what} failed: {type(exc).__name__}: {exc}", self._secrets)
                raise PlatformPermanentError(text, platform=PLATFORM) from exc
            except (OSError, http.client.HTTPException) as exc:  # urllib's transport errors
                text = redact(f"slack: {what} failed: {type(exc).__name__}: {exc}", self._secrets)
                if never_sent(exc):
                    raise PlatformTransientError(text, platform=PLATFORM) from exc
                raise PlatformInDoubt(text, platform=PLATFORM) from exc
            data = response.data
            if not isinstance(data, Mapping):
                raise PlatformPermanentError(f"slack: {what} answered no JSON", platform=PLATFORM)
            return data

        data = await with_retries(
            once,
            policy=self._retry,
            sleep=self._sleep,
            what=what,
            write=True,
            platform=PLATFORM,
        )
        return write_result(method, body, data)
