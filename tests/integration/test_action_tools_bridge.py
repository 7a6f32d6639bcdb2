"""The task's action tools behind the real tool socket, applied by the real apply step: what
an agent's tool call leaves on the platform and in the store, and what the agent reads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mcp import Client
from mcp.client.stdio import StdioServerParameters

from taskyard.actions.apply import apply_actions
from taskyard.actions.fakes import FakeWriter
from taskyard.actions.models import Target, parse_action
from taskyard.actions.planner import PlatformPlanner
from taskyard.actions.policy import AllowListPolicy
from taskyard.platforms.fakes import FakeGitHub
from taskyard.records import ActionRecord, ActionStatus
from taskyard.store import MemoryStore
from taskyard.tools import BridgeClient, ToolAnswer, ToolBridge
from taskyard.tools.actions import ActionTools, ReadTools

TARGET = Target(platform="github", repo="acme/api", number=7, pull_request=False)


class Task:
    """One task's apply step: each tool call is the task's next action."""

    def __init__(self) -> None:
        self.store = MemoryStore()
        self.writer = FakeWriter("github")
        self.calls = 0

    async def apply_one(self, kind: str, params: dict[str, Any], reasoning: str) -> ActionRecord:
        raw = {"type": kind, "params": params, "reasoning": reasoning}
        action = parse_action("t1", self.calls, raw)
        self.calls += 1
        [record] = await apply_actions(
            "t1",
            "triage",
            [action],
            TARGET,
            planner=PlatformPlanner(),
            writers={"github": self.writer},
            policy=AllowListPolicy({"triage": ["add_labels"]}),
            store=self.store,
            dry_run=False,
        )
        return record

    def tools(self) -> ActionTools:
        github = FakeGitHub(issues={("acme/api", 7): {"number": 7, "title": "Crash"}})
        return ActionTools(self.apply_one, ReadTools(TARGET, github, None))


async def test_a_tool_call_is_applied_recorded_and_answered(tmp_path: Path) -> None:
    task = Task()
    async with ToolBridge(task.tools(), tmp_path / "tools.sock"):
        client = await BridgeClient.connect(tmp_path / "tools.sock")
        listed = await client.list_tools()
        added = await client.call("add_labels", {"labels": ["bug"], "reasoning": "a crash"})
        refused = await client.call("merge_pr", {"method": "squash"})
        issue = await client.call("get_issue", {})
        no_linear = await client.call("get_issue", {"id": "ENG-1"})
        await client.close()

    assert {"add_labels", "merge_pr", "get_issue", "get_pr_diff"} <= {t.name for t in listed}
    assert all("$ref" not in json.dumps(t.input_schema) for t in listed)
    assert (added.ok, added.text) == (True, "applied: add_labels — https://github/1")
    assert refused == ToolAnswer(
        False, "not allowed: merge_pr is not allowed by route triage's allow-list", refused.data
    )
    assert [r.path for r in task.writer.calls] == ["/repos/acme/api/issues/7/labels"]
    records = task.store.actions_of("t1")
    assert [(r.type, r.status, r.reasoning) for r in records] == [
        ("add_labels", ActionStatus.APPLIED, "a crash"),
        ("merge_pr", ActionStatus.SKIPPED, ""),
    ]
    assert issue.ok and json.loads(issue.text)["issue"] == {"number": 7, "title": "Crash"}
    assert no_linear == ToolAnswer(False, "not available: linear has no credentials configured")


async def test_the_mcp_server_serves_every_action_schema(tmp_path: Path) -> None:
    task = Task()
    async with ToolBridge(task.tools(), tmp_path / "tools.sock") as bridge:
        launch = bridge.mcp_launch()
        params = StdioServerParameters(
            command=launch.command, args=list(launch.args), env=dict(launch.env)
        )
        async with Client(params) as client:
            listed = await client.list_tools()
            added = await client.call_tool("add_labels", {"labels": ["p1"]})
            refused = await client.call_tool("close_issue", {})

    assert [t.name for t in listed.tools] == [t.name for t in task.tools().tools()]
    assert not added.is_error
    assert refused.is_error
    assert refused.content[0].text == (  # type: ignore[union-attr]
        "not allowed: close_issue is not allowed by route triage's allow-list"
    )
    assert len(task.writer.calls) == 1
