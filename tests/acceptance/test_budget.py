"""The monthly budget with the real CLI: a budget of $0.01, an agent reporting $0.02 for its
task; the next delivery's task waits with reason `budget exhausted` and its GitHub issue is
told so (once); a restart with a raised budget runs it, losing nothing. (The boxed agent can write
only in its own task directory: each run prints a line naming its task to its log, which the
test reads with `tasks logs`, and counts as one of the task's `attempts`.)"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.acceptance.run_harness import SHARED, RunYard
from tests.acceptance.test_serve import wait_for
from tests.platform_servers import PlatformServer, github_server

pytestmark = pytest.mark.slow

TOKEN = "ghp_BUDGETtokenTHATmustNEVERleak00000000000"
ISSUES = "/repos/Codertocat/Hello-World/issues"
AGENT = r"""
import json, os, pathlib
print(json.dumps({"type": "message", "text": "agent run for " + os.environ["TASK_ID"]}))
usage = {"type": "usage", "input_tokens": 5000, "output_tokens": 800, "cost_usd": 0.02}
print(json.dumps(usage), flush=True)
pathlib.Path(os.environ["OUTPUT_DIR"], "result.json").write_text(json.dumps({
    "success": True, "actions": [], "analysis": "looked", "summary": "Triaged it."}))
"""
CONFIG = """
queue:
  polling_interval_sec: 0.05
agents:
  agent: {agent}
routes:
  - name: triage
    on: ["github:issues.opened"]
    agent: agent
platforms:
  github: {{base_url: "{base_url}"}}
  backoff_seconds: 0.01
budget:
  recheck_seconds: 0.5
log_level: INFO
"""


@pytest.fixture
def gh() -> Iterator[PlatformServer]:
    with github_server() as server:
        yield server


def issue_opened(number: int) -> dict[str, Any]:
    payload = json.loads((SHARED / "github" / "issues.opened.json").read_text())
    payload["issue"]["number"] = number
    payload["issue"]["id"] += number
    return dict(payload)


def comments_on(gh: PlatformServer, number: int) -> list[str]:
    return [
        str(r.json()["body"])
        for r in gh.requests
        if r.method == "POST" and r.path == f"{ISSUES}/{number}/comments"
    ]


def runs_of(ty: RunYard, task_id: str) -> list[str]:
    """The tasks the agent said it ran for, in the task's kept log."""
    logs = ty.cli("tasks", "logs", task_id, check=False).stdout
    return re.findall(r"agent run for (\w+)", logs)


def test_a_spent_budget_holds_the_next_task_and_tells_its_source(
    tmp_path: Path, gh: PlatformServer
) -> None:
    agent = json.dumps({"kind": "command", "argv": [sys.executable, "-c", AGENT]})
    ty = RunYard(tmp_path, None, CONFIG.format(agent=agent, base_url=gh.base_url))
    ty.env["TASKYARD_GITHUB_TOKEN"] = TOKEN
    ty.env["TASKYARD_BUDGET_MONTHLY_USD"] = "0.01"
    ty.start()
    try:
        first = ty.wait_task_end(ty.send_file("github", issue_opened(1), "issues"), 60)
        assert (first["status"], first["cost"]) == ("succeeded", 0.02)

        second_event = ty.send_file("github", issue_opened(2), "issues")
        wait_for(lambda: len(ty.tasks(second_event)) == 1, 30, "the second task")
        task_id = ty.tasks(second_event)[0]["id"]
        wait_for(lambda: bool(comments_on(gh, 2)), 30, "the budget notice on issue 2")
        shown = ty.task(task_id)
        assert (shown["status"], shown["reason"], shown["waiting_reason"]) == (
            "queued",
            "budget exhausted",
            "budget exhausted",
        )
        assert shown["attempts"] == 0 and shown["started_at"] is None
        [notice] = comments_on(gh, 2)
        assert "monthly budget ($0.01) is exhausted" in notice
        assert "waits" in notice
        text = ty.cli("tasks", "show", task_id).stdout
        assert "waiting_reason: budget exhausted" in text

        budget = json.loads(ty.cli("budget", "--json").stdout)
        assert (budget["state"], budget["spent_usd"], budget["limit_usd"]) == (
            "exhausted",
            0.02,
            0.01,
        )
        assert budget["waiting"] == 1
        assert budget["by_route"] == [{"route": "triage", "cost_usd": 0.02, "tasks": 1}]
        summary = ty.cli("budget").stdout
        assert "$0.02 spent of $0.01" in summary and "tasks waiting for the budget: 1" in summary

        ty_log = (tmp_path / "serve.log").read_text()
        assert "monthly budget exhausted: new tasks wait" in ty_log
        assert runs_of(ty, first["id"]) == [first["id"]] and first["attempts"] == 1
        assert runs_of(ty, task_id) == []  # the second agent never started

        # A restart with a raised budget: the waiting task runs, once, and nothing is lost.
        ty.stop()
        ty.env["TASKYARD_BUDGET_MONTHLY_USD"] = "1"
        ty.start()
        done = ty.wait_task_end(second_event, 60)
        assert (done["id"], done["status"], done["reason"]) == (task_id, "succeeded", None)
        assert ty.task(task_id)["waiting_reason"] is None
        assert runs_of(ty, task_id) == [task_id] and done["attempts"] == 1
        assert runs_of(ty, first["id"]) == [first["id"]]
        assert len(comments_on(gh, 2)) == 2  # the notice once, then the summary
        assert "Triaged it." in comments_on(gh, 2)[1]
        assert all(TOKEN not in r.everything_but_auth() for r in gh.requests)
    finally:
        ty.stop()
