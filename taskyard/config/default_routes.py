"""The routes taskyard runs when `taskyard.yaml` has no `routes:` (a `routes:` list replaces
them all; copy the ones to keep).

  linear-triage       Linear issue created or updated                      → claude
  slack-bug-analysis  a top-level human message in routing.slack_bugs_channel → claude
  pr-review           GitHub pull request opened, pushed to, reopened or marked ready for
                      review, not a draft, by someone with write access      → codex
  sentry-triage       Sentry issue created                                  → claude
"""

from __future__ import annotations

from typing import Any

from taskyard.config.routes import RouteConfig

# Message subtypes that are no new report: edits, deletions, joins and the like.
_SLACK_NOT_A_REPORT = [
    "message_changed",
    "message_deleted",
    "message_replied",
    "channel_join",
    "channel_leave",
    "channel_topic",
    "channel_purpose",
    "channel_name",
]

_DEFAULTS: list[dict[str, Any]] = [
    {
        "name": "linear-triage",
        "prompt": "linear-triage",
        "on": ["linear:Issue.create", "linear:Issue.update"],
        "agent": "claude",
        "context": ["linear.issue", "linear.related", "linear.team"],
    },
    {
        "name": "slack-bug-analysis",
        "prompt": "slack-bug-analysis",
        "on": ["slack:message.channels", "slack:message.groups"],
        "bugs_channel": True,
        "when": [
            {
                "path": "event.subtype",
                "in": _SLACK_NOT_A_REPORT,
                "not": True,
                "reason": "not a new message",
            },
            {
                "jmespath": "event.thread_ts == `null` || event.thread_ts == event.ts",
                "equals": True,
                "reason": "a reply in a thread",
            },
        ],
        "agent": "claude",
        "context": ["slack.thread"],
    },
    {
        "name": "pr-review",
        "prompt": "pr-review",
        "on": [
            "github:pull_request.opened",
            "github:pull_request.synchronize",
            "github:pull_request.reopened",
            "github:pull_request.ready_for_review",
        ],
        "drafts": False,
        "agent": "codex",
        "context": ["github.pr", "github.diff", "github.files"],
        "repo": True,
    },
    {
        "name": "sentry-triage",
        "prompt": "sentry-triage",
        "on": ["sentry:issue.created"],
        "agent": "claude",
        "context": ["sentry.issue"],
    },
]


def default_routes() -> tuple[RouteConfig, ...]:
    return tuple(RouteConfig.model_validate(route) for route in _DEFAULTS)
