"""A task's actions applied end to end in the executor: a command agent proposes, the real
GitHub writer sends to the recording GitHub server (tests/platform_servers.py), each store
keeps the records. Crash between two actions, 429 then 200, 403, dry-run, reports, secrets."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from taskyard.lifecycle import Kind
from taskyard.models import TaskStatus
from taskyard.platforms.writes import PlannedRequest, PlatformWriter, WriteResult
from taskyard.records import ActionStatus, ReportKind
from taskyard.store.base import Store
from tests.integration.actions_harness import (
    COMMENT,
    ISSUE,
    LABELS,
    TOKEN,
    PlatformServer,
    Reply,
    gh,
    posts,
    result,
    settings_for,
    yards,
)

__all__ = ["gh", "yards"]  # fixtures


class Crash(BaseException):
    """The worker dying mid-apply: nothing in taskyard catches it."""


async def test_a_task_reacts_applies_in_order_and_posts_no_extra_summary(
    tmp_path: Path, gh: PlatformServer, store: Store, yards: Any
) -> None:
    yard = yards(settings_for(tmp_path, gh, result(LABELS, COMMENT)), store)
    task = yard.queue_task()
    assert await yard.executor.run(task.id) == "succeeded"
    sent = [(r.method, r.path) for r in gh.requests]
    assert sent == [
        ("POST", f"{ISSUE}/reactions"),
        ("POST", f"{ISSUE}/labels"),
        ("POST", f"{ISSUE}/comments"),
    ]
    assert gh.problems == []
    assert posts(gh, "/reactions")[0].json() == {"content": "eyes"}
    comment = posts(gh, "/comments")[0].json()["body"]
    assert comment.startswith("Thanks, looking.") and "<!-- taskyard:" in comment
    records = yard.actions(task.id)
    assert sorted(records) == [ReportKind.START, 0, 1]  # the comment said enough: no summary
    assert {r.status for r in records.values()} == {ActionStatus.APPLIED}
    assert records[1].url  # the posted comment's URL, from GitHub's answer


async def test_without_a_posted_message_the_summary_is_posted(
    tmp_path: Path, gh: PlatformServer, store: Store, yards: Any
) -> None:
    yard = yards(settings_for(tmp_path, gh, result(LABELS, summary="Labelled it bug.")), store)
    task = yard.queue_task()
    assert await yard.executor.run(task.id) == "succeeded"
    [summary] = posts(gh, "/comments")
    assert summary.json()["body"].startswith("**taskyard** (r): Labelled it bug.")
    assert yard.actions(task.id)[ReportKind.END].status is ActionStatus.APPLIED


class CrashingWriter:
    """A real writer that dies on the first request to a path ending in `suffix`, before or
    after the platform got it."""

    def __init__(self, inner: PlatformWriter, suffix: str, after: bool) -> None:
        self.platform = inner.platform
        self.inner = inner
        self.aclose = getattr(inner, "aclose")  # noqa: B009
        self.suffix = suffix
        self.after = after
        self.crashed = False

    async def send(self, request: PlannedRequest) -> WriteResult:
        if request.path.endswith(self.suffix) and not self.crashed:
            self.crashed = True
            if self.after:
                await self.inner.send(request)
            raise Crash()
        return await self.inner.send(request)


@pytest.mark.parametrize("reached_github", [False, True])
async def test_a_crash_between_two_actions_applies_the_rest_once(
    tmp_path: Path, gh: PlatformServer, store: Store, yards: Any, reached_github: bool
) -> None:
    settings = settings_for(tmp_path, gh, result(LABELS, COMMENT))
    crashing = yards(settings, store, lambda w: CrashingWriter(w, "/comments", reached_github))
    task = crashing.queue_task()
    with pytest.raises(Crash):
        await crashing.executor.run(task.id)
    assert store.get_task(task.id).status is TaskStatus.APPLYING
    if reached_github:  # the retry finds the comment by its hidden marker
        [posted] = posts(gh, "/comments")
        found = {"id": 7, "body": posted.json()["body"], "html_url": "https://gh/c/7"}
        gh.queue("GET", f"{ISSUE}/comments", Reply(200, [found]))
    fresh = yards(settings, store)  # a new worker picks the task up again
    assert await fresh.executor.run(task.id) == "succeeded"
    assert len(posts(gh, "/labels")) == 1  # never the first twice
    assert len(posts(gh, "/comments")) == 1  # the second exactly once
    records = fresh.actions(task.id)
    assert records[1].status is ActionStatus.APPLIED
    done = store.get_task(task.id)
    assert (done.status, done.attempts) == (TaskStatus.SUCCEEDED, 1)  # the agent ran once


async def test_rate_limited_then_ok_applies_once(
    tmp_path: Path, gh: PlatformServer, store: Store, yards: Any
) -> None:
    gh.queue(
        "POST",
        f"{ISSUE}/comments",
        Reply(429, {"message": "secondary rate limit"}, {"Retry-After": "0"}),
    )
    yard = yards(settings_for(tmp_path, gh, result(COMMENT)), store)
    task = yard.queue_task()
    assert await yard.executor.run(task.id) == "succeeded"
    assert len(posts(gh, "/comments")) == 2  # the 429, then the one that took
    record = yard.actions(task.id)[0]
    assert (record.status, record.sent) == (ActionStatus.APPLIED, 1)


async def test_forbidden_fails_the_task_and_posts_the_reason_back(
    tmp_path: Path, gh: PlatformServer, store: Store, yards: Any
) -> None:
    gh.queue(
        "POST",
        f"{ISSUE}/labels",
        Reply(403, {"message": "Resource not accessible by integration"}),
    )
    yard = yards(settings_for(tmp_path, gh, result(LABELS, COMMENT)), store)
    task = yard.queue_task()
    assert await yard.executor.run(task.id) == "failed"
    done = store.get_task(task.id)
    assert done.reason is not None
    assert done.reason.startswith("actions: add_labels (#0) failed:") and "403" in done.reason
    records = yard.actions(task.id)
    assert records[0].status is ActionStatus.FAILED
    assert records[1].status is ActionStatus.APPLIED  # one failure hides nothing
    thanks, failure = (r.json()["body"] for r in posts(gh, "/comments"))
    assert thanks.startswith("Thanks, looking.")
    assert failure.startswith("**taskyard** could not finish r.")
    assert "could not be applied" in failure and "403" in failure


async def test_dry_run_records_exactly_what_the_live_run_sends(
    tmp_path: Path, gh: PlatformServer, store: Store, yards: Any
) -> None:
    res = result(LABELS, COMMENT)
    live = yards(settings_for(tmp_path / "live", gh, res), store)
    live_task = live.queue_task()
    assert await live.executor.run(live_task.id) == "succeeded"
    sent = [(r.method, r.path, r.json()) for r in gh.requests]
    gh.requests.clear()
    # No token at all: dry-run by default, and nothing reaches GitHub.
    dry = yards(settings_for(tmp_path / "dry", gh, res, token=False), store)
    dry_task = dry.queue_task()
    assert await dry.executor.run(dry_task.id) == "succeeded"
    assert gh.requests == []
    records = sorted(dry.actions(dry_task.id).values(), key=lambda r: (r.index < 0, r.index))
    assert {r.status for r in records} == {ActionStatus.DRY_RUN}
    planned = [
        (q["method"], q["path"], q["body"])
        for r in sorted(records, key=lambda r: r.created_at)
        for q in r.requests
    ]

    def unmarked(items: list[Any], task_id: str) -> list[Any]:
        # Each task's hidden marker carries its own task id: compare with it blanked.
        blanked: list[Any] = json.loads(json.dumps(items).replace(task_id, "TASK"))
        return blanked

    assert unmarked(planned, dry_task.id) == unmarked(sent, live_task.id)


async def test_no_secret_in_workspace_agent_env_logs_or_records(
    tmp_path: Path, gh: PlatformServer, store: Store, yards: Any, caplog: pytest.LogCaptureFixture
) -> None:
    gh.queue("POST", f"{ISSUE}/labels", Reply(403, {"message": f"bad token {TOKEN[:6]}"}))
    settings = settings_for(tmp_path, gh, result(LABELS, COMMENT))
    assert TOKEN in settings.secrets()
    yard = yards(settings, store)
    task = yard.queue_task()
    with caplog.at_level(logging.DEBUG):
        assert await yard.executor.run(task.id) == "failed"
    done = store.get_task(task.id)
    assert done.workspace is not None
    files = [p for p in Path(done.workspace).rglob("*") if p.is_file()]
    assert any(p.name == "env.json" for p in files)
    env = json.loads(next(p for p in files if p.name == "env.json").read_text())
    assert TOKEN not in json.dumps(env)
    for path in files:
        assert TOKEN.encode() not in path.read_bytes(), path
    for record in caplog.records:
        assert TOKEN not in record.getMessage() and TOKEN not in json.dumps(
            record.__dict__, default=str
        )
    texts = [json.dumps(a.__dict__ if hasattr(a, "__dict__") else repr(a), default=str)
             for a in store.actions_of(task.id)]  # fmt: skip
    texts.append(repr(done))
    for text in texts:
        assert TOKEN not in text
    for request in gh.requests:  # only ever in the Authorization header
        assert TOKEN not in request.everything_but_auth()


async def test_retrying_an_apply_failure_applies_only_what_failed(
    tmp_path: Path, gh: PlatformServer, store: Store, yards: Any
) -> None:
    gh.queue("POST", f"{ISSUE}/labels", Reply(403, {"message": "Resource not accessible"}))
    yard = yards(settings_for(tmp_path, gh, result(LABELS, COMMENT)), store)
    task = yard.queue_task()
    assert await yard.executor.run(task.id) == "failed"
    # What `taskyard tasks retry` does for a task whose agent succeeded: apply again.
    assert store.transition(task.id, Kind.REAPPLY, workflow_id="wf-retry", updated_at=time.time())
    assert [t.id for t in store.tasks_to_dispatch(10)] == [task.id]
    assert await yard.executor.run(task.id) == "succeeded"
    assert len(posts(gh, "/labels")) == 2  # the 403, then the one that took
    assert [c.json()["body"].split("\n")[0] for c in posts(gh, "/comments")] == [
        "Thanks, looking.",  # applied once, not again
        "**taskyard** could not finish r. The agent's work could not be applied: "
        "add_labels (#0) failed: github: POST /repos/Codertocat/Hello-World/issues/1/labels "
        "answered 403: Resource not accessible (the credentials lack permission; permanent)",
    ]
    done = store.get_task(task.id)
    assert (done.status, done.reason, done.attempts) == (TaskStatus.SUCCEEDED, None, 1)
    assert yard.actions(task.id)[0].status is ActionStatus.APPLIED
