"""Webhook intake: one adapter per source, and the registry the HTTP app and CLI pick them from.

The adapters need no settings, so routing can re-parse a stored body with them
(`taskyard.routing.payload`) without loading intake's HTTP side."""

from __future__ import annotations

from taskyard.exceptions import SourceNotFound
from taskyard.intake.base import Normalised, Reply, Signed, SourceAdapter
from taskyard.intake.discord import DiscordAdapter
from taskyard.intake.generic import GenericAdapter
from taskyard.intake.github import GitHubAdapter
from taskyard.intake.linear import LinearAdapter
from taskyard.intake.sentry import SentryAdapter
from taskyard.intake.slack import SlackAdapter

ADAPTER_TYPES: dict[str, type[SourceAdapter]] = {
    adapter.name: adapter
    for adapter in (GitHubAdapter, LinearAdapter, SlackAdapter, SentryAdapter, DiscordAdapter)
}
GENERIC_PREFIX = "generic:"


def source_key(path: str) -> str:
    """The adapter key of a webhook path: `github` → `github`, `generic/x` → `generic:x`."""
    kind, _, name = path.partition("/")
    return f"{GENERIC_PREFIX}{name}" if kind == "generic" and name else path


def make_adapter(source: str, max_skew_seconds: float | None = None) -> SourceAdapter:
    """The adapter of a built-in source (`github`, …) or of `generic:<name>`."""
    if source.startswith(GENERIC_PREFIX) and source != GENERIC_PREFIX:
        return GenericAdapter(
            name=source.removeprefix(GENERIC_PREFIX), max_skew_seconds=max_skew_seconds
        )
    adapter_type = ADAPTER_TYPES.get(source)
    if adapter_type is None:
        raise SourceNotFound(f"unknown webhook source {source!r}")
    return adapter_type(max_skew_seconds=max_skew_seconds)


__all__ = [
    "ADAPTER_TYPES",
    "GENERIC_PREFIX",
    "DiscordAdapter",
    "GenericAdapter",
    "GitHubAdapter",
    "LinearAdapter",
    "Normalised",
    "Reply",
    "SentryAdapter",
    "Signed",
    "SlackAdapter",
    "SourceAdapter",
    "make_adapter",
    "source_key",
]
