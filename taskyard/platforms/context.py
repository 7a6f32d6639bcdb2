"""Context fetchers: the named platform reads a route asks for, run in parallel, each with its
timeout, each written to `context/<name>.json` (e.g. `context/github.pr.json`).

What a failure means (the caller decides what to do with the task):
- `unavailable`: the platform has no credentials configured ("github.pr needs
  TASKYARD_GITHUB_TOKEN or a GitHub App ..."). The task runs without it (a newcomer's first
  run, in dry-run mode, works from the delivery alone); the report says what was missing.
- `permanent`: retrying cannot help. An event without what the fetcher needs (a
  `github.pr` on an issue), 401/403/404 and the like. The task should fail with the message.
- `transient`: a timeout, a network error, a 5xx, a rate limit beyond the retry budget. The
  task is worth retrying later.
`ContextReport.error()` gives the exception to raise: `PlatformPermanentError` if any
fetcher failed permanently, else `PlatformTransientError` if any failed transiently."""

from __future__ import annotations

import asyncio
import enum
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TypeVar

import orjson

from taskyard.exceptions import (
    ConfigError,
    CredentialsMissing,
    PlatformError,
    PlatformPermanentError,
    PlatformTransientError,
)
from taskyard.platforms.base import JSONObject
from taskyard.platforms.clients import Platforms
from taskyard.platforms.subject import ContextSubject

log = logging.getLogger(__name__)
Fetcher = Callable[[Platforms, ContextSubject], Awaitable[JSONObject]]
T = TypeVar("T")


def _need(value: T | None, fetcher: str, what: str, subject: ContextSubject) -> T:
    if value is None:
        raise PlatformPermanentError(
            f"{fetcher} needs {what}, and this {subject.source} event carries none"
        )
    return value


def _pull(subject: ContextSubject, fetcher: str) -> tuple[str, int]:
    repo = _need(subject.repo, fetcher, "a repository", subject)
    number = _need(subject.number, fetcher, "a pull request number", subject)
    if not subject.is_pull_request:
        raise PlatformPermanentError(f"{fetcher} needs a pull request; #{number} is an issue")
    return repo, number


def _issue(subject: ContextSubject, fetcher: str) -> tuple[str, int]:
    repo = _need(subject.repo, fetcher, "a repository", subject)
    return repo, _need(subject.number, fetcher, "an issue or pull request number", subject)


async def _github_pr(p: Platforms, s: ContextSubject) -> JSONObject:
    repo, number = _pull(s, "github.pr")
    github = p.require_github("github.pr")
    return await github.pull_request(repo, number, installation_id=s.installation_id)


async def _github_diff(p: Platforms, s: ContextSubject) -> JSONObject:
    repo, number = _pull(s, "github.diff")
    github = p.require_github("github.diff")
    return await github.pull_request_diff(repo, number, installation_id=s.installation_id)


async def _github_files(p: Platforms, s: ContextSubject) -> JSONObject:
    repo, number = _pull(s, "github.files")
    github = p.require_github("github.files")
    return await github.pull_request_files(repo, number, installation_id=s.installation_id)


async def _github_issue(p: Platforms, s: ContextSubject) -> JSONObject:
    repo, number = _issue(s, "github.issue")
    github = p.require_github("github.issue")
    return await github.issue(repo, number, installation_id=s.installation_id)


async def _github_comments(p: Platforms, s: ContextSubject) -> JSONObject:
    repo, number = _issue(s, "github.comments")
    github = p.require_github("github.comments")
    return await github.issue_comments(repo, number, installation_id=s.installation_id)


async def _linear_issue(p: Platforms, s: ContextSubject) -> JSONObject:
    issue_id = _need(s.linear_issue_id, "linear.issue", "a Linear issue id", s)
    return await p.require_linear("linear.issue").issue(issue_id)


async def _linear_related(p: Platforms, s: ContextSubject) -> JSONObject:
    issue_id = _need(s.linear_issue_id, "linear.related", "a Linear issue id", s)
    linear = p.require_linear("linear.related")
    return await linear.related(issue_id, title=s.title, team_id=s.linear_team_id)


async def _linear_team(p: Platforms, s: ContextSubject) -> JSONObject:
    linear = p.require_linear("linear.team")
    team_id = s.linear_team_id
    if team_id is None:
        issue_id = _need(s.linear_issue_id, "linear.team", "a Linear team or issue id", s)
        team_id = await linear.issue_team(issue_id)
    return await linear.team(team_id)


async def _slack_thread(p: Platforms, s: ContextSubject) -> JSONObject:
    channel = _need(s.slack_channel, "slack.thread", "a Slack channel", s)
    thread_ts = _need(s.slack_thread_ts, "slack.thread", "a Slack message ts", s)
    return await p.require_slack("slack.thread").thread(channel, thread_ts)


async def _sentry_issue(p: Platforms, s: ContextSubject) -> JSONObject:
    issue_id = _need(s.sentry_issue_id, "sentry.issue", "a Sentry issue id", s)
    sentry = p.require_sentry("sentry.issue")
    return await sentry.issue(issue_id, organization=s.sentry_organization)


async def _sentry_event(p: Platforms, s: ContextSubject) -> JSONObject:
    issue_id = _need(s.sentry_issue_id, "sentry.event", "a Sentry issue id", s)
    sentry = p.require_sentry("sentry.event")
    return await sentry.latest_event(issue_id, organization=s.sentry_organization)


FETCHERS: Mapping[str, Fetcher] = MappingProxyType(
    {
        "github.pr": _github_pr,  # the pull request: title, body, author, refs, labels
        "github.diff": _github_diff,  # its unified diff (cut at max_diff_bytes)
        "github.files": _github_files,  # its changed files with patches
        "github.issue": _github_issue,  # the issue (or PR) as an issue: labels, assignees
        "github.comments": _github_comments,  # its conversation comments
        "linear.issue": _linear_issue,  # the issue with state, labels, comments, children
        "linear.related": _linear_related,  # 5 other issues with similar titles
        "linear.team": _linear_team,  # the team's labels, states, priorities (cached)
        "slack.thread": _slack_thread,  # the thread's messages
        "sentry.issue": _sentry_issue,  # the issue: title, culprit, level, counts
        "sentry.event": _sentry_event,  # its latest event: stack trace, tags, context
    }
)


def validate_fetcher_names(names: Iterable[str]) -> tuple[str, ...]:
    """The names, deduplicated in order; ConfigError naming any that is not a fetcher."""
    unique = tuple(dict.fromkeys(names))
    unknown = [n for n in unique if n not in FETCHERS]
    if unknown:
        raise ConfigError(
            f"unknown context fetcher(s) {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(FETCHERS)}"
        )
    return unique


class FetchStatus(enum.StrEnum):
    OK = "ok"
    UNAVAILABLE = "unavailable"  # no credentials for the platform: the task goes without
    PERMANENT = "permanent"  # retrying cannot help: the task fails with the error
    TRANSIENT = "transient"  # worth retrying the task later


@dataclass(frozen=True, slots=True)
class FetchResult:
    name: str
    status: FetchStatus
    seconds: float
    path: Path | None = None  # context/<name>.json when status is OK
    error: str | None = None


@dataclass(frozen=True, slots=True)
class ContextReport:
    results: tuple[FetchResult, ...]

    @property
    def ok(self) -> bool:
        return all(r.status is FetchStatus.OK for r in self.results)

    def failed(self, status: FetchStatus) -> tuple[FetchResult, ...]:
        return tuple(r for r in self.results if r.status is status)

    def error(self) -> PlatformError | None:
        """The error a task should fail with: permanent first; None when all succeeded."""
        permanent = self.failed(FetchStatus.PERMANENT)
        if permanent:
            return PlatformPermanentError(_joined(permanent))
        transient = self.failed(FetchStatus.TRANSIENT)
        return PlatformTransientError(_joined(transient)) if transient else None

    def raise_for_failures(self) -> None:
        error = self.error()
        if error is not None:
            raise error

    def as_dict(self) -> JSONObject:
        return {
            r.name: {"status": r.status.value, "seconds": round(r.seconds, 3), "error": r.error}
            for r in self.results
        }


def _joined(results: Sequence[FetchResult]) -> str:
    return "context: " + "; ".join(f"{r.error}" for r in results)


def _write_json(path: Path, data: JSONObject) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2))
    os.replace(temporary, path)


Screen = Callable[[str, JSONObject], JSONObject]  # (fetcher name, answer) → what is written


def _as_is(_name: str, data: JSONObject) -> JSONObject:
    return data


async def _fetch(
    name: str,
    subject: ContextSubject,
    platforms: Platforms,
    context_dir: Path,
    timeout: float,
    screen: Screen = _as_is,
) -> FetchResult:
    started = time.monotonic()
    try:
        async with asyncio.timeout(timeout):
            data = await FETCHERS[name](platforms, subject)
    except TimeoutError:
        message = f"{name} timed out after {timeout:g} s"
        return FetchResult(name, FetchStatus.TRANSIENT, time.monotonic() - started, error=message)
    except PlatformError as exc:
        status = FetchStatus.TRANSIENT
        if isinstance(exc, CredentialsMissing):
            status = FetchStatus.UNAVAILABLE
        elif isinstance(exc, PlatformPermanentError):
            status = FetchStatus.PERMANENT
        text = str(exc) if str(exc).startswith(name) else f"{name}: {exc}"
        return FetchResult(name, status, time.monotonic() - started, error=text)
    path = context_dir / f"{name}.json"
    await asyncio.to_thread(_write_json, path, screen(name, data))
    return FetchResult(name, FetchStatus.OK, time.monotonic() - started, path=path)


async def gather_context(
    names: Sequence[str],
    event_info: ContextSubject,
    platforms: Platforms,
    context_dir: Path,
    timeout: float,
    screen: Screen = _as_is,
) -> ContextReport:
    """Run the named fetchers at once, each within `timeout` seconds (retries included), and
    write each success to `context_dir/<name>.json`, as `screen` makes it (see
    `taskyard.platforms.screen`). Failures are reported, not raised (see the module's doc); an
    unknown name is a ConfigError before anything runs."""
    unique = validate_fetcher_names(names)
    context_dir.mkdir(parents=True, exist_ok=True)
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [
                group.create_task(_fetch(n, event_info, platforms, context_dir, timeout, screen))
                for n in unique
            ]
    except BaseExceptionGroup as failure:  # a bug or a disk error: not a platform failure
        raise failure.exceptions[0] from failure
    report = ContextReport(tuple(t.result() for t in tasks))
    for result in report.results:
        log.info(
            "context fetched",
            extra={
                "fetcher": result.name,
                "status": result.status.value,
                "seconds": round(result.seconds, 3),
                "error": result.error,
            },
        )
    return report
