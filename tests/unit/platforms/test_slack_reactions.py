"""SlackWriter sending `reactions.add` to a scripted local Slack: the arguments Slack
documents, a reaction already there as a success, the other refusals as failures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from taskyard.exceptions import PlatformPermanentError
from taskyard.platforms import slack_write as sw
from taskyard.platforms.slack_write import SlackWriter
from taskyard.platforms.writes import WriteResult
from tests.unit.platforms.conftest import Sleeps
from tests.unit.platforms.slack_server import Reply, SlackScript, slack_server

TOKEN = "xoxb-SECRET-slack-token-never-leaks"


@pytest.fixture
def slack() -> Iterator[SlackScript]:
    with slack_server() as script:
        yield script


async def send(slack: SlackScript, sleeps: Sleeps) -> WriteResult:
    writer = SlackWriter(TOKEN, base_url=slack.base_url, sleep=sleeps)
    try:
        return await writer.send(sw.add_reaction("C1", "1700000000.000100", ":eyes:"))
    finally:
        await writer.aclose()


async def test_reactions_add_names_the_message_and_the_emoji(
    slack: SlackScript, sleeps: Sleeps
) -> None:
    slack.on("reactions.add", Reply(200, {"ok": True}))
    result = await send(slack, sleeps)
    [(method, form, headers)] = slack.seen
    assert method == "reactions.add"
    assert form == {"channel": ["C1"], "timestamp": ["1700000000.000100"], "name": ["eyes"]}
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert result.external_id == "1700000000.000100"


async def test_a_reaction_already_there_is_a_success(slack: SlackScript, sleeps: Sleeps) -> None:
    slack.on("reactions.add", Reply(200, {"ok": False, "error": "already_reacted"}))
    result = await send(slack, sleeps)
    assert result.external_id == "1700000000.000100"
    assert result.response == {"ok": False, "error": "already_reacted"}
    assert len(slack.seen) == 1 and sleeps.waits == []


@pytest.mark.parametrize("error", ["invalid_name", "message_not_found", "too_many_reactions"])
async def test_other_refusals_are_permanent(slack: SlackScript, sleeps: Sleeps, error: str) -> None:
    slack.on("reactions.add", Reply(200, {"ok": False, "error": error}))
    with pytest.raises(PlatformPermanentError, match=error):
        await send(slack, sleeps)


async def test_already_reacted_means_nothing_for_a_message(
    slack: SlackScript, sleeps: Sleeps
) -> None:
    slack.on("chat.postMessage", Reply(200, {"ok": False, "error": "already_reacted"}))
    writer = SlackWriter(TOKEN, base_url=slack.base_url, sleep=sleeps)
    try:
        with pytest.raises(PlatformPermanentError, match="already_reacted"):
            await writer.send(sw.post_message("C1", "hi"))
    finally:
        await writer.aclose()
