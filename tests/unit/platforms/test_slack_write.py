"""Slack write planners: the Web API method and slack-sdk's keyword arguments."""

from __future__ import annotations

from taskyard.config import load_settings
from taskyard.platforms import slack_write as sw
from taskyard.platforms.clients import writers_from_settings
from taskyard.platforms.github_write import GitHubWriter
from taskyard.platforms.linear_write import LinearWriter
from taskyard.platforms.slack_write import SlackWriter


def test_a_thread_reply_with_blocks() -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*done*"}}]
    plan = sw.post_message("C1", "done", thread_ts="1.2", blocks=blocks)
    assert (plan.platform, plan.path) == ("slack", "chat.postMessage")
    assert plan.body == {"channel": "C1", "text": "done", "thread_ts": "1.2", "blocks": blocks}
    assert sw.post_message("C1", "hi").body == {"channel": "C1", "text": "hi"}


def test_a_reaction_name_loses_its_colons() -> None:
    plan = sw.add_reaction("C1", "1.2", ":eyes:")
    assert plan.path == "reactions.add"
    assert plan.body == {"channel": "C1", "timestamp": "1.2", "name": "eyes"}


def test_results_carry_the_message_ts() -> None:
    plan = sw.post_message("C1", "hi")
    assert sw.write_result(plan.path, plan.body, {"ok": True, "ts": "9.9"}).external_id == "9.9"


async def test_writers_exist_only_for_platforms_with_credentials() -> None:
    env = {"TASKYARD_SLACK_BOT_TOKEN": "xoxb-x", "TASKYARD_LINEAR_API_KEY": "lin_api_x"}
    writers = writers_from_settings(load_settings(None, env).platforms)
    assert set(writers) == {"linear", "slack"}
    assert isinstance(writers["slack"], SlackWriter)
    assert isinstance(writers["linear"], LinearWriter)
    assert all(w.platform == name for name, w in writers.items())
    for writer in writers.values():
        await writer.aclose()
    github = writers_from_settings(
        load_settings(None, {"TASKYARD_GITHUB_TOKEN": "ghp_x"}).platforms
    )
    assert isinstance(github["github"], GitHubWriter) and set(github) == {"github"}
    await github["github"].aclose()
