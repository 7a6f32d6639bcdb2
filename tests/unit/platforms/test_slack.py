"""Slack reads through slack-sdk's Web API client, against a scripted local Slack.

Response shapes are Slack's documented `conversations.replies` answer (docs.slack.dev,
reference/methods/conversations.replies), trimmed; slack-sdk ships no fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from taskyard.exceptions import PlatformPermanentError, PlatformTransientError
from taskyard.platforms.slack import SlackClient
from tests.unit.platforms.conftest import Sleeps
from tests.unit.platforms.slack_server import Reply, SlackScript, slack_server

TOKEN = "xoxb-SECRET-slack-token-never-leaks"
PARENT = {
    "type": "message",
    "user": "U061F7AUR",
    "text": "island",
    "ts": "1482960137.003543",
    "thread_ts": "1482960137.003543",
    "reply_count": 2,
}
REPLY = {
    "type": "message",
    "user": "U061F7AUR",
    "text": "one island",
    "ts": "1483037603.017503",
    "thread_ts": "1482960137.003543",
    "parent_user_id": "U061F7AUR",
}


@pytest.fixture
def slack() -> Iterator[SlackScript]:
    with slack_server() as script:
        yield script


def client(slack: SlackScript, sleeps: Sleeps, **kw: int) -> SlackClient:
    return SlackClient(TOKEN, base_url=slack.base_url, sleep=sleeps, **kw)


async def test_thread_is_read_with_the_bot_token(slack: SlackScript, sleeps: Sleeps) -> None:
    slack.on(
        "conversations.replies",
        Reply(200, {"ok": True, "messages": [PARENT, REPLY], "has_more": False}),
    )
    thread = await client(slack, sleeps).thread("C123", "1482960137.003543")
    assert [m["text"] for m in thread["messages"]] == ["island", "one island"]
    assert thread["messages"][0] == {
        "ts": PARENT["ts"],
        "thread_ts": PARENT["thread_ts"],
        "user": "U061F7AUR",
        "text": "island",
    }
    _, params, headers = slack.seen[0]
    assert params["channel"] == ["C123"] and params["ts"] == ["1482960137.003543"]
    assert headers["Authorization"] == f"Bearer {TOKEN}"


async def test_thread_follows_the_cursor(slack: SlackScript, sleeps: Sleeps) -> None:
    first = {
        "ok": True,
        "messages": [PARENT],
        "has_more": True,
        "response_metadata": {"next_cursor": "bmV4dF90czoxNDg0Njc4MjkwNTE3MDkx"},
    }
    slack.on(
        "conversations.replies", Reply(200, first), Reply(200, {"ok": True, "messages": [REPLY]})
    )
    thread = await client(slack, sleeps).thread("C123", PARENT["ts"])
    assert len(thread["messages"]) == 2 and thread["has_more"] is False
    assert slack.seen[1][1]["cursor"] == ["bmV4dF90czoxNDg0Njc4MjkwNTE3MDkx"]


async def test_429_honours_retry_after(slack: SlackScript, sleeps: Sleeps) -> None:
    slack.on(
        "conversations.replies",
        Reply(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "3"}),
        Reply(200, {"ok": True, "messages": [PARENT]}),
    )
    thread = await client(slack, sleeps).thread("C123", PARENT["ts"])
    assert len(thread["messages"]) == 1 and sleeps.waits == [3.0]


@pytest.mark.parametrize("code", ["channel_not_found", "thread_not_found", "not_in_channel"])
async def test_slack_refusals_are_permanent(slack: SlackScript, sleeps: Sleeps, code: str) -> None:
    slack.on("conversations.replies", Reply(200, {"ok": False, "error": code}))
    with pytest.raises(PlatformPermanentError, match=code) as caught:
        await client(slack, sleeps).thread("C123", PARENT["ts"])
    assert TOKEN not in str(caught.value) and len(slack.seen) == 1


async def test_server_errors_are_transient(slack: SlackScript, sleeps: Sleeps) -> None:
    slack.on("conversations.replies", Reply(503, {"ok": False, "error": "service_unavailable"}))
    with pytest.raises(PlatformTransientError, match="503"):
        await client(slack, sleeps).thread("C123", PARENT["ts"])
    assert len(slack.seen) == 3


async def test_unreachable_slack_is_transient(sleeps: Sleeps) -> None:
    with slack_server() as gone:
        base_url = gone.base_url
    with pytest.raises(PlatformTransientError, match=r"slack: conversations\.replies") as caught:
        await SlackClient(TOKEN, base_url=base_url, sleep=sleeps).thread("C1", "1.2")
    assert TOKEN not in str(caught.value)
