"""Without an API token, `taskyard serve` listens on loopback only and says so."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from taskyard.config import Settings
from taskyard.service.server import api_token, loopback_unless_token


def settings(tmp_path: Path, **data: object) -> Settings:
    return Settings.model_validate({"home": tmp_path, **data})


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "example.org"])
def test_no_token_moves_any_other_host_to_loopback_and_warns(
    tmp_path: Path, host: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="taskyard.service.server"):
        moved = loopback_unless_token(settings(tmp_path, host=host, port=9001))
    assert (moved.host, moved.port) == ("127.0.0.1", 9001)
    [record] = caplog.records
    assert "management API is unauthenticated" in record.getMessage()
    assert "127.0.0.1 only" in record.getMessage()
    assert record.__dict__["host_refused"] == host


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.0.0.2"])
def test_no_token_on_loopback_stays_and_still_warns(
    tmp_path: Path, host: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="taskyard.service.server"):
        kept = loopback_unless_token(settings(tmp_path, host=host))
    assert kept.host == host
    [record] = caplog.records
    assert "unauthenticated and listens on loopback only" in record.getMessage()


def test_a_token_listens_where_asked_and_says_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    given = settings(tmp_path, host="0.0.0.0", api_token="s3cret-token")
    with caplog.at_level(logging.WARNING, logger="taskyard.service.server"):
        assert loopback_unless_token(given).host == "0.0.0.0"
    assert caplog.records == []
    assert api_token(given) == "s3cret-token"


def test_an_empty_token_is_no_token(tmp_path: Path) -> None:
    empty = settings(tmp_path, host="0.0.0.0", api_token="")
    assert api_token(empty) is None
    assert loopback_unless_token(empty).host == "127.0.0.1"


def test_the_token_comes_from_the_environment(tmp_path: Path) -> None:
    from taskyard.config import load_settings

    loaded = load_settings(None, {"TASKYARD_API_TOKEN": "from-env", "TASKYARD_HOME": str(tmp_path)})
    assert api_token(loaded) == "from-env"
