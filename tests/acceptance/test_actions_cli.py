"""`taskyard serve` applying a task's actions to the GitHub test server, and the operator's
side of it: `tasks show --json` lists each action's outcome; `tasks retry` of a task whose
actions failed applies them again without running the agent (the boxed agent can write only in
its own task directory: each run prints a line of its own to its log, which the test reads
with `tasks logs`, and counts as one of the task's `attempts`)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.acceptance.run_harness import SHARED, RunYard, python_agent
from tests.acceptance.test_serve import wait_for
from tests.platform_servers import PlatformServer, Reply, github_server

TOKEN = "ghp_CLItokenTHATmustNEVERleak000000000000"
ISSUE = "/repos/Codertocat/Hello-World/issues/1"
AGENT = r"""
import json, os, pathlib
print(json.dumps({"type": "message", "text": "agent run " + os.urandom(8).hex()}), flush=True)
pathlib.Path(os.environ["OUTPUT_DIR"], "result.json").write_text(json.dumps({
    "success": True,
    "actions": [
        {"type": "add_labels", "params": {"labels": ["bug"]}, "reasoning": "a bug"},
        {"type": "comment", "params": {"body": "Thanks, looking."}, "reasoning": "ack"},
    ],
    "analysis": "a bug", "summary": "Labelled it."}))
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
actions:
  allow: {{triage: [add_labels, comment]}}
log_level: INFO
"""


@pytest.fixture
def gh() -> Iterator[PlatformServer]:
    with github_server() as server:
        yield server


def test_an_apply_failure_is_shown_and_retried_without_running_the_agent(
    tmp_path: Path, gh: PlatformServer
) -> None:
    agent = python_agent(AGENT)
    ty = RunYard(tmp_path, None, CONFIG.format(agent=agent, base_url=gh.base_url))
    ty.env["TASKYARD_GITHUB_TOKEN"] = TOKEN
    gh.queue("POST", f"{ISSUE}/labels", Reply(403, {"message": "Resource not accessible"}))
    ty.start()
    try:
        payload = json.loads((SHARED / "github" / "issues.opened.json").read_text())
        event_id = ty.send_file("github", payload, "issues")
        task = ty.wait_task_end(event_id, 60)
        assert task["status"] == "failed"
        assert task["reason"].startswith("actions: add_labels (#0) failed:")
        shown = json.loads(ty.cli("tasks", "show", task["id"], "--json").stdout)
        by_index = {a["index"]: a for a in shown["actions"]}
        assert [by_index[i]["status"] for i in (-1, 0, 1, -2)] == [
            "applied",  # the 👀 reaction
            "failed",
            "applied",
            "applied",  # the failure, posted back
        ]
        assert by_index[0]["requests"][0]["path"] == f"{ISSUE}/labels"
        assert by_index[1]["url"]
        text = ty.cli("tasks", "show", task["id"]).stdout
        assert "#0 add_labels: failed" in text and f"POST {ISSUE}/labels" in text
        ran = ty.cli("tasks", "logs", task["id"]).stdout
        assert ran.count("agent run ") == 1 and shown["attempts"] == 1

        retried = json.loads(ty.cli("tasks", "retry", task["id"], "--json").stdout)
        assert retried["reapply"] is True
        wait_for(lambda: ty.task(task["id"])["status"] == "succeeded", 30, "re-applied")
        # the agent ran once: no new attempt, and its log is still the first run's
        assert ty.task(task["id"])["attempts"] == 1
        assert ty.cli("tasks", "logs", task["id"]).stdout == ran
        labels = [r for r in gh.requests if r.path == f"{ISSUE}/labels"]
        comments = [r for r in gh.requests if r.path == f"{ISSUE}/comments"]
        assert len(labels) == 2  # the 403, then the one that took
        assert len(comments) == 2  # the comment once, the failure report once
        assert all(TOKEN not in r.everything_but_auth() for r in gh.requests)
        assert TOKEN not in (ty.home / "serve.log").read_text()
    finally:
        ty.stop()
