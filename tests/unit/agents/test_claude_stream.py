"""The claude adapter without the binary: its launch, its stream parser, its outcome.

The streams in streams/ are recorded from `claude -p --output-format stream-json --verbose`
2.1.197 against the scripted model server (tests/integration/test_real_agents.py runs the same
scripts live).
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from taskyard.agents import build_adapter
from taskyard.agents.base import AgentOutcome, AgentRequest
from taskyard.agents.claude import ClaudeAdapter
from taskyard.config import AgentConfig
from taskyard.exceptions import ConfigError

STREAMS = Path(__file__).parent / "streams"
RESULT = {"success": True, "actions": [], "analysis": "proof written", "summary": "done"}
SCHEMA = {"type": "object", "required": ["success"]}


def recorded(name: str) -> list[str]:
    return (STREAMS / f"claude-{name}.jsonl").read_text().splitlines()


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
        result_schema=SCHEMA,
        base_env={"PATH": str(tmp_path / "bin"), "LANG": "C.UTF-8", "TASK_ID": "7"},
    )


@pytest.fixture
def fake_claude(tmp_path: Path) -> Path:
    path = tmp_path / "bin" / "claude"
    path.parent.mkdir()
    path.write_text("#!/bin/sh\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def adapter(**extra: object) -> ClaudeAdapter:
    settings = {
        "kind": "claude",
        "model": "claude-sonnet-4-5",
        "base_url": "http://127.0.0.1:9",
        "api_key": "sk-ant-model",
        "max_turns": 12,
    }
    built = build_adapter(AgentConfig.model_validate({**settings, **extra}))
    assert isinstance(built, ClaudeAdapter)
    return built


def finish(
    claude: ClaudeAdapter, request: AgentRequest, lines: list[str], exit_code: int = 0
) -> AgentOutcome:
    parser = claude.new_parser()
    for line in lines:
        parser.feed(line)
    return claude.outcome(request, parser, exit_code, "")


def test_launch(request_: AgentRequest, fake_claude: Path) -> None:
    launch = adapter().launch(request_)
    argv = list(launch.argv)
    task = request_.task_dir

    assert argv[:5] == [str(fake_claude), "-p", "--output-format", "stream-json", "--verbose"]
    assert argv[argv.index("--max-turns") + 1] == "12"
    assert json.loads(argv[argv.index("--json-schema") + 1]) == SCHEMA
    assert argv[argv.index("--model") + 1] == "claude-sonnet-4-5"
    assert argv[argv.index("--setting-sources") + 1] == "user"
    assert "--strict-mcp-config" in argv
    assert argv[argv.index("--allowedTools") :] == [
        "--allowedTools",
        "Bash",
        "Write",
        "Edit",
        "Read",
    ]
    assert "--dangerously-skip-permissions" not in argv  # refused as root
    assert launch.cwd == request_.workspace
    assert launch.stdin_file == request_.prompt_file
    assert launch.env["CLAUDE_CONFIG_DIR"] == str(task / "home" / ".claude")
    assert launch.env["HOME"] == str(task / "home")
    assert launch.env["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:9"
    assert launch.env["ANTHROPIC_API_KEY"] == "sk-ant-model"
    assert launch.env["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] == "1"
    assert launch.env["CLAUDE_CODE_MAX_RETRIES"] == "0"
    assert launch.env["TASK_ID"] == "7"
    assert all(path.is_relative_to(task) for path in launch.files)
    assert all("sk-ant-model" not in text for text in launch.files.values())


def test_no_base_url_means_the_provider_default(request_: AgentRequest, fake_claude: Path) -> None:
    launch = adapter(base_url=None, model=None).launch(request_)

    assert "ANTHROPIC_BASE_URL" not in launch.env
    assert "--model" not in launch.argv


def test_config_env_comes_last(request_: AgentRequest, fake_claude: Path) -> None:
    launch = adapter(env={"CLAUDE_CODE_MAX_RETRIES": "3"}).launch(request_)

    assert launch.env["CLAUDE_CODE_MAX_RETRIES"] == "3"


def test_missing_binary(request_: AgentRequest) -> None:
    with pytest.raises(ConfigError, match=r"claude binary 'claude' not found on PATH="):
        adapter().launch(request_)


def test_missing_api_key(request_: AgentRequest, fake_claude: Path) -> None:
    with pytest.raises(ConfigError, match="api_key"):
        adapter(api_key=None).launch(request_)


def test_stream_events() -> None:
    parser = adapter().new_parser()
    events = [e for line in recorded("success") for e in parser.feed(line)]

    assert [e.kind for e in events] == ["other", "tool_call", "other", "message", "other", "usage"]
    assert events[1].detail == "Bash: echo hello > proof.txt"
    assert events[3].detail == "structured output"  # the answer is not a tool call
    assert parser.feed("") == []
    assert parser.feed("{oops")[0].kind == "other"
    assert parser.feed('"a string"')[0].kind == "other"


def test_success(request_: AgentRequest) -> None:
    outcome = finish(adapter(), request_, recorded("success"))

    assert outcome.success
    assert outcome.error is None
    assert outcome.result == RESULT
    assert outcome.tool_calls == 1
    assert outcome.session_id == "510dbab5-9cb0-4094-8c18-eabb24069aec"
    # input = uncached 150 + cache reads 50; the cost is claude's own figure
    assert (outcome.usage.input_tokens, outcome.usage.cached_input_tokens) == (200, 50)
    assert outcome.usage.output_tokens == 40
    assert outcome.usage.cost_usd == pytest.approx(0.001065)


def test_configured_prices_override_claudes_cost(request_: AgentRequest) -> None:
    priced = adapter(input_usd_per_mtok=3.0, output_usd_per_mtok=15.0)
    outcome = finish(priced, request_, recorded("success"))

    assert outcome.usage.cost_usd == pytest.approx((200 * 3 + 40 * 15) / 1e6)


def test_result_text_is_the_fallback_for_structured_output(request_: AgentRequest) -> None:
    lines = recorded("success")
    result = json.loads(lines[-1])
    del result["structured_output"]
    outcome = finish(adapter(), request_, [json.dumps(result)])

    assert outcome.result == RESULT


def test_api_error(request_: AgentRequest) -> None:
    outcome = finish(adapter(), request_, recorded("api-error-400"), exit_code=1)

    assert not outcome.success
    assert outcome.result is None
    assert outcome.error == "model API error: 400 bad model"


def test_api_error_500(request_: AgentRequest) -> None:
    outcome = finish(adapter(), request_, recorded("api-error-500"), exit_code=1)

    assert outcome.error is not None
    assert outcome.error.startswith("model API error: 500 overloaded.")


def test_max_turns(request_: AgentRequest) -> None:
    outcome = finish(adapter(max_turns=1), request_, recorded("max-turns"), exit_code=1)

    assert not outcome.success
    assert outcome.error == "max turns exceeded (1)"
    assert outcome.tool_calls == 1
    assert outcome.usage.output_tokens == 20


def test_a_text_answer_is_no_result(request_: AgentRequest) -> None:
    outcome = finish(adapter(), request_, recorded("text-answer"))

    assert not outcome.success
    assert outcome.error == "claude gave no structured result: script exhausted"


def test_crash_without_a_result_event(request_: AgentRequest) -> None:
    claude = adapter()
    parser = claude.new_parser()
    parser.feed(recorded("success")[0])
    outcome = claude.outcome(request_, parser, 1, "TypeError: x is undefined\n")

    assert not outcome.success
    assert outcome.error == "claude exited 1 without a result: TypeError: x is undefined"
    assert outcome.session_id == "510dbab5-9cb0-4094-8c18-eabb24069aec"


def test_too_little_address_space_says_so(request_: AgentRequest) -> None:
    stderr = "ASSERTION FAILED: MemoryExhaustion: Crash intentionally because memory is exhausted."
    claude = adapter()
    outcome = claude.outcome(request_, claude.new_parser(), -6, stderr)

    assert outcome.error is not None
    assert outcome.error.startswith("claude exited -6: out of memory (MemoryExhaustion)")
    assert "address_space_bytes" in outcome.error


def test_other_failures_name_the_subtype(request_: AgentRequest) -> None:
    event = {
        "type": "result",
        "subtype": "error_during_execution",
        "is_error": True,
        "errors": ["tool crashed"],
    }
    outcome = finish(adapter(), request_, [json.dumps(event)], exit_code=1)

    assert outcome.error == "claude failed (error_during_execution): tool crashed"
