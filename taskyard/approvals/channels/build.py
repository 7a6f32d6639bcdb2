"""The approval channels a worker posts to, from the settings and its platform clients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from taskyard.actions.directory import LinearDirectory
from taskyard.approvals.channels.base import Channel
from taskyard.approvals.channels.github import GitHubChannel
from taskyard.approvals.channels.linear import LinearChannel
from taskyard.approvals.channels.slack import SlackChannel
from taskyard.approvals.policies import ApprovalPolicies
from taskyard.config import Settings
from taskyard.platforms.clients import Platforms, writers_from_settings
from taskyard.platforms.writes import PlatformWriter


def build_channels(
    settings: Settings,
    writers: Mapping[str, PlatformWriter],
    platforms: Platforms,
    policies: ApprovalPolicies,
) -> list[Channel]:
    """Linear (when a hub issue is configured), GitHub (when on), Slack (when a channel is
    configured); each posts only where it has a writer."""
    config = settings.approvals.channels
    found: list[Channel] = []
    if config.linear.hub_issue_id:
        linear = platforms.linear
        directory = (
            LinearDirectory(linear, settings.platforms.linear.team_cache_seconds)
            if linear is not None
            else None
        )
        found.append(
            LinearChannel(writers.get("linear"), config.linear, policies, directory, reader=linear)
        )
    if config.github:
        found.append(GitHubChannel(writers.get("github"), policies))
    if config.slack_channel:
        found.append(SlackChannel(writers.get("slack"), config.slack_channel, policies))
    return found


@asynccontextmanager
async def channels_of_their_own(
    settings: Settings, policies: ApprovalPolicies
) -> AsyncIterator[list[Channel]]:
    """Channels on platform clients of their own, opened and closed here: for the event
    loops that do not run jobs (the HTTP API's, the sweeper's, the CLI's). A client belongs
    to the loop it was first used on."""
    writers = writers_from_settings(settings.platforms)
    try:
        async with Platforms.from_settings(settings.platforms) as platforms:
            yield build_channels(settings, writers, platforms, policies)
    finally:
        for writer in writers.values():
            await writer.aclose()
