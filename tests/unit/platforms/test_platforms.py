"""`Platforms` from the settings: a client per platform with credentials, none otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

from taskyard.config import load_settings
from taskyard.exceptions import ConfigError, PlatformPermanentError
from taskyard.platforms import Platforms
from taskyard.platforms.fakes import FakeGitHub, FakeLinear
from taskyard.platforms.github import GitHubClient
from taskyard.platforms.linear import LinearClient


async def test_only_platforms_with_credentials_get_a_client() -> None:
    env = {"TASKYARD_GITHUB_TOKEN": "ghp_x", "TASKYARD_LINEAR_API_KEY": "lin_api_x"}
    async with Platforms.from_settings(load_settings(None, env).platforms) as platforms:
        assert isinstance(platforms.github, GitHubClient)
        assert isinstance(platforms.linear, LinearClient)
        assert platforms.slack is None and platforms.sentry is None


async def test_app_key_is_read_from_its_file(tmp_path: Path, private_key_pem: str) -> None:
    key = tmp_path / "app.pem"
    key.write_text(private_key_pem)
    env = {"TASKYARD_GITHUB_APP_ID": "1", "TASKYARD_GITHUB_APP_PRIVATE_KEY_FILE": str(key)}
    async with Platforms.from_settings(load_settings(None, env).platforms) as platforms:
        assert isinstance(platforms.github, GitHubClient) and platforms.github.uses_app


def test_unreadable_app_key_file_is_a_config_error(tmp_path: Path) -> None:
    env = {
        "TASKYARD_GITHUB_APP_ID": "1",
        "TASKYARD_GITHUB_APP_PRIVATE_KEY_FILE": str(tmp_path / "missing.pem"),
    }
    with pytest.raises(ConfigError, match=r"missing\.pem"):
        Platforms.from_settings(load_settings(None, env).platforms)


def test_credentials_never_show_in_settings_or_their_errors() -> None:
    secret = "ghp_SETTINGSSECRET"
    settings = load_settings(None, {"TASKYARD_GITHUB_TOKEN": secret})
    assert secret not in repr(settings) and secret not in str(settings.platforms)
    with pytest.raises(ConfigError) as caught:
        load_settings(
            None,
            {"TASKYARD_GITHUB_TOKEN": secret, "TASKYARD_GITHUB_INSTALLATION_ID": "not-a-number"},
        )
    assert "installation_id" in str(caught.value) and secret not in str(caught.value)


def test_half_an_app_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="needs both app_id and a private key") as caught:
        load_settings(None, {"TASKYARD_GITHUB_APP_PRIVATE_KEY": "-----BEGIN KEYSECRET"})
    assert "KEYSECRET" not in str(caught.value)


async def test_permission_lookup_acts_as_the_given_installation() -> None:
    fake = FakeGitHub(
        permissions={("octo/app", "mona"): "admin"}, teams={("octo", "core"): {"mona"}}
    )
    lookup = Platforms(github=fake).permission_lookup(installation_id=42)
    assert await lookup.permission("octo/app", "mona") == "admin"
    assert await lookup.permission("octo/app", "eve") is None
    assert await lookup.in_team("octo", "core", "mona") is True
    assert [args[-1] for _, args in fake.calls] == [42, 42, 42]


def test_permission_lookup_without_github_says_what_is_missing() -> None:
    with pytest.raises(PlatformPermanentError, match="TASKYARD_GITHUB_TOKEN"):
        Platforms().permission_lookup()


async def test_closing_closes_every_client() -> None:
    github, linear = FakeGitHub(), FakeLinear()
    async with Platforms(github=github, linear=linear):
        pass
    assert github.closed and linear.closed
