"""TaskActions: result actions, tool calls, reports, outcome references, plain reasons."""

from __future__ import annotations

from typing import Any

import pytest

from taskyard.actions.apply import Planner
from taskyard.actions.fakes import FakePlanner, FakeWriter
from taskyard.actions.models import Target
from taskyard.actions.service import (
    ActionService,
    TaskActions,
    failures_of,
    outcome_of,
    plain_reason,
    redact,
)
from taskyard.config import Settings
from taskyard.lifecycle import EndingKind
from taskyard.models import TaskStatus
from taskyard.records import TOOL_INDEX, ActionStatus, ReportKind
from taskyard.store import MemoryStore

GITHUB = Target(platform="github", repo="acme/api", number=7, pull_request=False)
SLACK = Target(platform="slack", channel="C1", thread_ts="1.0", message_ts="1.0")
SENTRY = Target(platform="sentry")
LABELS = {"type": "add_labels", "params": {"labels": ["bug"]}, "reasoning": "a bug"}


class Fixed:
    def __init__(self, planner: Planner) -> None:
        self._planner = planner

    async def planner(self, target: Target, *, dry_run: bool = False) -> Planner:
        return self._planner


def acts(
    target: Target = GITHUB,
    dry_run: bool = False,
    secrets: tuple[str, ...] = (),
    **settings: Any,
) -> tuple[TaskActions, FakeWriter, MemoryStore]:
    config = Settings.model_validate(
        {"actions": {"allow": {"r": ["add_labels", "comment", "create_issue"]}}, **settings}
    )
    store = MemoryStore()
    writer = FakeWriter(target.platform)
    writers = {target.platform: writer}
    service = ActionService(config, store, writers, Fixed(FakePlanner()), secrets=secrets)
    return TaskActions(service, "task1", "r", target, dry_run), writer, store


async def test_result_actions_are_applied_in_order_and_refusals_recorded() -> None:
    a, writer, _ = acts()
    merge = {"type": "merge_pr", "params": {}, "reasoning": "ship it"}
    records = await a.apply_result([LABELS, merge])
    assert [(r.type, r.status) for r in records] == [
        ("add_labels", ActionStatus.APPLIED),
        ("merge_pr", ActionStatus.SKIPPED),
    ]
    assert records[1].reason == "merge_pr is not allowed by route r's allow-list"
    assert [r.path for r in writer.calls] == ["/add_labels"]
    assert failures_of(records) is None


async def test_a_tool_call_is_applied_once_and_the_same_result_action_is_not_repeated() -> None:
    a, writer, store = acts()
    first = await a.apply_tool_call("add_labels", {"labels": ["bug"]}, "a bug")
    again = await a.apply_tool_call("add_labels", {"labels": ["bug"]}, "a bug")
    assert (first.index, first.status, again.key) == (TOOL_INDEX, ActionStatus.APPLIED, first.key)
    [record] = await a.apply_result([LABELS])
    assert record.status is ActionStatus.SKIPPED
    assert record.reason == f"already applied through the add_labels tool ({first.key})"
    assert len(writer.calls) == 1
    assert len(store.actions_of("task1")) == 2  # the tool call and the skipped result action


async def test_a_tool_call_goes_through_the_policy() -> None:
    a, writer, _ = acts()
    record = await a.apply_tool_call("merge_pr", {}, "")
    assert record.status is ActionStatus.SKIPPED and writer.calls == []


async def test_a_later_action_can_name_what_an_earlier_one_created() -> None:
    a, writer, _ = acts()
    create = {"type": "create_issue", "params": {"title": "Crash"}, "reasoning": "file it"}
    reply = {
        "type": "comment",
        "params": {"body": "Filed as {{actions.0.url}} ({{ actions.0.id }}); {{actions.5.url}}"},
        "reasoning": "tell them",
    }
    records = await a.apply_result([create, reply])
    sent = writer.calls[1].body["body"]
    assert sent.startswith("Filed as https://github/1 (github-1); {{actions.5.url}}\n")
    assert records[1].params["body"].startswith("Filed as https://github/1")


async def test_failures_name_each_failed_action() -> None:
    a, writer, _ = acts()
    from taskyard.exceptions import PlatformPermanentError

    writer.fail(PlatformPermanentError("github: 403 Forbidden", platform="github", status=403))
    records = await a.apply_result([LABELS])
    assert failures_of(records) == "actions: add_labels (#0) failed: github: 403 Forbidden"


async def test_start_report_reacts_on_github_and_slack_but_not_on_linear_by_default() -> None:
    a, _writer, _ = acts()
    [record] = await a.report_start()
    assert (record.index, record.type, record.params) == (
        ReportKind.START,
        "react",
        {"emoji": "eyes"},
    )
    s, swriter, _ = acts(SLACK)
    assert len(await s.report_start()) == 1 and swriter.calls[0].path == "/react"
    linear = Target(platform="linear", issue_id="i1", team_id="t1")
    lin, lwriter, _ = acts(linear)
    assert await lin.report_start() == [] and lwriter.calls == []
    lin2, lwriter2, _ = acts(linear, reporting={"start": {"linear": True}})
    [note] = await lin2.report_start()
    assert (note.type, note.params["body"]) == ("comment", "taskyard is working on this.")
    assert await lin2.report_start() == [note]  # a second attempt does not post again
    assert len(lwriter2.calls) == 1


async def test_the_summary_is_posted_only_when_nothing_was_said_there() -> None:
    a, _writer, _ = acts()
    labels = await a.apply_result([LABELS])
    [summary] = await a.report_end(TaskStatus.SUCCEEDED, None, "Labelled.", labels)
    assert (summary.index, summary.params["body"]) == (
        ReportKind.END,
        "**taskyard** (r): Labelled.",
    )
    b, _bwriter, _ = acts()
    comment = {"type": "comment", "params": {"body": "Seen"}, "reasoning": ""}
    said = await b.apply_result([comment])
    assert await b.report_end(TaskStatus.SUCCEEDED, None, "Done.", said) == []


async def test_a_failure_is_posted_in_plain_words_without_secrets() -> None:
    a, writer, _ = acts(secrets=("sk-very-secret",))
    reason = "agent exited with code 1: auth sk-very-secret refused"
    [post] = await a.report_end(TaskStatus.FAILED, reason, None, [])
    body = post.params["body"]
    assert body.startswith("**taskyard** could not finish r. The agent failed: agent exited")
    assert "sk-very-secret" not in body and "***" in body
    assert "sk-very-secret" not in str(writer.calls)


async def test_the_notify_channel_hears_of_every_ending_even_without_a_source() -> None:
    a, _writer, _ = acts(SENTRY, reporting={"notify_channel": "C9"})
    records = await a.report_end(TaskStatus.TIMED_OUT, "timed out after 300 s", None, [], "x")
    [note] = records  # nothing can be posted on a Sentry issue
    assert note.index == ReportKind.NOTIFY and note.params["channel"] == "C9"
    assert (
        note.params["text"]
        == "❌ r failed for x: The agent ran out of time (timed out after 300 s)."
    )


async def test_a_dry_run_whose_actions_all_failed_planning_fails() -> None:
    config = Settings.model_validate({"actions": {"allow": {"r": ["add_labels", "comment"]}}})
    writer = FakeWriter("github")
    planner = Fixed(FakePlanner(unsupported={"comment"}))
    service = ActionService(config, MemoryStore(), {"github": writer}, planner)
    a = TaskActions(service, "task1", "r", GITHUB, dry_run=True)
    comment = {"type": "comment", "params": {"body": "Seen"}, "reasoning": ""}
    records = await a.apply_result([comment, comment])
    assert [r.status for r in records] == [ActionStatus.FAILED] * 2 and writer.calls == []
    status, reason = outcome_of(records, dry_run=True)
    assert status is TaskStatus.FAILED
    assert reason is not None and reason.startswith("dry run: no action could be planned; ")
    b = TaskActions(service, "task2", "r", GITHUB, dry_run=True)
    mixed = await b.apply_result([LABELS, comment])
    assert [r.status for r in mixed] == [ActionStatus.DRY_RUN, ActionStatus.FAILED]
    assert outcome_of(mixed, dry_run=True) == (TaskStatus.SUCCEEDED, None)


async def test_in_dry_run_reports_are_recorded_not_sent() -> None:
    a, writer, _ = acts(dry_run=True)
    [record] = await a.report_start()
    assert record.status is ActionStatus.DRY_RUN and writer.calls == []


@pytest.mark.parametrize(
    ("status", "reason", "expected"),
    [
        (TaskStatus.TIMED_OUT, "timed out after 60 s", "The agent ran out of time"),
        (TaskStatus.FAILED, "tool-call budget of 50 exceeded", "The agent used up its budget"),
        (TaskStatus.FAILED, "actions: comment (#1) failed: 403", "could not be applied: comment"),
        (TaskStatus.FAILED, "github: 429 rate limited", "A platform rate-limited taskyard"),
        (TaskStatus.FAILED, "invalid result: (top): x", "The agent's answer was not usable"),
        (TaskStatus.FAILED, "context: linear.issue: 404", "could not gather what the agent"),
        (TaskStatus.FAILED, "worker lost: attempt 2", "The worker running the task stopped"),
        (TaskStatus.FAILED, "agent exited with code 2", "The agent failed: agent exited"),
        (TaskStatus.CANCELLED, "cancelled", "The task was cancelled"),
    ],
)
def test_plain_reasons(status: TaskStatus, reason: str, expected: str) -> None:
    assert expected in plain_reason(status, reason)


@pytest.mark.parametrize(
    ("kind", "reason", "expected"),
    [
        (
            EndingKind.TESTS_FAILED,
            "test: `make` failed (exit 2)",
            "The tests taskyard ran did not pass: `make`",
        ),
        (
            EndingKind.CHANGE_REFUSED,
            "deliver: 'main' is protected",
            "taskyard refused the change: deliver: 'main'",
        ),
        (
            EndingKind.REVIEW_REFUSED,
            "review: still needs revision",
            "taskyard refused the change: review",
        ),
    ],
)
def test_plain_reasons_of_a_change_by_how_it_ended(kind: str, reason: str, expected: str) -> None:
    assert expected in plain_reason(TaskStatus.FAILED, reason, kind)
    assert "The agent failed" in plain_reason(TaskStatus.FAILED, reason)  # not by its words


def test_redact_leaves_short_strings_alone() -> None:
    assert redact("key abc and secret-1234", ("abc", "secret-1234")) == "key abc and ***"


async def test_each_outcome_is_counted_in_metrics() -> None:
    from taskyard.observe.metrics import Metrics

    a, _, _ = acts()
    metrics = Metrics()
    a.service.on_outcome.append(metrics.action_recorded)
    await a.apply_result([LABELS, {"type": "merge_pr", "params": {}, "reasoning": ""}])
    sample = metrics.registry.get_sample_value
    labels = {"route": "r", "type": "add_labels", "status": "applied"}
    assert sample("taskyard_actions_total", labels) == 1
    assert (
        sample("taskyard_actions_total", {**labels, "type": "merge_pr", "status": "skipped"}) == 1
    )


async def test_a_comment_made_through_a_tool_counts_as_said() -> None:
    a, writer, _ = acts()
    await a.apply_tool_call("comment", {"body": "On it"}, "")
    repeated = await a.apply_result([{"type": "comment", "params": {"body": "On it"}}])
    assert repeated[0].status is ActionStatus.SKIPPED
    assert await a.report_end(TaskStatus.SUCCEEDED, None, "Done.", repeated) == []
    assert len(writer.calls) == 1
