"""The per-task MCP tools end to end: the stdio MCP server as a real process, spoken to by the
`mcp` package's client and by the real codex and claude CLIs against the scripted model."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from taskyard.tools import ToolAnswer, ToolBridge
from taskyard.tools.fake import FakeToolHandler, RecordedCall
from tests.agent_binaries import agent_binary
from tests.integration.test_real_agents import (
    RESULT,
    ServerFactory,
    make_adapter,
    make_request,
    run_agent,
)

PLATFORM_SECRET = "ghp_platform-token-the-agent-must-never-see"


class EnvSnooper(FakeToolHandler):
    """Also keeps the environment of the MCP server process that made each call."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bridge: ToolBridge | None = None
        self.server_envs: list[dict[str, str]] = []

    async def call(self, name: str, arguments: dict[str, Any]) -> ToolAnswer:
        assert self.bridge is not None
        for pid in self.bridge.peers:
            raw = Path(f"/proc/{pid}/environ").read_bytes()
            pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
            self.server_envs.append({k.decode(): v.decode() for k, v in pairs})
        return await super().call(name, arguments)


async def test_mcp_client_lists_and_calls_tools(tmp_path: Path) -> None:
    handler = FakeToolHandler(
        answers={"add_labels": ToolAnswer(True, "labels added: bug")},
        refuse={"get_issue": "reads are off for this route"},
    )
    async with ToolBridge(handler, tmp_path / "tools.sock") as bridge:
        launch = bridge.mcp_launch()
        params = StdioServerParameters(
            command=launch.command, args=list(launch.args), env=dict(launch.env)
        )
        async with Client(params) as client:
            listed = await client.list_tools()
            added = await client.call_tool("add_labels", {"labels": ["bug"]})
            refused = await client.call_tool("get_issue", {"number": 3})
            invalid = await client.call_tool("add_labels", {"labels": []})

    assert [t.name for t in listed.tools] == ["add_labels", "get_issue"]
    assert listed.tools[0].input_schema["required"] == ["labels"]
    assert (added.is_error, [c.text for c in added.content]) == (False, ["labels added: bug"])  # type: ignore[union-attr]
    assert refused.is_error
    assert refused.content[0].text == "not allowed: reads are off for this route"  # type: ignore[union-attr]
    assert invalid.is_error
    assert handler.calls == [
        RecordedCall("add_labels", {"labels": ["bug"]}),
        RecordedCall("get_issue", {"number": 3}),
    ]


async def test_stdio_server_without_the_socket_fails_in_words(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        *ToolBridge(FakeToolHandler(), tmp_path / "tools.sock").mcp_launch().argv(),
        stdin=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env={},
    )
    _, stderr = await proc.communicate()
    assert proc.returncode == 1
    assert b"cannot reach taskyard's tool socket" in stderr


def tool_script(answer_check: str) -> dict[str, Any]:
    return {
        "scripts": [
            {
                "name": "labels",
                "turns": [
                    {"tool": {"name": "add_labels", "arguments": {"labels": ["bug", "p1"]}}},
                    {"final": {**RESULT, "analysis": answer_check}},
                ],
            }
        ]
    }


@pytest.mark.parametrize("kind", ["codex", "claude"])
@pytest.mark.parametrize(
    "answer",
    [ToolAnswer(True, "labels added: bug, p1"), ToolAnswer.refused("labels need approval")],
    ids=["applied", "refused"],
)
async def test_real_agent_calls_a_taskyard_tool(
    kind: str,
    answer: ToolAnswer,
    model_server: ServerFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    agent_binary(kind)
    monkeypatch.setenv("TASKYARD_GITHUB_TOKEN", PLATFORM_SECRET)  # the worker holds it
    server = model_server(tool_script("labelled"))
    handler = EnvSnooper(answers={"add_labels": answer}, refuse={})
    if not answer.ok:
        handler.refuse["add_labels"] = "labels need approval"
    request = make_request(tmp_path / "tasks", prompt="Label the issue.")
    async with ToolBridge(handler, request.task_dir / "tools.sock") as bridge:
        handler.bridge = bridge
        request = replace(request, mcp=bridge.mcp_launch())
        run = await asyncio.to_thread(run_agent, make_adapter(kind, server), request)

    assert run.outcome.error is None, run.stderr[-2000:]
    assert run.outcome.success
    assert run.outcome.result == {**RESULT, "analysis": "labelled"}
    assert handler.calls == [RecordedCall("add_labels", {"labels": ["bug", "p1"]})]
    assert run.outcome.tool_calls == 1
    # the model's next turn carried the tool's answer
    last = json.dumps(server.turn_requests()[-1].body)
    assert answer.text in last
    # the MCP server the CLI started inherits nothing: no platform token, no model key
    assert len(handler.server_envs) == 1
    assert handler.server_envs[0] == {}
    assert PLATFORM_SECRET not in json.dumps(run.launch.env)


@pytest.mark.parametrize("kind", ["codex", "claude"])
async def test_a_slow_tool_server_is_waited_for(
    kind: str, model_server: ServerFactory, tmp_path: Path
) -> None:
    """The model's first turn calls the tool: the CLI must have waited for the MCP server
    (codex: `required = true`; claude: MCP_CONNECTION_NONBLOCKING=0), not answer "No such
    tool available" (which a loaded machine showed)."""
    agent_binary(kind)
    server = model_server(tool_script("labelled"))
    handler = FakeToolHandler(answers={"add_labels": ToolAnswer(True, "labels added")})
    request = make_request(tmp_path / "tasks", prompt="Label the issue.")
    async with ToolBridge(handler, request.task_dir / "tools.sock") as bridge:
        mcp = bridge.mcp_launch()
        slow = ("-c", 'sleep 2; exec "$0" "$@"', mcp.command, *mcp.args)
        request = replace(request, mcp=replace(mcp, command="/bin/sh", args=slow))
        run = await asyncio.to_thread(run_agent, make_adapter(kind, server), request)

    assert run.outcome.success, run.outcome.error
    assert handler.calls == [RecordedCall("add_labels", {"labels": ["bug", "p1"]})]
