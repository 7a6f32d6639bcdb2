"""The allow-list policy hook and the `actions:` configuration."""

from __future__ import annotations

import pytest

from taskyard.actions.models import ParsedAction, Target, parse_actions
from taskyard.actions.policy import AllowListPolicy, Verdict
from taskyard.config import load_settings
from taskyard.exceptions import ConfigError

TARGET = Target(platform="github", repo="acme/api", number=1)


def action(kind: str, params: dict[str, object]) -> ParsedAction:
    [parsed] = parse_actions("t1", [{"type": kind, "params": params}])
    assert isinstance(parsed, ParsedAction)
    return parsed


def test_allow_list_per_route() -> None:
    policy = AllowListPolicy({"pr-review": ["comment"]})
    comment = action("comment", {"body": "x"})
    merge = action("merge_pr", {})
    assert policy.assess("pr-review", comment, TARGET).allowed
    denied = policy.assess("pr-review", merge, TARGET)
    assert (denied.verdict, denied.reason) == (
        Verdict.DENY,
        "merge_pr is not allowed by route pr-review's allow-list",
    )
    assert not policy.assess("unlisted", comment, TARGET).allowed


def test_default_config_allows_the_shipped_routes_and_runs_dry_without_tokens() -> None:
    settings = load_settings(None, {})
    policy = AllowListPolicy(settings.actions.allow)
    assert policy.assess("pr-review", action("review", {"summary": "ok"}), TARGET).allowed
    assert not policy.assess("pr-review", action("merge_pr", {}), TARGET).allowed
    assert settings.actions.dry_run_for("pr-review", settings.platforms.can_write)
    live = load_settings(None, {"TASKYARD_SLACK_BOT_TOKEN": "xoxb-1"})
    assert not live.actions.dry_run_for("pr-review", live.platforms.can_write)


def test_configured_allow_lists_merge_over_the_defaults() -> None:
    settings = load_settings(
        None,
        {},
        {
            "actions": {
                "allow": {"pr-review": ["add_label"], "deploys": ["merge_pr"]},
                "dry_run_routes": ["deploys"],
            }
        },
    )
    allow = settings.actions.allow
    assert allow["pr-review"] == ("add_labels",)
    assert allow["deploys"] == ("merge_pr",)
    assert "comment" in allow["linear-triage"]
    assert settings.actions.dry_run_for("deploys", can_write=True)
    assert not settings.actions.dry_run_for("pr-review", can_write=True)


def test_global_dry_run_wins_over_tokens_and_false_forces_live() -> None:
    forced = load_settings(None, {"TASKYARD_GITHUB_TOKEN": "t"}, {"actions": {"dry_run": True}})
    assert forced.actions.dry_run_for("pr-review", forced.platforms.can_write)
    live = load_settings(None, {}, {"actions": {"dry_run": False}})
    assert not live.actions.dry_run_for("pr-review", live.platforms.can_write)


def test_unknown_action_types_in_the_config_are_refused() -> None:
    with pytest.raises(ConfigError, match="unknown action types"):
        load_settings(None, {}, {"actions": {"allow": {"pr-review": ["launch_rockets"]}}})


def test_the_configurable_action_names_are_the_registered_ones() -> None:
    """`actions.allow` is checked (at load) against the names the configuration knows; each
    must have a registered parameter model, and every registered type a name."""
    from taskyard.actions.models import REGISTRY
    from taskyard.config.action_names import ACTION_TYPES, ALIASES, DEFAULT_ALLOW

    assert sorted(REGISTRY) == sorted(ACTION_TYPES)
    assert set(ALIASES.values()) <= set(REGISTRY)
    assert {t for types in DEFAULT_ALLOW.values() for t in types} <= set(REGISTRY)
