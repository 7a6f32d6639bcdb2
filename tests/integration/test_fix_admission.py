"""Routing admits a pull-request fix before its task exists, in each store: a failing check
starts a task on a route with `fix: {on_ci_failure: true}` only on a head taskyard pushed, the
task names the check's pull request; the same check failing again is a flaky rerun, no task;
a comment's fourth attempt is refused; each refusal is the route's decision in words; and
routing the same event again neither counts its fix twice nor makes another task."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from taskyard.config import Settings
from taskyard.models import Decision, Event, new_id
from taskyard.records import CiOutcome, FixStatus
from taskyard.routing.admission import fix_task_id, pr_key
from taskyard.routing.job import Pipeline
from taskyard.store import Store
from tests.unit.routing.events import event_for
from tests.unit.routing.test_cifixes import HEAD, example
from tests.unit.routing.test_fixes import pr_comment

PR = pr_key("Codertocat/Hello-World", 2)
COMMENT_PR = pr_key("Codertocat/Hello-World", 1)
ROUTES = [
    {
        "name": "ci-fix",
        "on": ["github:check_run.completed", "github:check_suite.completed"],
        "agent": "codex",
        "fix": {"on_ci_failure": True},
        "repo": True,
        "who": {"allow_bots": True, "min_permission": "none"},
    },
    {"name": "pr-fix", "on": ["github:issue_comment.created"], "agent": "codex", "fix": True},
]


def pipeline(tmp_path: Path) -> Pipeline:
    settings = Settings.model_validate({"home": tmp_path, "routes": ROUTES})
    return Pipeline(settings, None, clock=lambda: 5000.0)


def failing(check: str = "Octocoders-linter") -> tuple[Event, dict[str, Any]]:
    payload = example("check_run", "completed", "failure")
    payload["check_run"]["name"] = check
    return event_for("github", payload, "check_run"), payload


async def route(store: Store, tmp_path: Path, event: Event) -> tuple[list[Any], list[Any]]:
    decisions, tasks = await pipeline(tmp_path).decide(event, store)
    store.record_routing(decisions, tasks)
    return decisions, tasks


async def test_a_failing_check_on_a_head_taskyard_did_not_push_starts_nothing(
    store: Store, tmp_path: Path
) -> None:
    event, _ = failing()
    decisions, tasks = await route(store, tmp_path, event)
    assert tasks == []
    assert [(d.route, d.decision, d.reason) for d in decisions] == [
        ("ci-fix", Decision.SKIPPED, f"fix refused: taskyard did not push {HEAD[:12]} to {PR}")
    ]


async def test_a_failing_check_on_a_pushed_head_starts_a_fix_of_its_pull_request(
    store: Store, tmp_path: Path
) -> None:
    store.record_push(PR, HEAD, "earlier-task", 4000.0)
    event, payload = failing()
    decisions, [task] = await route(store, tmp_path, event)
    assert [(d.route, d.decision, d.task_id) for d in decisions] == [
        ("ci-fix", Decision.STARTED, task.id)
    ]
    assert task.id == fix_task_id(event.id, "ci-fix")
    pull = payload["check_run"]["pull_requests"][0]
    assert task.spec["repo"]["pr_number"] == pull["number"]
    assert (task.spec["repo"]["sha"], task.spec["repo"]["ref"]) == (HEAD, pull["head"]["ref"])
    [fix] = store.fixes_of(PR)
    assert (fix.task_id, fix.status) == (task.id, FixStatus.QUEUED)

    # Routed again (a crash before the job was marked done): the same task, the same fix.
    _, [again] = await route(store, tmp_path, event)
    assert again.id == task.id
    assert len(store.fixes_of(PR)) == 1

    # The same check fails again on the same head: a flaky rerun, not the model's.
    rerun, _ = failing()
    decisions, tasks = await route(store, tmp_path, rerun)
    assert tasks == []
    assert decisions[0].reason == (
        "flaky rerun, not fixed again: "
        f"Octocoders-linter failed again on {HEAD[:12]}, already fixed there"
    )
    assert store.ci_outcomes("github:Codertocat/Hello-World") == {
        CiOutcome.FIX: 1,
        CiOutcome.RERUN: 1,
    }


async def test_a_comments_fourth_attempt_is_refused_in_words(store: Store, tmp_path: Path) -> None:
    payload = pr_comment("@taskyard fix the typo")
    comment_id = payload["comment"]["id"]
    for _ in range(3):
        event = event_for("github", copy.deepcopy(payload), "issue_comment")
        _, [task] = await route(store, tmp_path, event)
        assert store.fixes_of(COMMENT_PR)[-1].task_id == task.id
    fourth = event_for("github", payload, "issue_comment")
    decisions, tasks = await route(store, tmp_path, fourth)
    assert tasks == []
    assert [(d.route, d.decision, d.reason) for d in decisions] == [
        (
            "pr-fix",
            Decision.SKIPPED,
            f"fix refused: the 4th attempt on comment {comment_id}: at most 3",
        )
    ]


async def test_without_a_store_routing_admits_nothing(tmp_path: Path) -> None:
    event, _ = failing()
    _, [task] = await pipeline(tmp_path).decide(event)
    assert task.id != fix_task_id(event.id, "ci-fix")
    assert len(new_id()) == len(task.id) == len(fix_task_id(event.id, "ci-fix"))
