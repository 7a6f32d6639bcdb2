"""Failed tool calls, counted and never passed silently; and each CLI's own sandbox set by
whether taskyard's sandbox wraps the run.

streams/*-tool-failed.jsonl are recorded from codex 0.169.0 and claude 2.1.197 against the
scripted model server: one shell call `echo partial; exit 3`, then the final result
(tests/integration/test_real_agents.py runs the same live).
"""

from __future__ import annotations

import json
import stat
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from taskyard.agents import build_adapter
from taskyard.agents.base import AgentAdapter, AgentOutcome, AgentRequest, Usage, flag_failed_tools
from taskyard.agents.cli_support import install_dirs
from taskyard.config import AgentConfig

STREAMS = Path(__file__).parent / "streams"
RESULT = {"success": True, "actions": [], "analysis": "proof written", "summary": "done"}
# codex's mcp_tool_call items and claude's tool results as the real CLIs print them
CODEX_MCP = {
    "id": "item_0",
    "type": "mcp_tool_call",
    "server": "taskyard",
    "tool": "add_labels",
    "arguments": {"labels": ["bug"]},
    "error": None,
    "status": "failed",
}


def recorded(kind: str) -> list[str]:
    return (STREAMS / f"{kind}-tool-failed.jsonl").read_text().splitlines()


def codex_mcp_line(text: str) -> str:
    item = {**CODEX_MCP, "result": {"content": [{"type": "text", "text": text}]}}
    return json.dumps({"type": "item.completed", "item": item})


@pytest.fixture
def request_(tmp_path: Path) -> AgentRequest:
    task = tmp_path / "task-7"
    for sub in ("workspace", "outputs", "prompts"):
        (task / sub).mkdir(parents=True)
    binary_dir = tmp_path / "node_modules" / "@vendor" / "cli" / "bin"
    binary_dir.mkdir(parents=True)
    for name in ("codex", "claude"):
        path = binary_dir / name
        path.write_text("#!/bin/sh\n")
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return AgentRequest(
        task_id="7",
        task_dir=task,
        workspace=task / "workspace",
        context_dir=task / "context",
        output_dir=task / "outputs",
        prompt_file=task / "prompts" / "route.md",
        result_schema={"type": "object", "required": ["success"]},
        base_env={"PATH": str(binary_dir), "LANG": "C.UTF-8", "TASK_ID": "7"},
    )


def adapter(kind: str) -> AgentAdapter:
    base_url = {"codex": "http://127.0.0.1:9/v1", "claude": "http://127.0.0.1:9"}[kind]
    config = {"kind": kind, "model": "m", "base_url": base_url, "api_key": "sk-model"}
    return build_adapter(AgentConfig.model_validate(config))


def finish(kind: str, request: AgentRequest, lines: list[str], stderr: str = "") -> AgentOutcome:
    agent = adapter(kind)
    parser = agent.new_parser()
    for line in lines:
        parser.feed(line)
    return agent.outcome(request, parser, 0, stderr)


def with_claude_result(lines: list[str], **changes: object) -> list[str]:
    """The recorded claude stream with its final `result` event changed."""
    result = json.loads(lines[-1])
    assert result["type"] == "result"
    return [*lines[:-1], json.dumps({**result, **changes})]


# --- the rule ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("calls", "errors", "flagged"), [(0, 0, False), (2, 1, False), (1, 1, True), (3, 3, True)]
)
def test_a_run_whose_every_tool_call_failed_fails(calls: int, errors: int, flagged: bool) -> None:
    outcome = AgentOutcome(True, RESULT, None, Usage(tool_errors=errors), tool_calls=calls)
    judged = flag_failed_tools(outcome, "`ls` exited 2: no such file")

    assert judged.success is not flagged
    assert judged.usage.tool_errors == errors
    if flagged:
        assert judged.error == (
            f"every tool call failed ({errors} of {calls}): `ls` exited 2: no such file"
        )


def test_a_failed_run_keeps_its_own_reason() -> None:
    outcome = AgentOutcome(False, None, "model API error: 500", Usage(tool_errors=1), 1)
    assert flag_failed_tools(outcome, "x") == outcome


def test_tool_errors_are_part_of_the_stored_usage() -> None:
    assert Usage(tool_errors=2).to_json()["tool_errors"] == 2


# --- the parsers, on recorded streams --------------------------------------------------


@pytest.mark.parametrize("kind", ["codex", "claude"])
def test_a_lone_failed_command_fails_the_run(kind: str, request_: AgentRequest) -> None:
    (request_.output_dir / "last_message.txt").write_text(json.dumps(RESULT))
    outcome = finish(kind, request_, recorded(kind))

    assert not outcome.success
    assert outcome.tool_calls == 1
    assert outcome.usage.tool_errors == 1
    assert outcome.usage.input_tokens == 200  # the usage is still reported
    expected = {
        "codex": "/bin/bash -lc 'echo partial; exit 3' exited 3: partial",
        "claude": "Bash: echo partial; exit 3: Exit code 3 partial",
    }
    assert outcome.error == f"every tool call failed (1 of 1): {expected[kind]}"


def test_codex_counts_failed_mcp_calls_but_not_policy_refusals(request_: AgentRequest) -> None:
    (request_.output_dir / "last_message.txt").write_text(json.dumps(RESULT))
    lines = recorded("codex")
    refused = [*lines[:2], codex_mcp_line("not allowed: labels need approval"), *lines[4:]]
    broken = [*lines[:2], codex_mcp_line("tool failed: boom"), *lines[4:]]

    assert finish("codex", request_, refused).success
    outcome = finish("codex", request_, broken)
    assert outcome.error == (
        "every tool call failed (1 of 1): mcp taskyard.add_labels: tool failed: boom"
    )


def test_codex_one_good_call_is_enough(request_: AgentRequest) -> None:
    (request_.output_dir / "last_message.txt").write_text(json.dumps(RESULT))
    ok: dict[str, Any] = {
        **CODEX_MCP,
        "id": "item_9",
        "status": "completed",
        "result": {"content": []},
    }
    lines = recorded("codex")
    lines.insert(4, json.dumps({"type": "item.completed", "item": ok}))
    outcome = finish("codex", request_, lines)

    assert outcome.success
    assert (outcome.tool_calls, outcome.usage.tool_errors) == (2, 1)


def test_claude_counts_errors_once_and_not_refusals(request_: AgentRequest) -> None:
    lines = recorded("claude")
    refused = [line.replace("Exit code 3\\npartial", "not allowed: no") for line in lines]
    assert finish("claude", request_, refused).success
    # a denial is in the result too: one failed call, counted once
    tool_id = json.loads(lines[1])["message"]["content"][0]["id"]
    denial = [{"tool_name": "Bash", "tool_use_id": tool_id, "tool_input": {}}]
    outcome = finish("claude", request_, with_claude_result(lines, permission_denials=denial))
    assert (outcome.tool_calls, outcome.usage.tool_errors) == (1, 1)


def test_claude_usage_so_far_carries_tool_errors() -> None:
    parser = adapter("claude").new_parser()
    for line in recorded("claude")[:3]:  # init, the Bash call, its failed result
        parser.feed(line)
    usage = parser.usage_so_far()
    assert usage is not None and usage.tool_errors == 1


def test_codex_without_its_sandbox_helper_fails_loudly(request_: AgentRequest) -> None:
    (request_.output_dir / "last_message.txt").write_text(json.dumps(RESULT))
    stderr = (
        "WARNING: proceeding, even though we could not create PATH aliases: Refusing to "
        'create helper binaries under temporary dir "/tmp"'
    )
    success = (STREAMS / "codex-success.jsonl").read_text().splitlines()
    outcome = finish("codex", request_, success, stderr)

    assert not outcome.success
    assert outcome.error is not None
    assert outcome.error.startswith("codex's own sandbox could not start")
    # inside taskyard's sandbox codex's own is off: the warning does not matter
    assert finish("codex", replace(request_, sandboxed=True), success, stderr).success


# --- each CLI's own sandbox --------------------------------------------------------------


@pytest.mark.parametrize(
    ("sandboxed", "mode"), [(True, "danger-full-access"), (False, "workspace-write")]
)
def test_codex_sandbox_is_off_only_inside_taskyards(
    request_: AgentRequest, sandboxed: bool, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="taskyard.agents.codex")
    launch = adapter("codex").launch(replace(request_, sandboxed=sandboxed))
    home = request_.task_dir / "home"
    config = tomllib.loads(launch.files[home / ".codex" / "config.toml"])

    assert launch.argv[launch.argv.index("--sandbox") + 1] == mode
    assert config["sandbox_mode"] == mode
    assert launch.env["TMPDIR"] == str(home / ".tmp")  # not above CODEX_HOME
    assert not Path(launch.env["CODEX_HOME"]).is_relative_to(launch.env["TMPDIR"])
    said = "codex's own sandbox is off: taskyard's sandbox wraps it"
    assert (said in caplog.text) is sandboxed


@pytest.mark.parametrize("kind", ["codex", "claude"])
def test_launch_tells_taskyards_sandbox_what_the_cli_needs(
    kind: str, request_: AgentRequest, tmp_path: Path
) -> None:
    launch = adapter(kind).launch(request_)

    assert launch.read_only == (tmp_path / "node_modules" / "@vendor",)
    assert launch.egress == (
        {"codex": "http://127.0.0.1:9/v1", "claude": "http://127.0.0.1:9"}[kind],
    )
    # everything the CLI writes is under its HOME, which the sandbox keeps writable
    home = Path(launch.env["HOME"])
    state = launch.env["CODEX_HOME" if kind == "codex" else "CLAUDE_CONFIG_DIR"]
    assert Path(state).is_relative_to(home)


def test_claude_settings_turn_its_own_sandbox_off(request_: AgentRequest) -> None:
    launch = adapter("claude").launch(replace(request_, sandboxed=True))
    settings = Path(launch.env["CLAUDE_CONFIG_DIR"]) / "settings.json"

    assert json.loads(launch.files[settings]) == {"sandbox": {"enabled": False}}


def test_a_cli_outside_npm_is_read_from_its_own_directory(tmp_path: Path) -> None:
    binary = tmp_path / "opt" / "codex" / "bin" / "codex"
    binary.parent.mkdir(parents=True)
    binary.write_text("")
    link = tmp_path / "codex"
    link.symlink_to(binary)

    assert install_dirs(str(link)) == (binary.parent,)
