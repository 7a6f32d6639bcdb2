"""The `command` agent end to end: real commands under the real supervisor."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

from taskyard.agents import build_adapter
from taskyard.agents.base import AgentRequest
from taskyard.agents.command import CommandAdapter
from taskyard.agents.fake import FakeAdapter
from taskyard.agents.supervisor import Limits, RunStatus, build_env, supervise
from taskyard.config import AgentConfig

LIMITS = Limits(timeout_seconds=30, kill_grace_seconds=0.5)
PARENT_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "GITHUB_TOKEN": "ghp_secret",
    "TASKYARD_GITHUB_SECRET": "hook-secret",
    "OPENAI_API_KEY": "sk-parent",
    "AWS_SECRET_ACCESS_KEY": "aws-secret",
    "TASKYARD_DATABASE_URL": "postgresql://user:pw@db/taskyard",
}
SECRET_NAMES = ("GITHUB_TOKEN", "TASKYARD_GITHUB_SECRET", "OPENAI_API_KEY", "AWS_SECRET_ACCESS_KEY")


def make_request(root: Path, environ: dict[str, str] = PARENT_ENV) -> AgentRequest:
    task_dir = root / "task-42"
    for name in ("workspace", "context", "prompts", "outputs"):
        (task_dir / name).mkdir(parents=True, exist_ok=True)
    prompt = task_dir / "prompts" / "fix.md"
    prompt.write_text("fix the bug\n")
    request = AgentRequest(
        task_id="42",
        task_dir=task_dir,
        workspace=task_dir / "workspace",
        context_dir=task_dir / "context",
        output_dir=task_dir / "outputs",
        prompt_file=prompt,
        result_schema={},
    )
    allowlist = ("PATH", "LANG", "LC_ALL", "TZ", "TERM")
    return replace(request, base_env=build_env(allowlist, environ, request))


def command(*argv: str, **config: object) -> CommandAdapter:
    return CommandAdapter(AgentConfig(kind="command", argv=argv, **config))  # type: ignore[arg-type]


def child_env(request: AgentRequest) -> dict[str, str]:
    text = (request.output_dir / "env.txt").read_text()
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


async def test_a_command_that_writes_its_result_succeeds(tmp_path: Path) -> None:
    request = make_request(tmp_path)
    script = (
        'echo \'{"type": "tool_call", "name": "grep"}\'; echo working on it; '
        'echo \'{"summary": "fixed", "actions": []}\' > "{output_dir}/result.json"'
    )
    report = await supervise(command("sh", "-c", script), request, LIMITS)
    assert report.status is RunStatus.SUCCEEDED
    assert report.reason is None
    assert report.outcome is not None
    assert report.outcome.result == {"summary": "fixed", "actions": []}
    assert report.outcome.tool_calls == 1 and report.tool_calls == 1
    log = (request.output_dir / "log.jsonl").read_text().splitlines()
    assert json.loads(log[0]) == {"type": "tool_call", "name": "grep"}
    assert json.loads(log[1]) == {"stream": "stdout", "text": "working on it"}


async def test_the_child_gets_only_the_allowlist_and_the_task_variables(tmp_path: Path) -> None:
    request = make_request(tmp_path)
    await supervise(command("env"), request, LIMITS)
    log = (request.output_dir / "log.jsonl").read_text()
    for secret in ("ghp_secret", "hook-secret", "sk-parent", "aws-secret", "user:pw"):
        assert secret not in log
    lines = [json.loads(line) for line in log.splitlines()]
    text = [line["text"] for line in lines if line.get("stream") == "stdout"]
    env = dict(line.split("=", 1) for line in text)
    assert env.pop("PWD", str(request.workspace)) == str(request.workspace)  # set by bwrap
    assert set(env) == {
        "PATH",
        "LANG",
        "HOME",
        "CONTEXT_DIR",
        "OUTPUT_DIR",
        "TASK_ID",
        "PROMPT_FILE",
    }
    assert env["CONTEXT_DIR"] == str(request.context_dir)
    assert env["OUTPUT_DIR"] == str(request.output_dir)
    assert env["TASK_ID"] == "42"
    assert env["PROMPT_FILE"] == str(request.prompt_file)
    assert env["HOME"] == str(request.task_dir / "home")
    assert env["PATH"] == PARENT_ENV["PATH"]
    assert (request.task_dir / "home").is_dir()


async def test_the_agents_own_key_is_the_only_secret_it_gets(tmp_path: Path) -> None:
    request = make_request(tmp_path)
    script = 'env > "$OUTPUT_DIR/env.txt"; echo "{}" > "$OUTPUT_DIR/result.json"'
    adapter = command("sh", "-c", script, api_key="sk-agent-own", env={"MODEL": "m1"})
    await supervise(adapter, request, LIMITS)
    env = child_env(request)
    assert env["AGENT_API_KEY"] == "sk-agent-own"
    assert env["MODEL"] == "m1"
    assert not set(SECRET_NAMES) & set(env)


async def test_placeholders_and_stdin_carry_the_task(tmp_path: Path) -> None:
    request = make_request(tmp_path)
    program = (
        "import json, sys; prompt, ctx, task, ws = sys.argv[1:5]; "
        "out = sys.argv[5]; data = {'prompt': open(prompt).read(), 'stdin': sys.stdin.read(), "
        "'ctx': ctx, 'task': task, 'ws': ws, 'braces': sys.argv[6]}; "
        "json.dump(data, open(out + '/result.json', 'w'))"
    )
    adapter = command(
        sys.executable,
        "-c",
        program,
        "{prompt_file}",
        "{context_dir}",
        "{task_id}",
        "{workspace}",
        "{output_dir}",
        "{not_a_placeholder} {}",
    )
    report = await supervise(adapter, request, LIMITS)
    assert report.status is RunStatus.SUCCEEDED, report.reason
    assert report.outcome is not None
    assert report.outcome.result == {
        "prompt": "fix the bug\n",
        "stdin": "fix the bug\n",
        "ctx": str(request.context_dir),
        "task": "42",
        "ws": str(request.workspace),
        "braces": "{not_a_placeholder} {}",
    }


async def test_the_command_runs_in_the_workspace(tmp_path: Path) -> None:
    request = make_request(tmp_path)
    script = 'pwd > "$OUTPUT_DIR/cwd"; echo "{}" > "$OUTPUT_DIR/result.json"'
    await supervise(command("sh", "-c", script), request, LIMITS)
    assert (request.output_dir / "cwd").read_text().strip() == str(request.workspace)


async def test_exit_zero_without_a_result_file_fails(tmp_path: Path) -> None:
    request = make_request(tmp_path)
    report = await supervise(command("true"), request, LIMITS)
    assert report.status is RunStatus.FAILED
    assert report.reason == "the agent wrote no outputs/result.json"


async def test_a_result_that_is_not_an_object_fails(tmp_path: Path) -> None:
    request = make_request(tmp_path)
    report = await supervise(
        command("sh", "-c", 'echo "[1, 2]" > "$OUTPUT_DIR/result.json"'), request, LIMITS
    )
    assert report.status is RunStatus.FAILED
    assert report.reason is not None and "not an object" in report.reason


async def test_a_stale_result_of_an_earlier_attempt_is_not_taken(tmp_path: Path) -> None:
    request = make_request(tmp_path)
    (request.output_dir / "result.json").write_text('{"from": "attempt 1"}')
    report = await supervise(command("true"), request, LIMITS)
    assert report.status is RunStatus.FAILED


async def test_a_nonzero_exit_fails_even_with_a_result(tmp_path: Path) -> None:
    request = make_request(tmp_path)
    script = 'echo "{}" > "$OUTPUT_DIR/result.json"; echo "tests failed" >&2; exit 2'
    report = await supervise(command("sh", "-c", script), request, LIMITS)
    assert report.status is RunStatus.FAILED
    assert report.reason == "agent exited 2: tests failed"


async def test_an_agent_that_finishes_over_budget_fails(tmp_path: Path) -> None:
    request = make_request(tmp_path)
    script = (
        'for i in 1 2 3 4 5; do echo \'{"type": "tool_call"}\'; done; '
        'echo "{}" > "$OUTPUT_DIR/result.json"'
    )
    limits = replace(LIMITS, max_tool_calls=2)
    report = await supervise(command("sh", "-c", script), request, limits)
    assert report.status is RunStatus.FAILED
    assert report.reason == "tool-call budget of 2 exceeded"
    assert report.stopped_by == "tool_budget"


async def test_usage_lines_add_up(tmp_path: Path) -> None:
    request = make_request(tmp_path)
    script = (
        'echo \'{"type": "usage", "input_tokens": 100, "output_tokens": 7, "cost_usd": 0.25}\'; '
        'echo \'{"type": "usage", "input_tokens": 50, "output_tokens": 3, "cost_usd": 0.5}\'; '
        'echo "{}" > "$OUTPUT_DIR/result.json"'
    )
    report = await supervise(command("sh", "-c", script), request, LIMITS)
    assert report.outcome is not None
    usage = report.outcome.usage
    assert (usage.input_tokens, usage.output_tokens, usage.cost_usd) == (150, 10, 0.75)


async def test_build_adapter_makes_a_runnable_command_agent(tmp_path: Path) -> None:
    request = make_request(tmp_path)
    config = AgentConfig(
        kind="command", argv=("sh", "-c", 'echo "{\\"ok\\": true}" > "$OUTPUT_DIR/result.json"')
    )
    report = await supervise(build_adapter(config), request, LIMITS)
    assert report.status is RunStatus.SUCCEEDED
    assert report.outcome is not None and report.outcome.result == {"ok": True}


async def test_the_fake_adapter_runs_its_script_under_the_supervisor(tmp_path: Path) -> None:
    request = make_request(tmp_path)
    good = FakeAdapter.succeeding({"summary": "done"}, tool_calls=2, lines=["thinking"])
    report = await supervise(good, request, LIMITS)
    assert report.status is RunStatus.SUCCEEDED
    assert report.outcome is not None and report.outcome.result == {"summary": "done"}
    assert report.tool_calls == 2
    assert good.requests == [replace(request, sandboxed=True)]  # the adapter knows it is boxed

    bad = await supervise(FakeAdapter.failing("no model", exit_code=4), request, LIMITS)
    assert bad.status is RunStatus.FAILED and bad.reason == "agent exited 4: no model"

    hung = await supervise(FakeAdapter.hanging(), request, replace(LIMITS, timeout_seconds=0.5))
    assert hung.status is RunStatus.TIMED_OUT
