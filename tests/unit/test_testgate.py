"""The test gate's settings and its words: `test_commands` on a route, the `changes:` limits,
the summary posted back and the redacted output tail (real runs: tests/integration)."""

from __future__ import annotations

from pathlib import Path

import pytest

from taskyard.config import ChangesConfig, load_settings
from taskyard.config.routes import RouteConfig
from taskyard.exceptions import ConfigError
from taskyard.run.testgate import CommandResult, GateSettings, TestReport, _Tail
from taskyard.util.redaction import Redactor

ROUTE = {"name": "pr-fix", "on": ["github:issue_comment.created"], "agent": "claude"}


def test_a_route_has_no_test_commands_unless_it_names_them() -> None:
    assert RouteConfig.model_validate(ROUTE).test_commands == ()
    route = RouteConfig.model_validate({**ROUTE, "test_commands": ["ruff check .", "pytest -q"]})
    assert route.test_commands == ("ruff check .", "pytest -q")


def test_a_blank_test_command_is_refused() -> None:
    with pytest.raises(ValueError, match="blank command"):
        RouteConfig.model_validate({**ROUTE, "test_commands": ["pytest", "  "]})


def test_the_gate_limits_default_and_load(tmp_path: Path) -> None:
    assert GateSettings.of(ChangesConfig()) == GateSettings(600.0, 4000)
    config = tmp_path / "taskyard.yaml"
    config.write_text("changes:\n  test_timeout_seconds: 90\n  test_output_tail_bytes: 500\n")
    assert GateSettings.of(load_settings(config, {}).changes) == GateSettings(90.0, 500)
    config.write_text("changes:\n  test_timeout_seconds: 0\n")
    with pytest.raises(ConfigError, match="test_timeout_seconds"):
        load_settings(config, {})


def test_the_summary_names_the_failure_its_exit_and_its_last_output() -> None:
    report = TestReport(
        (
            CommandResult("ruff check .", 0, 0.4, ""),
            CommandResult("pytest -q", 1, 3.24, "E   assert 1 == 2\n1 failed\n"),
        ),
        not_run=("mypy",),
    )
    assert not report.passed
    assert report.summary() == (
        "`pytest -q` failed (exit 1) after 3.2 s; not run: `mypy`; "
        "last output:\nE   assert 1 == 2\n1 failed\n"
    )


def test_the_summary_of_a_timeout_a_kill_a_pass_and_nothing() -> None:
    timed_out = TestReport((CommandResult("sleep 9", None, 2.0, "", timed_out=True),))
    assert timed_out.summary() == "`sleep 9` timed out after 2.0 s"
    killed = TestReport((CommandResult("make", -9, 1.0, "boom"),))
    assert killed.summary() == "`make` failed (killed by SIGKILL) after 1.0 s; last output:\nboom"
    passed = TestReport((CommandResult("a", 0, 1.0, ""), CommandResult("b", 0, 0.5, "")))
    assert passed.passed and passed.summary() == "tests passed (`a`, `b`) in 1.5 s"
    assert TestReport(()).passed
    assert TestReport(()).summary() == "no test commands are configured: nothing was run"


def test_the_tail_is_bounded_and_a_secret_across_its_cut_is_redacted_whole() -> None:
    secret = "s3cr3t-value-0123456789"
    tail = _Tail(40, Redactor([secret]))
    for chunk in (b"x" * 5000, secret[:7].encode(), secret[7:].encode(), b"y" * 30):
        tail.feed(chunk)
    assert len(tail.data) <= 40 + 2 * len(secret)  # the buffer stays small
    text = tail.text()
    assert len(text.encode()) <= 40 and text.endswith("y" * 30)
    assert secret[-8:] not in text and "[redacted]"[-5:] in text


def test_a_character_cut_at_the_start_of_the_tail_is_dropped() -> None:
    tail = _Tail(5, Redactor())
    tail.feed("abcé1234".encode())  # é is two bytes: the cut falls inside it
    assert tail.text() == "1234"
