"""The worker's tool socket, driven by the MCP server's client end, in-process."""

from __future__ import annotations

import json
import stat
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from taskyard.agents.base import AgentRequest
from taskyard.agents.claude import ClaudeAdapter
from taskyard.agents.codex import config_toml
from taskyard.config import AgentConfig
from taskyard.devtools.model_script import TurnKind, parse_script
from taskyard.exceptions import ToolBridgeError
from taskyard.tools import BridgeClient, ToolAnswer, ToolBridge
from taskyard.tools.fake import FakeToolHandler, RecordedCall


class Broken(FakeToolHandler):
    async def call(self, name: str, arguments: dict[str, Any]) -> ToolAnswer:
        raise RuntimeError("bug in the handler")


@pytest.fixture
def handler() -> FakeToolHandler:
    return FakeToolHandler(
        answers={"add_labels": ToolAnswer(True, "labels added", {"labels": ["bug"]})},
        refuse={"get_issue": "reads are off for this route"},
    )


@pytest.fixture
async def client(handler: FakeToolHandler, tmp_path: Path) -> AsyncIterator[BridgeClient]:
    async with ToolBridge(handler, tmp_path / "tools.sock"):
        connected = await BridgeClient.connect(tmp_path / "tools.sock")
        yield connected
        await connected.close()


async def test_lists_the_handlers_tools(client: BridgeClient) -> None:
    tools = await client.list_tools()
    assert [t.name for t in tools] == ["add_labels", "get_issue"]
    assert tools[0].input_schema["required"] == ["labels"]


async def test_a_call_reaches_the_handler_and_its_answer_comes_back(
    client: BridgeClient, handler: FakeToolHandler
) -> None:
    answer = await client.call("add_labels", {"labels": ["bug"]})
    assert answer == ToolAnswer(True, "labels added", {"labels": ["bug"]})
    assert handler.calls == [RecordedCall("add_labels", {"labels": ["bug"]})]


async def test_a_refused_call_answers_not_allowed(client: BridgeClient) -> None:
    answer = await client.call("get_issue", {"number": 7})
    assert answer == ToolAnswer(False, "not allowed: reads are off for this route")


async def test_bad_calls_never_reach_the_handler(
    client: BridgeClient, handler: FakeToolHandler
) -> None:
    unknown = await client.call("merge_pr", {})
    invalid = await client.call("add_labels", {"labels": "bug"})
    assert unknown == ToolAnswer(False, "unknown tool: merge_pr")
    assert not invalid.ok
    assert invalid.text.startswith("invalid arguments for add_labels: labels: ")
    assert handler.calls == []


async def test_a_handler_bug_is_answered_not_fatal(tmp_path: Path) -> None:
    async with ToolBridge(Broken(), tmp_path / "tools.sock"):
        client = await BridgeClient.connect(tmp_path / "tools.sock")
        first = await client.call("add_labels", {"labels": ["x"]})
        second = await client.call("get_issue", {"number": 1})
        await client.close()
    assert first.ok is False
    assert first.text == "add_labels failed: internal error (see taskyard's log)"
    assert second.text.startswith("get_issue failed")  # the connection survived


async def test_socket_is_private_and_removed_afterwards(tmp_path: Path) -> None:
    path = tmp_path / "task-1" / "tools.sock"
    async with ToolBridge(FakeToolHandler(), path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not path.exists()
    with pytest.raises(ToolBridgeError, match="cannot reach taskyard's tool socket"):
        await BridgeClient.connect(path)


def test_mcp_launch_runs_isolated_python_in_an_empty_env(tmp_path: Path) -> None:
    launch = ToolBridge(FakeToolHandler(), tmp_path / "tools.sock").mcp_launch()
    assert launch.command.endswith("/env")
    assert launch.args == (
        "-i",
        sys.executable,
        "-I",
        "-m",
        "taskyard.tools.mcp_stdio",
        "--socket",
        str(tmp_path / "tools.sock"),
    )
    assert dict(launch.env) == {}
    assert launch.tools == ("add_labels", "get_issue")


def test_too_long_socket_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="too long for a unix socket"):
        ToolBridge(FakeToolHandler(), tmp_path / ("x" * 120) / "tools.sock")


def test_codex_config_registers_the_server(tmp_path: Path) -> None:
    launch = ToolBridge(FakeToolHandler(), tmp_path / "tools.sock").mcp_launch()
    text = config_toml(AgentConfig(kind="codex"), launch)
    assert "[mcp_servers.taskyard]" in text
    assert f"command = {json.dumps(launch.command)}" in text
    assert 'default_tools_approval_mode = "approve"' in text
    assert "required = true" in text
    assert "[mcp_servers" not in config_toml(AgentConfig(kind="codex"))


def test_model_script_tool_turn() -> None:
    script = parse_script(
        {"scripts": [{"turns": [{"tool": {"name": "add_labels", "arguments": {"labels": ["a"]}}}]}]}
    )
    turn = script.scripts[0].turns[0]
    assert turn.kind is TurnKind.TOOL
    assert turn.tool is not None
    assert (turn.tool.server, turn.tool.name, turn.tool.arguments) == (
        "taskyard",
        "add_labels",
        {"labels": ["a"]},
    )


def test_claude_launch_registers_the_server_and_allows_its_tools(tmp_path: Path) -> None:
    binary = tmp_path / "bin" / "claude"
    binary.parent.mkdir()
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    task = tmp_path / "task-1"
    request = AgentRequest(
        "1",
        task,
        task / "workspace",
        task / "context",
        task / "outputs",
        task / "prompts" / "route.md",
        {"type": "object"},
        base_env={"PATH": str(binary.parent)},
    )
    adapter = ClaudeAdapter(AgentConfig(kind="claude", api_key="sk-x"))
    mcp = ToolBridge(FakeToolHandler(), task / "tools.sock").mcp_launch()
    plain = adapter.launch(request).argv
    launch = adapter.launch(replace(request, mcp=mcp))
    argv = list(launch.argv)

    config_file = Path(argv[argv.index("--mcp-config") + 1])
    assert json.loads(launch.files[config_file]) == {
        "mcpServers": {
            "taskyard": {"type": "stdio", "command": mcp.command, "args": list(mcp.args), "env": {}}
        }
    }
    assert "--strict-mcp-config" in argv
    allowed = argv[argv.index("--allowedTools") + 1 :]
    assert {"mcp__taskyard__add_labels", "mcp__taskyard__get_issue"} <= set(allowed)
    assert "--mcp-config" not in plain
    assert not any(a.startswith("mcp__") for a in plain)
