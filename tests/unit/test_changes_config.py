"""The `changes:` section: its defaults, a file that sets it, and bad values refused by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from taskyard.config import ChangesConfig, load_settings
from taskyard.exceptions import ConfigError


def test_the_defaults_load() -> None:
    changes = load_settings(None, {}).changes
    assert changes == ChangesConfig(
        max_changed_lines=500,
        attempts_per_comment=3,
        fixes_per_pr_per_hour=5,
        cost_ceiling_per_pr_usd=3.0,
        mode="suggest",
        max_revisions=3,
        protected_branches=("main", "master", "release/*"),
    )


def test_a_file_sets_the_section(tmp_path: Path) -> None:
    config = tmp_path / "taskyard.yaml"
    config.write_text(
        "changes:\n  mode: push\n  max_changed_lines: 200\n  protected_branches: [main, 'v*']\n"
    )
    changes = load_settings(config, {}).changes
    assert (changes.mode, changes.max_changed_lines, changes.attempts_per_comment) == (
        "push",
        200,
        3,
    )
    assert changes.is_protected("main") and changes.is_protected("v1.2")
    assert not changes.is_protected("master")


def test_protected_branches_are_glob_patterns() -> None:
    changes = ChangesConfig()
    assert changes.is_protected("release/2026.12")
    assert not changes.is_protected("fix/main") and not changes.is_protected("releases")


@pytest.mark.parametrize(
    ("section", "named"),
    [
        ({"max_changed_lines": -1}, "changes.max_changed_lines"),
        ({"max_changed_lines": 0}, "changes.max_changed_lines"),
        ({"fixes_per_pr_per_hour": -5}, "changes.fixes_per_pr_per_hour"),
        ({"cost_ceiling_per_pr_usd": -3}, "changes.cost_ceiling_per_pr_usd"),
        ({"mode": "yolo"}, "changes.mode"),
        ({"protected_branches": ["main", ""]}, "blank pattern"),
        ({"max_lines": 10}, "changes.max_lines"),
    ],
)
def test_a_bad_value_is_a_config_error_naming_the_key(
    section: dict[str, object], named: str
) -> None:
    with pytest.raises(ConfigError, match="invalid configuration") as caught:
        load_settings(None, {}, {"changes": section})
    assert named in str(caught.value)


def test_an_unknown_mode_names_the_modes() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(None, {}, {"changes": {"mode": "yolo"}})
    assert "'suggest' or 'push'" in str(caught.value)
