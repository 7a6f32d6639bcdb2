"""The adapter registry: built-ins by name, generic sources by `generic:<name>`."""

from __future__ import annotations

import pytest

from taskyard.config import BUILTIN_SOURCES
from taskyard.exceptions import SourceNotFound
from taskyard.intake import (
    ADAPTER_TYPES,
    DiscordAdapter,
    GenericAdapter,
    GitHubAdapter,
    LinearAdapter,
    SentryAdapter,
    SlackAdapter,
    make_adapter,
)


def test_every_builtin_source_has_an_adapter() -> None:
    assert dict(ADAPTER_TYPES) == {
        "github": GitHubAdapter,
        "linear": LinearAdapter,
        "slack": SlackAdapter,
        "sentry": SentryAdapter,
        "discord": DiscordAdapter,
    }
    assert set(ADAPTER_TYPES) == set(BUILTIN_SOURCES)


@pytest.mark.parametrize("source", sorted(ADAPTER_TYPES))
def test_make_builtin(source: str) -> None:
    adapter = make_adapter(source, 42.0)
    assert type(adapter) is ADAPTER_TYPES[source]
    assert (adapter.name, adapter.max_skew_seconds) == (source, 42.0)
    assert make_adapter(source).max_skew_seconds is None


def test_make_generic() -> None:
    adapter = make_adapter("generic:billing", 30)
    assert isinstance(adapter, GenericAdapter)
    assert (adapter.name, adapter.max_skew_seconds) == ("billing", 30)
    assert make_adapter("generic:other").name == "other"


@pytest.mark.parametrize("source", ["", "gitlab", "GitHub", "generic:", "generic", "github:x"])
def test_unknown_sources(source: str) -> None:
    with pytest.raises(SourceNotFound) as caught:
        make_adapter(source)
    assert caught.value.status == 404
