"""Pure parts of the agent runner: limits from config, the agent's env, the command adapter,
and the in-memory supervisor fake. No processes."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path

import pytest

from taskyard.agents.base import AgentRequest
from taskyard.agents.command import CommandAdapter, JsonLineParser, command_outcome
from taskyard.agents.fake import (
    FAKE_PROCESS,
    FakeAdapter,
    ScriptedSupervisor,
    fake_report,
)
from taskyard.agents.supervisor import (
    Limits,
    ProcessRecord,
    RunStatus,
    build_env,
    describe_exit,
    kill_stale_group,
)
from taskyard.config import AgentConfig, RunsConfig
from taskyard.exceptions import ConfigError


def request_at(root: Path) -> AgentRequest:
    task_dir = root / "task-7"
    return AgentRequest(
        task_id="7",
        task_dir=task_dir,
        workspace=task_dir / "workspace",
        context_dir=task_dir / "context",
        output_dir=task_dir / "outputs",
        prompt_file=task_dir / "prompts" / "triage.md",
        result_schema={},
    )


def test_limits_take_the_agents_values_over_the_defaults() -> None:
    runs = RunsConfig()
    plain = Limits.from_config(runs, AgentConfig(kind="command", argv=("x",)))
    assert plain == Limits(300.0, 5.0, 50, 2 * 1024**3, 600)
    agent = AgentConfig(
        kind="command",
        argv=("x",),
        timeout_seconds=20,
        max_tool_calls=4,
        address_space_bytes=0,
        cpu_seconds=30,
    )
    tuned = Limits.from_config(runs, agent)
    assert (tuned.timeout_seconds, tuned.max_tool_calls) == (20, 4)
    assert (tuned.address_space_bytes, tuned.cpu_seconds) == (0, 30)


def test_limits_take_the_requests_resolved_timeout_and_budget(tmp_path: Path) -> None:
    request = replace(request_at(tmp_path), timeout_seconds=9.0, max_tool_calls=2)
    agent = AgentConfig(kind="command", argv=("x",), timeout_seconds=20, max_tool_calls=4)
    limits = Limits.from_config(RunsConfig(), agent, request)
    assert (limits.timeout_seconds, limits.max_tool_calls) == (9.0, 2)


def test_build_env_passes_the_allowlist_and_the_task_only(tmp_path: Path) -> None:
    request = request_at(tmp_path)
    environ = {"PATH": "/bin", "TZ": "UTC", "GITHUB_TOKEN": "t", "TASKYARD_X_SECRET": "s"}
    env = build_env(("PATH", "TZ", "LANG"), environ, request)
    assert env == {
        "PATH": "/bin",
        "TZ": "UTC",
        "CONTEXT_DIR": str(request.context_dir),
        "OUTPUT_DIR": str(request.output_dir),
        "TASK_ID": "7",
        "PROMPT_FILE": str(request.prompt_file),
        "HOME": str(request.task_dir / "home"),
    }


def test_a_command_agent_needs_an_argv() -> None:
    with pytest.raises(ConfigError):
        CommandAdapter(AgentConfig(kind="command"))


def test_launch_fills_placeholders_and_keeps_task_variables(tmp_path: Path) -> None:
    request = request_at(tmp_path)
    config = AgentConfig(
        kind="command",
        argv=("run", "--in={workspace}", "{prompt_file}", "{task_id}", "{x}", "{}"),
        env={"TASK_ID": "overridden?", "EXTRA": "1"},
    )
    launch = CommandAdapter(config).launch(request)
    assert launch.argv == (
        "run",
        f"--in={request.workspace}",
        str(request.prompt_file),
        "7",
        "{x}",
        "{}",
    )
    assert launch.env["TASK_ID"] == "7"
    assert launch.env["EXTRA"] == "1"
    assert launch.cwd == request.workspace
    assert launch.stdin_file == request.prompt_file


def test_the_parser_counts_tool_calls_and_ignores_odd_lines() -> None:
    parser = JsonLineParser()
    lines = ['{"type": "tool_call", "name": "sh"}', "not json", "[1]", '{"type": 3}', "{"]
    kinds = [event.kind for line in lines for event in parser.feed(line)]
    assert kinds == ["tool_call", "other", "other", "other", "other"]
    assert parser.tool_calls == 1


@pytest.mark.parametrize(
    ("exit_code", "result", "success", "error"),
    [
        (0, '{"a": 1}', True, None),
        (0, None, False, "the agent wrote no outputs/result.json"),
        (0, "nope", False, "outputs/result.json is not valid JSON"),
        (1, '{"a": 1}', False, "agent exited 1: boom"),
        (-9, None, False, "agent was killed by SIGKILL: boom"),
    ],
)
def test_command_outcome(
    tmp_path: Path, exit_code: int, result: str | None, success: bool, error: str | None
) -> None:
    request = request_at(tmp_path)
    request.output_dir.mkdir(parents=True)
    if result is not None:
        (request.output_dir / "result.json").write_text(result)
    outcome = command_outcome(request, JsonLineParser(), exit_code, "boom\n")
    assert outcome.success is success
    assert (outcome.error or "").startswith(error or "")
    assert (outcome.error is None) is (error is None)


def test_describe_exit() -> None:
    assert describe_exit(0) == "exited 0"
    assert describe_exit(-15) == "was killed by SIGTERM"


async def test_scripted_supervisor_answers_in_order_without_processes(tmp_path: Path) -> None:
    request = request_at(tmp_path)
    fake = ScriptedSupervisor(
        [
            fake_report(result={"n": 1}),
            fake_report(RunStatus.TIMED_OUT, reason="timed out after 1 s"),
        ]
    )
    spawned: list[ProcessRecord] = []

    async def on_spawn(record: ProcessRecord) -> None:
        spawned.append(record)

    adapter = FakeAdapter()
    first = await fake(adapter, request, Limits(), on_spawn=on_spawn)
    second = await fake(adapter, request, Limits())
    third = await fake(adapter, request, Limits())
    assert first.status is RunStatus.SUCCEEDED
    assert json.loads((request.output_dir / "result.json").read_text()) == {"n": 1}
    assert second.status is third.status is RunStatus.TIMED_OUT
    assert second.outcome is None
    assert spawned == [FAKE_PROCESS]
    assert len(fake.calls) == 3
    assert kill_stale_group(FAKE_PROCESS, 0.1) is False


async def test_scripted_supervisor_honours_cancel(tmp_path: Path) -> None:
    fake = ScriptedSupervisor(delay_seconds=30)
    cancel = asyncio.Event()
    asyncio.get_running_loop().call_later(0.05, cancel.set)
    async with asyncio.timeout(5):
        report = await fake(FakeAdapter(), request_at(tmp_path), Limits(), cancel=cancel)
    assert report.status is RunStatus.CANCELLED
    assert report.reason == "cancelled"
