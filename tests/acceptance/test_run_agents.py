"""The real `codex` and `claude` CLIs driven by `taskyard serve`, against the scripted model
server: a GitHub pull request becomes a succeeded `pr-review` (codex) whose agent ran a shell
command in a real git worktree; a Linear issue becomes a succeeded `linear-triage` (claude);
a model API error ends the task `failed` saying so. On SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.acceptance.run_harness import SHARED, RunYard, make_repository, pr_opened
from tests.agent_binaries import agent_binary

pytestmark = pytest.mark.slow

RESULT = {
    "success": True,
    "actions": [{"type": "comment", "params": {"body": "LGTM"}, "reasoning": "tiny change"}],
    "analysis": "greet() concatenates strings; fine.",
    "summary": "Looks good.",
}
TRIAGE = {
    "success": True,
    "actions": [{"type": "set_priority", "params": {"priority": 2}, "reasoning": "a bug"}],
    "analysis": "A real bug.",
    "summary": "Priority 2.",
}
SCRIPT = {
    "scripts": [
        {
            "name": "review",
            "match": "Review pull request",
            "usage": {"input_tokens": 120, "output_tokens": 40},
            "turns": [
                {"shell": "cd repo && git log --format=%s > PROOF && cat PROOF"},
                {"final": RESULT},
            ],
        },
        {
            "name": "triage",
            "match": "Triage Linear issue",
            "usage": {"input_tokens": 90, "output_tokens": 30},
            "turns": [{"shell": "pwd > triaged.txt"}, {"final": TRIAGE}],
        },
        {"name": "broken", "turns": [{"error": {"status": 400, "message": "model is sad"}}]},
    ]
}

CONFIG = """
queue:
  polling_interval_sec: 0.05
runs:
  timeout_seconds: 90
  kill_grace_seconds: 1
  keep_workspaces: true
agents:
  codex: {{kind: codex, binary: "{codex}", model: gpt-5.5}}
  claude: {{kind: claude, binary: "{claude}", model: claude-sonnet-4-5,
            address_space_bytes: 4294967296}}
routes:
  - name: pr-review
    on: ["github:pull_request.opened"]
    agent: codex
    prompt: pr-review
    repo: true
  - name: linear-triage
    on: ["linear:Issue.create"]
    agent: claude
    prompt: linear-triage
  - name: broken
    on: ["github:issues.opened"]
    agent: codex
    who: {{min_permission: none}}
log_level: INFO
"""


@pytest.fixture(params=["sqlite", "postgres"])
def yard(
    request: pytest.FixtureRequest, tmp_path: Path, model_server: Callable[[Any], Any]
) -> Iterator[RunYard]:
    db = request.getfixturevalue("pg_url") if request.param == "postgres" else None
    server = model_server(SCRIPT)
    config = CONFIG.format(codex=agent_binary("codex"), claude=agent_binary("claude"))
    ty = RunYard(tmp_path, db, config)
    # The contract: base URLs and keys from the provider's own variables.
    ty.env.update(
        OPENAI_BASE_URL=f"{server.url}/v1",
        OPENAI_API_KEY="sk-test-openai",
        ANTHROPIC_BASE_URL=server.url,
        ANTHROPIC_API_KEY="sk-test-anthropic",
        GITHUB_TOKEN="ghp_must_not_leak",
    )
    ty.model = server  # type: ignore[attr-defined]
    ty.head = make_repository(tmp_path)  # type: ignore[attr-defined]
    ty.start()
    yield ty
    ty.stop()


def test_codex_reviews_a_pull_request_in_a_worktree(yard: RunYard) -> None:
    event_id = yard.send_file("github", pr_opened(yard.head), "pull_request")  # type: ignore[attr-defined]
    task = yard.wait_task_end(event_id, 90)
    assert (task["route"], task["agent"]) == ("pr-review", "codex")
    assert task["status"] == "succeeded", task["reason"]
    assert task["result"] == RESULT
    assert task["usage"]["input_tokens"] >= 120 and task["usage"]["output_tokens"] >= 40
    assert task["usage"]["tool_calls"] == 1
    ws = Path(task["workspace"])
    proof = ws / "workspace" / "repo" / "PROOF"
    assert proof.read_text().split() == ["add", "greet", "first"]
    log = (ws / "outputs" / "log.jsonl").read_text()
    assert '"command_execution"' in log
    assert "ghp_must_not_leak" not in log
    prompt = (ws / "prompts" / "pr-review.md").read_text()
    assert "Review pull request" in prompt and '"summary"' in prompt


def test_claude_triages_a_linear_issue(yard: RunYard) -> None:
    payload = json.loads((SHARED / "linear" / "issue.create.json").read_text())
    payload["webhookTimestamp"] = int(time.time() * 1000)
    task = yard.wait_task_end(yard.send_file("linear", payload), 90)
    assert (task["route"], task["agent"]) == ("linear-triage", "claude")
    assert task["status"] == "succeeded", task["reason"]
    assert task["result"] == TRIAGE
    assert task["usage"]["input_tokens"] > 0 and task["usage"]["output_tokens"] > 0
    ws = Path(task["workspace"])
    # The agent ran in the task's workspace (kept, so moved to the archive afterwards).
    ran_in = (ws / "workspace" / "triaged.txt").read_text().strip()
    assert ran_in.endswith(f"/task-{task['id']}/workspace")


def test_model_api_error_fails_the_task_saying_so(yard: RunYard) -> None:
    payload = json.loads((SHARED / "github" / "issues.opened.json").read_text())
    task = yard.wait_task_end(yard.send_file("github", payload, "issues"), 90)
    assert task["status"] == "failed"
    assert "model API error" in task["reason"], task["reason"]
