"""The names of the actions taskyard can apply, as the configuration may write them: what
`actions.allow` is checked against when the settings load. `taskyard.actions.models` registers
one parameter model per name (a test keeps the two lists equal)."""

from __future__ import annotations

from collections.abc import Mapping

ACTION_TYPES = (
    "add_labels",
    "remove_labels",
    "set_priority",
    "set_state",
    "assign",
    "comment",
    "create_issue",
    "review",
    "set_check",
    "close_issue",
    "create_pr",
    "merge_pr",
    "mention_users",
    "post_channel",
    "react",
    "run_command",
)
# Names agents write that mean a registered type (the prompts say `add_label`).
ALIASES: Mapping[str, str] = {"add_label": "add_labels", "remove_label": "remove_labels"}

# What the shipped routes (taskyard/config/default_routes.py) may apply when `actions.allow`
# does not say otherwise.
DEFAULT_ALLOW: Mapping[str, tuple[str, ...]] = {
    "linear-triage": (
        "add_labels",
        "remove_labels",
        "set_priority",
        "set_state",
        "assign",
        "comment",
    ),
    "slack-bug-analysis": ("comment", "mention_users", "create_issue", "post_channel"),
    "pr-review": ("review", "comment", "add_labels", "remove_labels", "set_check"),
    "sentry-triage": ("create_issue", "comment"),
}
