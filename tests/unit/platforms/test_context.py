"""gather_context with in-memory platforms: parallel fetchers, each with its timeout, results
in context/<name>.json, failures reported as permanent or transient."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from taskyard.exceptions import (
    ConfigError,
    PlatformPermanentError,
    PlatformTransientError,
)
from taskyard.platforms import (
    FETCHERS,
    ContextSubject,
    FetchStatus,
    Platforms,
    gather_context,
    subject_from_payload,
    validate_fetcher_names,
)
from taskyard.platforms.fakes import FakeGitHub, FakeLinear, FakeSentry, FakeSlack

PR = ContextSubject(
    source="github", repo="octo/app", number=7, is_pull_request=True, installation_id=42
)
ISSUE = ContextSubject(source="github", repo="octo/app", number=3)


def github() -> FakeGitHub:
    return FakeGitHub(
        pulls={("octo/app", 7): {"number": 7, "title": "Fix"}},
        diffs={("octo/app", 7): "diff --git a/x b/x\n"},
        files={("octo/app", 7): [{"filename": "x"}]},
        issues={("octo/app", 3): {"number": 3, "title": "Bug"}},
    )


def read(path: Path) -> object:
    return json.loads(path.read_text())


async def test_each_fetcher_writes_its_file(tmp_path: Path) -> None:
    fake = github()
    report = await gather_context(
        ["github.pr", "github.diff", "github.files"],
        PR,
        Platforms(github=fake),
        tmp_path / "context",
        5,
    )
    assert report.ok and report.error() is None
    assert read(tmp_path / "context/github.pr.json") == {"number": 7, "title": "Fix"}
    diff = read(tmp_path / "context/github.diff.json")
    assert isinstance(diff, dict) and diff["diff"].startswith("diff --git")
    assert sorted(p.name for p in (tmp_path / "context").iterdir()) == [
        "github.diff.json",
        "github.files.json",
        "github.pr.json",
    ]
    assert {args[2] for _, args in fake.calls} == {42}  # the event's installation


async def test_missing_credentials_are_unavailable_and_say_which(tmp_path: Path) -> None:
    report = await gather_context(["github.pr", "slack.thread"], PR, Platforms(), tmp_path, 5)
    by_name = {r.name: r for r in report.results}
    assert by_name["github.pr"].status is FetchStatus.UNAVAILABLE
    assert by_name["github.pr"].error is not None
    assert by_name["github.pr"].error.startswith(
        "github.pr needs TASKYARD_GITHUB_TOKEN or a GitHub App"
    )
    # unavailable is no failure (the task goes without); slack.thread fails for its own reason
    error = report.error()
    assert isinstance(error, PlatformPermanentError)
    assert "github.pr" not in str(error) and "slack.thread needs a Slack channel" in str(error)
    assert list(tmp_path.iterdir()) == []


async def test_an_event_without_what_a_fetcher_needs(tmp_path: Path) -> None:
    report = await gather_context(
        ["github.pr", "github.issue"], ISSUE, Platforms(github=github()), tmp_path, 5
    )
    pr, issue = report.results
    assert pr.status is FetchStatus.PERMANENT and "needs a pull request" in (pr.error or "")
    assert issue.status is FetchStatus.OK and issue.path == tmp_path / "github.issue.json"


async def test_a_slow_fetcher_times_out_without_holding_up_the_others(tmp_path: Path) -> None:
    slack = FakeSlack(threads={("C1", "1.0"): [{"text": "hi"}]}, delays={"thread": 30})
    linear = FakeLinear(issues={"i-1": {"id": "i-1", "team": {"id": "t-1"}}})
    subject = ContextSubject(
        source="slack", slack_channel="C1", slack_thread_ts="1.0", linear_issue_id="i-1"
    )
    started = time.monotonic()
    report = await gather_context(
        ["slack.thread", "linear.issue"],
        subject,
        Platforms(linear=linear, slack=slack),
        tmp_path,
        0.2,
    )
    assert time.monotonic() - started < 2
    thread, issue = report.results
    assert thread.status is FetchStatus.TRANSIENT
    assert thread.error == "slack.thread timed out after 0.2 s"
    assert issue.status is FetchStatus.OK and (tmp_path / "linear.issue.json").exists()
    assert isinstance(report.error(), PlatformTransientError)


async def test_permanent_failures_outrank_transient_ones(tmp_path: Path) -> None:
    sentry = FakeSentry(errors={"issue": PlatformTransientError("sentry: 503", platform="sentry")})
    subject = ContextSubject(source="sentry", sentry_issue_id="9")
    report = await gather_context(
        ["sentry.issue", "sentry.event"], subject, Platforms(sentry=sentry), tmp_path, 5
    )
    assert [r.status for r in report.results] == [FetchStatus.TRANSIENT, FetchStatus.PERMANENT]
    with pytest.raises(PlatformPermanentError, match=r"sentry\.event: sentry: .* 404"):
        report.raise_for_failures()
    assert report.as_dict()["sentry.issue"]["status"] == "transient"


async def test_linear_team_found_through_the_issue(tmp_path: Path) -> None:
    linear = FakeLinear(
        issues={"i-1": {"id": "i-1", "team": {"id": "t-1"}}},
        teams={"t-1": {"id": "t-1", "labels": [{"name": "Bug"}]}},
    )
    subject = ContextSubject(source="linear", linear_issue_id="i-1")
    report = await gather_context(["linear.team"], subject, Platforms(linear=linear), tmp_path, 5)
    assert report.ok and read(tmp_path / "linear.team.json") == linear.teams["t-1"]


async def test_unknown_fetcher_is_a_config_error_before_anything_runs(tmp_path: Path) -> None:
    fake = github()
    with pytest.raises(ConfigError, match=r"'github\.prr'"):
        await gather_context(["github.pr", "github.prr"], PR, Platforms(github=fake), tmp_path, 5)
    assert fake.calls == []


def test_fetcher_names_are_validated_and_deduplicated() -> None:
    assert validate_fetcher_names(["github.pr", "github.pr", "slack.thread"]) == (
        "github.pr",
        "slack.thread",
    )
    assert {
        "linear.issue",
        "linear.related",
        "linear.team",
        "github.pr",
        "github.diff",
        "github.files",
        "slack.thread",
        "sentry.issue",
    } <= set(FETCHERS)


async def test_from_a_real_delivery(shared_dir: Path, tmp_path: Path) -> None:
    payload = json.loads((shared_dir / "webhooks/github/pull_request.opened.json").read_text())
    subject = subject_from_payload("github", payload)
    fake = FakeGitHub(pulls={("Codertocat/Hello-World", 2): {"number": 2}})
    report = await gather_context(["github.pr"], subject, Platforms(github=fake), tmp_path, 5)
    assert report.ok and read(tmp_path / "github.pr.json") == {"number": 2}
