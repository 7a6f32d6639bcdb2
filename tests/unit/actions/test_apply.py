"""The apply step: order, outcomes, dry-run, policy, and never sending anything twice."""

from __future__ import annotations

from typing import Any

import pytest

from taskyard.actions.apply import OUTCOME_UNKNOWN, apply_actions
from taskyard.actions.fakes import Crash, FakePlanner, FakeWriter, WriterLookup
from taskyard.actions.keys import markers_in
from taskyard.actions.models import Target, parse_actions
from taskyard.actions.policy import AllowListPolicy
from taskyard.exceptions import (
    PlatformPermanentError,
    PlatformRateLimited,
    PlatformTransientError,
)
from taskyard.records import ActionRecord, ActionStatus, SkipKind
from taskyard.store import MemoryStore

TARGET = Target(platform="github", repo="acme/api", number=7)
EVERYTHING = AllowListPolicy({"pr-review": ["add_labels", "comment", "create_issue", "create_pr"]})
LABELS = {"type": "add_labels", "params": {"labels": ["bug"]}, "reasoning": "a crash"}
COMMENT = {"type": "comment", "params": {"body": "Looks wrong."}, "reasoning": "explain"}
ISSUE = {"type": "create_issue", "params": {"title": "Fix it"}, "reasoning": "track"}


class Harness:
    def __init__(self, *, lookup: bool = False) -> None:
        self.store = MemoryStore()
        self.writer = FakeWriter("github")
        self.planner = FakePlanner(unsupported={"set_check"})
        self.lookup = WriterLookup(self.writer) if lookup else None

    async def apply(
        self, raw: list[Any], *, dry_run: bool = False, policy: AllowListPolicy = EVERYTHING
    ) -> list[ActionRecord]:
        return await apply_actions(
            "t1",
            "pr-review",
            parse_actions("t1", raw),
            TARGET,
            planner=self.planner,
            writers={"github": self.writer},
            policy=policy,
            store=self.store,
            dry_run=dry_run,
            lookup=self.lookup,
        )

    def statuses(self) -> list[ActionStatus]:
        return [a.status for a in self.store.actions_of("t1")]


async def test_applies_in_order_and_records_the_outcomes() -> None:
    h = Harness()
    records = await h.apply([LABELS, COMMENT])
    assert [r.status for r in records] == [ActionStatus.APPLIED, ActionStatus.APPLIED]
    assert [r.path for r in h.writer.applied] == ["/add_labels", "/comment"]
    assert (records[1].external_id, records[1].url) == ("github-2", "https://github/2")
    assert h.store.actions_of("t1") == records
    assert records[1].requests == [h.writer.applied[1].to_json()]


async def test_a_comment_carries_its_key_as_a_hidden_marker() -> None:
    h = Harness()
    [record] = await h.apply([COMMENT])
    body = h.writer.applied[0].body["body"]
    assert body.startswith("Looks wrong.")
    assert markers_in(body) == [record.key]
    assert record.params == {"body": "Looks wrong."}  # the record keeps what the agent wrote


async def test_a_repeated_apply_sends_nothing_twice() -> None:
    h = Harness()
    first = await h.apply([LABELS, COMMENT])
    again = await h.apply([LABELS, COMMENT])
    assert len(h.writer.calls) == 2
    assert again == first


class CrashBeforeSecondAction(MemoryStore):
    """The process dies after the first action is recorded applied, before the second is
    recorded (so before it could be sent)."""

    def __init__(self) -> None:
        super().__init__()
        self.armed = True

    def record_action(self, record: ActionRecord) -> ActionRecord:
        if self.armed and record.index == 1:
            self.armed = False
            raise Crash()
        return super().record_action(record)


async def test_retry_after_a_crash_between_two_actions_sends_only_the_second() -> None:
    h = Harness()
    h.store = CrashBeforeSecondAction()
    with pytest.raises(Crash):
        await h.apply([COMMENT, ISSUE])
    assert h.statuses() == [ActionStatus.APPLIED]
    records = await h.apply([COMMENT, ISSUE])  # the task is retried in a fresh process
    assert [r.status for r in records] == [ActionStatus.APPLIED, ActionStatus.APPLIED]
    assert [r.path for r in h.writer.applied] == ["/comment", "/create_issue"]


async def test_in_flight_idempotent_action_is_sent_again() -> None:
    h = Harness()
    h.writer.fail(Crash(), took_effect=True)
    with pytest.raises(Crash):
        await h.apply([LABELS])
    [record] = await h.apply([LABELS])
    assert record.status is ActionStatus.APPLIED
    assert [r.path for r in h.writer.applied] == ["/add_labels", "/add_labels"]  # harmless


async def test_in_flight_comment_found_by_its_marker_is_not_posted_again() -> None:
    h = Harness(lookup=True)
    h.writer.fail(Crash(), took_effect=True)  # posted, then the process died
    with pytest.raises(Crash):
        await h.apply([COMMENT])
    [record] = await h.apply([COMMENT])
    assert record.status is ActionStatus.APPLIED
    assert len(h.writer.applied) == 1
    assert record.external_id == "found-1"


async def test_in_flight_comment_not_found_by_its_marker_is_posted() -> None:
    h = Harness(lookup=True)
    h.writer.fail(Crash())  # died before the comment reached GitHub
    with pytest.raises(Crash):
        await h.apply([COMMENT])
    [record] = await h.apply([COMMENT])
    assert (record.status, h.lookup.calls if h.lookup else None) == (ActionStatus.APPLIED, 1)
    assert len(h.writer.applied) == 1


async def test_in_flight_action_that_cannot_be_checked_fails_and_is_not_resent() -> None:
    h = Harness()  # no marker lookup
    h.writer.fail(Crash(), took_effect=True)
    with pytest.raises(Crash):
        await h.apply([COMMENT])
    for _ in range(2):
        [record] = await h.apply([COMMENT])
        assert record.status is ActionStatus.FAILED
        assert record.reason is not None and record.reason.startswith(OUTCOME_UNKNOWN)
    assert len(h.writer.calls) == 1


async def test_rate_limit_then_success_applies_once() -> None:
    h = Harness()
    h.writer.fail(PlatformRateLimited("github: 429", platform="github", retry_after=1.0))
    [first] = await h.apply([COMMENT])
    assert (first.status, first.in_doubt) == (ActionStatus.FAILED, False)
    assert first.reason is not None and "rate limited" in first.reason
    [second] = await h.apply([COMMENT])  # the apply step itself does not retry: the next does
    assert second.status is ActionStatus.APPLIED
    assert len(h.writer.applied) == 1
    assert second.attempts == 2


async def test_a_timeout_on_a_comment_is_in_doubt_and_resolved_by_the_marker() -> None:
    h = Harness(lookup=True)
    h.writer.fail(PlatformTransientError("github: timed out", platform="github"), took_effect=True)
    [first] = await h.apply([COMMENT])
    assert (first.status, first.in_doubt) == (ActionStatus.FAILED, True)
    [second] = await h.apply([COMMENT])
    assert second.status is ActionStatus.APPLIED
    assert len(h.writer.applied) == 1


async def test_forbidden_fails_with_the_reason_and_the_next_action_still_applies() -> None:
    h = Harness()
    h.writer.fail(PlatformPermanentError("github: 403 Resource not accessible", status=403))
    records = await h.apply([LABELS, COMMENT])
    assert [r.status for r in records] == [ActionStatus.FAILED, ActionStatus.APPLIED]
    assert records[0].reason == "github: 403 Resource not accessible"
    assert h.statuses() == [ActionStatus.FAILED, ActionStatus.APPLIED]


async def test_an_unexpected_writer_error_is_recorded_and_does_not_stop_the_rest() -> None:
    h = Harness()
    h.writer.fail(RuntimeError("boom"))
    records = await h.apply([LABELS, COMMENT])
    assert [r.status for r in records] == [ActionStatus.FAILED, ActionStatus.APPLIED]
    assert records[0].reason == "unexpected error: RuntimeError('boom')"


async def test_dry_run_records_exactly_the_planned_requests_and_sends_nothing() -> None:
    h = Harness()
    dry = await h.apply([LABELS, COMMENT], dry_run=True)
    assert [r.status for r in dry] == [ActionStatus.DRY_RUN, ActionStatus.DRY_RUN]
    assert h.writer.calls == []
    live = await h.apply([LABELS, COMMENT])  # tokens configured later: the same requests go
    assert [r.requests for r in dry] == [[req.to_json()] for req in h.writer.applied]
    assert [r.status for r in live] == [ActionStatus.APPLIED, ActionStatus.APPLIED]


async def test_policy_refusal_is_skipped_with_the_route_named() -> None:
    h = Harness()
    only_labels = AllowListPolicy({"pr-review": ["add_labels"]})
    records = await h.apply([COMMENT, LABELS], policy=only_labels)
    assert [r.status for r in records] == [ActionStatus.SKIPPED, ActionStatus.APPLIED]
    assert records[0].reason == "comment is not allowed by route pr-review's allow-list"
    assert [r.skipped_as for r in records] == [SkipKind.NOT_ALLOWED, None]
    assert [r.path for r in h.writer.applied] == ["/add_labels"]


async def test_invalid_actions_are_skipped_with_the_error_and_the_rest_continue() -> None:
    h = Harness()
    bad = [
        {"type": "launch_rockets", "params": {}},
        {"type": "comment", "params": {"body": ""}},
        "not an action",
        LABELS,
    ]
    records = await h.apply(bad)
    assert [r.status for r in records] == [ActionStatus.SKIPPED] * 3 + [ActionStatus.APPLIED]
    assert records[0].reason == "unknown action type 'launch_rockets'"
    assert records[1].reason is not None and records[1].reason.startswith(
        "invalid params for comment: body:"
    )
    assert records[2].reason == "an action must be an object, not str"
    assert [r.skipped_as for r in records] == [SkipKind.INVALID] * 3 + [None]
    assert len(h.writer.calls) == 1


async def test_an_action_the_planner_cannot_plan_fails_and_the_rest_continue() -> None:
    h = Harness()
    check = {"type": "set_check", "params": {"name": "ty", "conclusion": "success", "title": "ok"}}
    policy = AllowListPolicy({"pr-review": ["set_check", "add_labels"]})
    records = await h.apply([check, LABELS], policy=policy)
    assert [r.status for r in records] == [ActionStatus.FAILED, ActionStatus.APPLIED]
    assert records[0].reason == "cannot plan: set_check cannot be applied on github"


async def test_a_missing_writer_fails_without_sending() -> None:
    h = Harness()
    records = await apply_actions(
        "t1",
        "pr-review",
        parse_actions("t1", [LABELS]),
        TARGET,
        planner=h.planner,
        writers={},
        policy=EVERYTHING,
        store=h.store,
        dry_run=False,
    )
    assert records[0].status is ActionStatus.FAILED
    assert records[0].reason == "no github writer (no write credentials)"


async def test_a_multi_request_action_resumes_after_its_last_confirmed_request() -> None:
    h = Harness()
    pr = {"type": "create_pr", "params": {"title": "Fix", "head": "fix-1", "base": "main"}}
    h.writer.succeed().fail(PlatformRateLimited("github: 429", platform="github"))
    [first] = await h.apply([pr])
    assert (first.status, first.sent) == (ActionStatus.FAILED, 1)
    [second] = await h.apply([pr])
    assert second.status is ActionStatus.APPLIED
    assert [r.path for r in h.writer.applied] == ["/create_pr/branch", "/create_pr/pull"]


async def test_changed_content_is_a_new_action() -> None:
    h = Harness()
    await h.apply([COMMENT])
    edited = {**COMMENT, "params": {"body": "Looks right after all."}}
    [record] = await h.apply([edited])
    assert record.status is ActionStatus.APPLIED
    assert len(h.writer.applied) == 2
    assert len(h.store.actions_of("t1")) == 2
