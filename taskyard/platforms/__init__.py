"""Platform clients (GitHub, Linear, Slack, Sentry): reads for task context now, writes for
actions later. Each client sits behind a small protocol (`base`) with an in-memory fake
(`fakes`); `Platforms` holds the ones with credentials; `gather_context` runs the named
context fetchers (`FETCHERS`) and writes `context/<name>.json`.

Importing this package does not import githubkit or slack-sdk; `Platforms.from_settings`
does."""

from taskyard.platforms.base import (
    GitHubReader,
    JSONObject,
    LinearReader,
    PermissionLookup,
    RetryPolicy,
    SentryReader,
    SlackReader,
)
from taskyard.platforms.clients import Platforms
from taskyard.platforms.context import (
    FETCHERS,
    ContextReport,
    FetchResult,
    FetchStatus,
    gather_context,
    validate_fetcher_names,
)
from taskyard.platforms.subject import ContextSubject, subject_from_payload

__all__ = [
    "FETCHERS",
    "ContextReport",
    "ContextSubject",
    "FetchResult",
    "FetchStatus",
    "GitHubReader",
    "JSONObject",
    "LinearReader",
    "PermissionLookup",
    "Platforms",
    "RetryPolicy",
    "SentryReader",
    "SlackReader",
    "gather_context",
    "subject_from_payload",
    "validate_fetcher_names",
]
