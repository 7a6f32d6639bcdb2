"""What starts a fix for failing CI, on real GitHub deliveries (@octokit/webhooks-examples and
shared/webhooks): a failed or timed-out check run or suite names its pull requests, head and
check; other conclusions, other actions, a head that moved on, no pull request and
taskyard's own app never fire; a route fires only when it opts in (`on_ci_failure`)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from taskyard.routing import RoutingSettings, select_routes
from taskyard.routing.cifixes import CiFixRequest, CiPull, ci_fix_request, is_check_event
from taskyard.routing.fixes import FixSkip
from tests.unit.routing.events import event_for, route
from tests.unit.routing.test_fixes import _octokit

SHARED = Path(__file__).resolve().parents[4] / "shared" / "webhooks" / "github"
HEAD = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
SETTINGS = RoutingSettings(bot_user="taskyard-bot")
CI_TYPES = ["github:check_run.completed", "github:check_suite.completed"]


def example(name: str, action: str, conclusion: str | None = None) -> dict[str, Any]:
    """A fresh copy of the first `name.action` example, with `conclusion` if given."""
    for payload in _octokit()[name]:
        if payload["action"] == action and payload[name].get("pull_requests"):
            found = copy.deepcopy(payload)
            if conclusion is not None:
                found[name]["conclusion"] = conclusion
            return found
    raise AssertionError(f"no {name}.{action} example with a pull request")


def test_a_failed_check_run_names_its_pull_request_head_and_check() -> None:
    payload = example("check_run", "completed", "failure")
    found = ci_fix_request("github:check_run.completed", payload)
    assert found == CiFixRequest(
        kind="check_run",
        repo="Codertocat/Hello-World",
        pulls=(CiPull(2, "changes", "master"),),
        head_sha=HEAD,
        check="Octocoders-linter",
        conclusion="failure",
        check_id=payload["check_run"]["id"],
        url=payload["check_run"]["html_url"],
    )
    assert found.trigger == "check 'Octocoders-linter' failure"


def test_the_shared_delivery_and_a_timed_out_suite_fire() -> None:
    shared = json.loads((SHARED / "check_run.completed.json").read_text())
    shared["check_run"]["pull_requests"] = example("check_run", "completed")["check_run"][
        "pull_requests"
    ]
    assert isinstance(ci_fix_request("check_run", shared), CiFixRequest)
    suite = example("check_suite", "completed", "timed_out")
    found = ci_fix_request("check_suite.completed", suite)
    assert isinstance(found, CiFixRequest)
    assert (found.kind, found.check, found.head_sha) == (
        "check_suite",
        suite["check_suite"]["app"]["name"],
        HEAD,
    )
    assert found.pulls[0].number == 2
    assert found.trigger.endswith("timed out")


@pytest.mark.parametrize(
    "conclusion", ["success", "cancelled", "neutral", "skipped", "stale", None]
)
def test_other_conclusions_are_no_failure(conclusion: str | None) -> None:
    for kind in ("check_run", "check_suite"):
        found = ci_fix_request(kind, example(kind, "completed", conclusion or ""))
        assert found == FixSkip(
            f"the {kind.replace('_', ' ')} ended {conclusion or 'without a conclusion'}, "
            "not in failure"
        )


def test_what_never_fires() -> None:
    created = example("check_run", "created")
    assert ci_fix_request("check_run", created) == FixSkip(
        "the check run was created, not completed"
    )
    moved = example("check_run", "completed", "failure")
    moved["check_run"]["pull_requests"][0]["head"]["sha"] = "f" * 40
    assert ci_fix_request("check_run", moved) == FixSkip(
        f"no pull request's head is {HEAD[:12]} any more"
    )
    alone = example("check_run", "completed", "failure")
    alone["check_run"]["pull_requests"] = []
    assert ci_fix_request("check_run", alone) == FixSkip("the check run names no pull request")
    ours = example("check_run", "completed", "failure")
    ours["check_run"]["app"]["slug"] = "taskyard-bot"
    assert ci_fix_request("check_run", ours, ["taskyard-bot[bot]"]) == FixSkip(
        "the check is taskyard's own (taskyard-bot)"
    )
    comment = _octokit()["issue_comment"][0]
    assert ci_fix_request("issue_comment.created", comment) == FixSkip(
        "issue_comment is not a check run or check suite"
    )
    assert is_check_event("github:check_suite.completed")
    assert not is_check_event("github:issue_comment.created")


def test_a_route_fires_on_a_failing_check_only_when_it_opts_in() -> None:
    payload = example("check_run", "completed", "failure")
    event = event_for("github", payload, "check_run")
    ci = route(name="ci-fix", on=CI_TYPES, fix={"on_ci_failure": True})
    plain = route(name="pr-fix", on=CI_TYPES, fix=True)
    decision = select_routes(event, payload, [ci, plain], SETTINGS)
    assert [(m.name, m.triggered_by) for m in decision.matched] == [
        ("ci-fix", "fix: check 'Octocoders-linter' failure")
    ]
    assert [(s.route, s.reason) for s in decision.skipped] == [
        ("pr-fix", "check_run is not a pull request comment or review")
    ]
    passed = example("check_run", "completed", "success")
    decision = select_routes(event_for("github", passed, "check_run"), passed, [ci], SETTINGS)
    assert decision.ignored_reason == "ci-fix: the check run ended success, not in failure"
