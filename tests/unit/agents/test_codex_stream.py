"""The codex adapter without the binary: its launch, its stream parser, its outcome.

The streams in streams/ are recorded from `codex exec --json` 0.169.0 against the scripted
model server (tests/integration/test_real_agents.py runs the same scripts live).
"""

from __future__ import annotations

import json
import stat
import tomllib
from pathlib import Path

import pytest

from taskyard.agents import build_adapter
from taskyard.agents.base import AgentOutcome, AgentRequest
from taskyard.agents.codex import API_KEY_ENV, CodexAdapter
from taskyard.config import AgentConfig
from taskyard.exceptions import ConfigError

STREAMS = Path(__file__).parent / "streams"


def recorded(name: str) -> list[str]:
    return (STREAMS / f"codex-{name}.jsonl").read_text().splitlines()


SUCCESS = recorded("success")
RESULT = {"success": True, "actions": [], "analysis": "proof written", "summary": "done"}
RECONNECTING = json.dumps(
    {
        "type": "error",
        "message": "Reconnecting... waiting for network (Connection failed: error sending request)",
    }
)


@pytest.fixture
def request_(tmp_path: Path) -> AgentRequest:
    task = tmp_path / "task-7"
    for sub in ("workspace", "outputs", "prompts"):
        (task / sub).mkdir(parents=True)
    return AgentRequest(
        task_id="7",
        task_dir=task,
        workspace=task / "workspace",
        context_dir=task / "context",
        output_dir=task / "outputs",
        prompt_file=task / "prompts" / "route.md",
        result_schema={"type": "object", "required": ["success"]},
        base_env={"PATH": str(tmp_path / "bin"), "LANG": "C.UTF-8", "TASK_ID": "7"},
    )


@pytest.fixture
def fake_codex(tmp_path: Path) -> Path:
    path = tmp_path / "bin" / "codex"
    path.parent.mkdir()
    path.write_text("#!/bin/sh\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def adapter(**extra: object) -> CodexAdapter:
    config = AgentConfig.model_validate(
        {
            "kind": "codex",
            "model": "gpt-5.5",
            "base_url": "http://127.0.0.1:9/v1",
            "api_key": "sk-model",
            **extra,
        }
    )
    built = build_adapter(config)
    assert isinstance(built, CodexAdapter)
    return built


def finish(
    codex: CodexAdapter,
    request: AgentRequest,
    lines: list[str],
    exit_code: int = 0,
    stderr: str = "",
) -> AgentOutcome:
    parser = codex.new_parser()
    for line in lines:
        parser.feed(line)
    return codex.outcome(request, parser, exit_code, stderr)


def test_launch_isolates_codex_in_the_task_dir(request_: AgentRequest, fake_codex: Path) -> None:
    launch = adapter().launch(request_)
    task = request_.task_dir

    assert launch.argv == (
        str(fake_codex), "exec", "--json", "--skip-git-repo-check",
        "--sandbox", "workspace-write", "-C", str(request_.workspace),
        "-o", str(task / "outputs" / "last_message.txt"),
        "--output-schema", str(task / "result-schema.json"), "-m", "gpt-5.5", "-",
    )  # fmt: skip
    assert launch.cwd == request_.workspace
    assert launch.stdin_file == request_.prompt_file
    assert launch.env["CODEX_HOME"] == str(task / "home" / ".codex")
    assert launch.env["HOME"] == str(task / "home")
    assert launch.env[API_KEY_ENV] == "sk-model"
    assert launch.env["TASK_ID"] == "7"  # the supervisor's base env is kept
    assert json.loads(launch.files[task / "result-schema.json"]) == request_.result_schema
    assert launch.files[task / "outputs" / "last_message.txt"] == ""
    assert all(path.is_relative_to(task) for path in launch.files)


def test_config_toml_names_one_provider_and_nothing_else(
    request_: AgentRequest, fake_codex: Path
) -> None:
    launch = adapter(base_url='http://127.0.0.1:9/v1?x="q"').launch(request_)
    config = tomllib.loads(launch.files[request_.task_dir / "home" / ".codex" / "config.toml"])

    assert config["model_provider"] == "taskyard"
    assert config["model_providers"]["taskyard"] == {
        "name": "taskyard",
        "base_url": 'http://127.0.0.1:9/v1?x="q"',
        "env_key": API_KEY_ENV,
        "wire_api": "responses",
        "request_max_retries": 0,
        "stream_max_retries": 0,
    }
    assert config["check_for_update_on_startup"] is False
    assert config["analytics"] == {"enabled": False}
    assert config["features"] == {"plugins": False}
    assert "sk-model" not in launch.files[request_.task_dir / "home" / ".codex" / "config.toml"]


def test_config_env_comes_last(request_: AgentRequest, fake_codex: Path) -> None:
    launch = adapter(env={"RUST_LOG": "debug", "HOME": "/elsewhere"}).launch(request_)

    assert launch.env["RUST_LOG"] == "debug"
    assert launch.env["HOME"] == "/elsewhere"


def test_binary_given_as_a_path(request_: AgentRequest, fake_codex: Path) -> None:
    launch = adapter(binary=str(fake_codex)).launch(request_)

    assert launch.argv[0] == str(fake_codex)


def test_missing_binary_says_where_it_looked(request_: AgentRequest) -> None:
    with pytest.raises(ConfigError, match=r"codex binary 'codex' not found on PATH=.*bin"):
        adapter().launch(request_)
    with pytest.raises(ConfigError, match="not an executable file"):
        adapter(binary="/nonexistent/codex").launch(request_)


def test_missing_api_key_is_a_config_error(request_: AgentRequest, fake_codex: Path) -> None:
    with pytest.raises(ConfigError, match="api_key"):
        adapter(api_key=None).launch(request_)


def test_stream_events() -> None:
    parser = adapter().new_parser()
    events = [e for line in SUCCESS for e in parser.feed(line)]

    assert [e.kind for e in events] == ["other", "other", "tool_call", "other", "message", "usage"]
    assert events[2].detail == "/bin/bash -lc 'echo hello > proof.txt'"
    assert parser.feed("") == []
    assert parser.feed("not json at all")[0].kind == "other"
    assert parser.feed("[1, 2]")[0].kind == "other"
    assert parser.feed(RECONNECTING)[0].kind == "error"


def test_tool_calls_are_counted_once_per_item() -> None:
    parser = adapter().new_parser()
    mcp = {"id": "item_3", "type": "mcp_tool_call", "server": "taskyard", "tool": "comment"}
    lines = [
        json.dumps({"type": "item.started", "item": mcp}),
        json.dumps({"type": "item.completed", "item": {**mcp, "status": "completed"}}),
        json.dumps({"type": "item.completed", "item": {
            "id": "item_4", "type": "file_change", "changes": [{"path": "a.py"}]}}),
    ]  # fmt: skip
    events = [e for line in lines for e in parser.feed(line)]

    assert [(e.kind, e.detail) for e in events if e.kind == "tool_call"] == [
        ("tool_call", "mcp taskyard.comment"),
        ("tool_call", "edit a.py"),
    ]


def test_success_reads_the_last_message_file(request_: AgentRequest) -> None:
    (request_.output_dir / "last_message.txt").write_text('{"success": true, "from": "file"}')
    outcome = finish(adapter(), request_, SUCCESS)

    assert outcome.success
    assert outcome.error is None
    assert outcome.result == {"success": True, "from": "file"}
    assert outcome.tool_calls == 1
    assert outcome.session_id == "01a20ba2-ed95-7110-bb9e-aa32f367b553"
    assert outcome.usage.input_tokens == 200
    assert outcome.usage.cached_input_tokens == 50
    assert outcome.usage.output_tokens == 40
    assert outcome.usage.cost_usd is None  # no prices configured


def test_without_the_file_the_streamed_message_is_the_result(request_: AgentRequest) -> None:
    outcome = finish(adapter(), request_, SUCCESS)

    assert outcome.result == RESULT


def test_cost_from_configured_prices(request_: AgentRequest) -> None:
    priced = adapter(input_usd_per_mtok=2.0, cached_input_usd_per_mtok=0.5, output_usd_per_mtok=10)
    outcome = finish(priced, request_, SUCCESS)

    # 150 fresh input at $2, 50 cached at $0.5, 40 output at $10 per million tokens
    assert outcome.usage.cost_usd == pytest.approx((150 * 2 + 50 * 0.5 + 40 * 10) / 1e6)


def test_usage_adds_up_over_turns(request_: AgentRequest) -> None:
    outcome = finish(adapter(), request_, SUCCESS + SUCCESS[1:])

    assert (outcome.usage.input_tokens, outcome.usage.output_tokens) == (400, 80)


def test_api_error(request_: AgentRequest) -> None:
    outcome = finish(adapter(), request_, recorded("api-error-500"), 1, stderr="WARNING: x")

    assert not outcome.success
    assert outcome.result is None
    assert outcome.error == (
        "model API error: We\u2019re currently experiencing high demand, "
        "which may cause temporary errors."
    )


def test_api_error_body_is_reduced_to_its_message(request_: AgentRequest) -> None:
    outcome = finish(adapter(), request_, recorded("api-error-400"), exit_code=1)

    assert outcome.error == "model API error: bad model"


def test_crash_reports_the_exit_code_and_stderr(request_: AgentRequest) -> None:
    outcome = finish(adapter(), request_, SUCCESS[:3], exit_code=101, stderr="panicked at x\n")

    assert not outcome.success
    assert outcome.error == "codex exited 101: panicked at x"
    assert outcome.tool_calls == 1


def test_exit_0_without_a_completed_turn_is_a_failure(request_: AgentRequest) -> None:
    outcome = finish(adapter(), request_, [*SUCCESS[:3], RECONNECTING])

    assert not outcome.success
    assert outcome.error is not None
    assert outcome.error.startswith("codex stopped before finishing its turn: Reconnecting")


def test_a_final_message_that_is_not_json_fails(request_: AgentRequest) -> None:
    outcome = finish(adapter(), request_, recorded("text-answer"))

    assert not outcome.success
    assert outcome.error == "codex's final message is not a JSON object: I gave up."


def test_a_fenced_json_answer_is_read(request_: AgentRequest) -> None:
    (request_.output_dir / "last_message.txt").write_text('```json\n{"success": false}\n```\n')
    outcome = finish(adapter(), request_, SUCCESS)

    assert outcome.result == {"success": False}
