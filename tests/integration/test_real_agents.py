"""The codex and claude adapters, proven with the real CLIs against the scripted model server.

No supervisor here: each test writes the adapter's files, runs its argv with its env and stdin,
feeds stdout to its parser and asks it for the outcome — what the supervisor will do.
"""

from __future__ import annotations

import json
import re
import resource
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from taskyard.agents import build_adapter
from taskyard.agents.base import AgentAdapter, AgentOutcome, AgentRequest, Launch, StreamEvent
from taskyard.config import AgentConfig
from taskyard.devtools.model_server import ModelServer
from tests.agent_binaries import agent_binary

KINDS = ["codex", "claude"]
API_KEY = "sk-test-model-key"
GIB = 1024**3
RESULT_SCHEMA = {
    "type": "object",
    "properties": {
        "success": {"type": "boolean"},
        "actions": {"type": "array", "items": {"type": "object"}},
        "analysis": {"type": "string"},
        "summary": {"type": "string"},
    },
    "required": ["success", "actions", "analysis", "summary"],
    "additionalProperties": False,
}
RESULT = {"success": True, "actions": [], "analysis": "proof written", "summary": "done"}
MODELS = {"codex": "gpt-5.5", "claude": "claude-sonnet-4-5"}
ServerFactory = Callable[[Any], ModelServer]


@dataclass
class Run:
    outcome: AgentOutcome
    events: list[StreamEvent]
    launch: Launch
    exit_code: int
    stderr: str
    seconds: float
    request: AgentRequest


def make_request(root: Path, task_id: str = "1", prompt: str = "Write the proof.") -> AgentRequest:
    task_dir = root / f"task-{task_id}"
    for sub in ("workspace", "context", "outputs", "prompts"):
        (task_dir / sub).mkdir(parents=True)
    prompt_file = task_dir / "prompts" / "route.md"
    prompt_file.write_text(prompt + "\n")
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "TASK_ID": task_id,
        "CONTEXT_DIR": str(task_dir / "context"),
        "OUTPUT_DIR": str(task_dir / "outputs"),
        "PROMPT_FILE": str(prompt_file),
    }
    return AgentRequest(
        task_id=task_id,
        task_dir=task_dir,
        workspace=task_dir / "workspace",
        context_dir=task_dir / "context",
        output_dir=task_dir / "outputs",
        prompt_file=prompt_file,
        result_schema=RESULT_SCHEMA,
        base_env=env,
    )


def make_adapter(kind: str, server: ModelServer, **extra: Any) -> AgentAdapter:
    base_url = f"{server.url}/v1" if kind == "codex" else server.url
    config = AgentConfig(
        kind=kind,
        binary=agent_binary(kind),
        model=MODELS[kind],
        base_url=base_url,
        api_key=API_KEY,
        **extra,
    )
    return build_adapter(config)


def run_agent(
    adapter: AgentAdapter,
    request: AgentRequest,
    address_space: int | None = None,
    wrap: list[str] | None = None,
) -> Run:
    """What the supervisor does, minus the limits it enforces while the agent runs."""
    launch = adapter.launch(request)
    for path, text in launch.files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    def limit() -> None:
        if address_space is not None:
            resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))

    assert launch.stdin_file is not None
    started = time.monotonic()
    with launch.stdin_file.open("rb") as stdin:
        proc = subprocess.run(
            [*(wrap or []), *launch.argv],
            env=dict(launch.env),
            cwd=launch.cwd,
            stdin=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            preexec_fn=limit,
            start_new_session=True,
        )
    seconds = time.monotonic() - started
    parser = adapter.new_parser()
    events = [e for line in proc.stdout.splitlines() for e in parser.feed(line)]
    outcome = adapter.outcome(request, parser, proc.returncode, proc.stderr[-2000:])
    print(f"{adapter.kind}: exit {proc.returncode} in {seconds:.2f} s; {outcome}")
    return Run(outcome, events, launch, proc.returncode, proc.stderr, seconds, request)


_OUTGOING = re.compile(r"\b(?:connect|sendto|sendmsg|sendmmsg)\(.*")
_INET = re.compile(
    r'sin6?_port=htons\((\d+)\), (?:sin_addr=inet_addr|inet_pton)\((?:AF_INET6, )?"([^"]+)"'
)


def _destinations(strace_log: str) -> set[tuple[str, int]]:
    """Every internet address a traced process connected or sent to."""
    found = set()
    for call in _OUTGOING.findall(strace_log):
        found |= {(addr, int(port)) for port, addr in _INET.findall(call)}
    return found


def proof_script(result: Any = RESULT) -> dict[str, Any]:
    return {
        "scripts": [
            {
                "name": "proof",
                "usage": {"input_tokens": 120, "output_tokens": 40},
                "turns": [{"shell": "echo hello > proof.txt"}, {"final": result}],
            }
        ]
    }


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    agent_binary(request.param)  # skip (or fail in CI) before starting anything
    return str(request.param)


@pytest.fixture
def task_root(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "tasks"
    root.mkdir()
    yield root


def test_shell_turn_then_structured_result(
    kind: str, model_server: ServerFactory, task_root: Path
) -> None:
    server = model_server(proof_script())
    request = make_request(task_root)
    run = run_agent(make_adapter(kind, server), request)

    assert run.outcome.error is None, run.stderr
    assert run.outcome.success
    assert (request.workspace / "proof.txt").read_text() == "hello\n"
    assert run.outcome.result == RESULT
    assert run.outcome.tool_calls == 1
    assert [e.kind for e in run.events].count("tool_call") == 1
    assert run.outcome.usage.input_tokens >= 240  # two model turns of 120
    assert run.outcome.usage.output_tokens >= 80
    assert run.outcome.session_id
    assert [r.turn for r in server.turn_requests()] == [0, 1]
    assert run.seconds < 20


def test_result_off_schema_is_still_returned(
    kind: str, model_server: ServerFactory, task_root: Path
) -> None:
    off_schema = {"verdict": "looks fine", "score": 3}
    server = model_server({"scripts": [{"turns": [{"final": off_schema}]}]})
    run = run_agent(make_adapter(kind, server), make_request(task_root))

    assert run.outcome.result == off_schema  # validating it is the caller's job


def test_api_error_fails_the_run_in_words(
    kind: str, model_server: ServerFactory, task_root: Path
) -> None:
    server = model_server({"scripts": [{"turns": [{"error": {"status": 500}}]}]})
    run = run_agent(make_adapter(kind, server), make_request(task_root))

    assert not run.outcome.success
    assert run.outcome.result is None
    assert run.outcome.error is not None
    assert run.outcome.error.startswith("model API error: ")
    assert len(server.turn_requests()) == 1  # no retries


def test_plain_text_answer_is_not_a_result(
    kind: str, model_server: ServerFactory, task_root: Path
) -> None:
    server = model_server({"scripts": [{"turns": [{"final": "I could not do it."}]}]})
    run = run_agent(make_adapter(kind, server), make_request(task_root))

    # codex ends on the text; claude insists on its StructuredOutput tool, once more
    expected = {
        "codex": "codex's final message is not a JSON object: I could not do it.",
        "claude": "claude gave no structured result: script exhausted",
    }
    assert not run.outcome.success
    assert run.outcome.error == expected[kind]


def test_claude_max_turns(model_server: ServerFactory, task_root: Path) -> None:
    agent_binary("claude")
    turns = [{"shell": "true"}] * 3 + [{"final": RESULT}]
    server = model_server({"scripts": [{"turns": turns}]})
    run = run_agent(make_adapter("claude", server, max_turns=1), make_request(task_root))

    assert not run.outcome.success
    assert run.outcome.error == "max turns exceeded (1)"


def test_talks_to_nothing_but_the_model_server(
    kind: str, model_server: ServerFactory, task_root: Path
) -> None:
    strace = shutil.which("strace")
    if strace is None:
        pytest.skip("strace is not installed")
    server = model_server(proof_script())
    request = make_request(task_root)
    trace = task_root / "network.trace"
    wrap = [strace, "-f", "-qq", "-e", "trace=%network", "-o", str(trace)]
    run = run_agent(make_adapter(kind, server), request, wrap=wrap)

    assert run.outcome.success, run.outcome.error
    assert not {k for k in run.launch.env if k.lower().endswith("_proxy")}
    port = int(server.url.rsplit(":", 1)[1])
    destinations = _destinations(trace.read_text())
    assert destinations == {("127.0.0.1", port)}, destinations
    assert {(r.method, r.path) for r in server.requests} <= {
        ("POST", "/v1/responses"),
        ("HEAD", "/"),
        ("POST", "/v1/messages"),
    }
    assert all(
        r.headers.get("authorization", "").endswith(API_KEY)
        or r.headers.get("x-api-key") == API_KEY
        for r in server.turn_requests()
    )


# The smallest RLIMIT_AS each CLI is known to work under, with room to spare. Measured with
# codex 0.169.0 and claude 2.1.197: codex works from 0.75 GiB; claude (Bun) aborts at start
# under 2 GiB ("MemoryExhaustion", SIGABRT) and works from about 2.2 GiB.
ADDRESS_SPACE = {"codex": 2 * GIB, "claude": 4 * GIB}


def test_runs_under_its_address_space_limit(
    kind: str, model_server: ServerFactory, task_root: Path
) -> None:
    server = model_server(proof_script())
    request = make_request(task_root)
    run = run_agent(make_adapter(kind, server), request, address_space=ADDRESS_SPACE[kind])

    assert run.outcome.success, (run.outcome.error, run.stderr[-500:])
    assert (request.workspace / "proof.txt").is_file()


def test_concurrent_runs_each_follow_their_script(
    kind: str, model_server: ServerFactory, task_root: Path
) -> None:
    scripts = [
        {
            "name": f"task-{n}",
            "match": f"task number {n}.",
            "turns": [
                {"shell": f"echo {n} > proof-{n}.txt"},
                {"shell": f"echo {n} >> proof-{n}.txt"},
                {"final": {**RESULT, "summary": f"task {n}"}},
            ],
        }
        for n in range(3)
    ]
    server = model_server({"scripts": scripts})
    adapter = make_adapter(kind, server)
    requests = [make_request(task_root, str(n), f"Do task number {n}.") for n in range(3)]
    with ThreadPoolExecutor(3) as pool:
        runs = list(pool.map(lambda r: run_agent(adapter, r), requests))

    for n, run in enumerate(runs):
        assert run.outcome.success, run.outcome.error
        assert run.outcome.result == {**RESULT, "summary": f"task {n}"}
        assert (requests[n].workspace / f"proof-{n}.txt").read_text() == f"{n}\n{n}\n"
    assert sorted(r.script or "" for r in server.turn_requests()) == sorted(
        f"task-{n}" for n in range(3) for _ in range(3)
    )


def test_a_run_whose_only_command_failed_is_flagged(
    kind: str, model_server: ServerFactory, task_root: Path
) -> None:
    """The field symptom: every command failed, yet the task ended `succeeded` (codex's own
    sandbox could not start its helper and reported 0 tool calls). Now the failed command is
    counted, and a run whose every tool call failed fails."""
    turns = [{"shell": "echo partial; cat /nonexistent-file"}, {"final": RESULT}]
    server = model_server({"scripts": [{"turns": turns}]})
    run = run_agent(make_adapter(kind, server), make_request(task_root))

    assert not run.outcome.success
    assert run.outcome.tool_calls == 1
    assert run.outcome.usage.tool_errors == 1
    assert run.outcome.error is not None
    assert run.outcome.error.startswith("every tool call failed (1 of 1): ")
    assert "cat /nonexistent-file" in run.outcome.error


def test_codex_own_sandbox_works_without_taskyards(
    model_server: ServerFactory, task_root: Path
) -> None:
    """runs.sandbox: none keeps codex's own sandbox (workspace-write), and it works even with
    the task under /tmp: the command runs, the workspace is writable, the system is not."""
    agent_binary("codex")
    outside = task_root / "outside.txt"
    turns = [{"shell": f"echo hi > proof.txt; touch {outside}; true"}, {"final": RESULT}]
    server = model_server({"scripts": [{"turns": turns}]})
    request = make_request(task_root)
    run = run_agent(make_adapter("codex", server), request)

    assert run.outcome.success, (run.outcome.error, run.stderr[-500:])
    assert "could not create PATH aliases" not in run.stderr
    assert (request.workspace / "proof.txt").read_text() == "hi\n"
    assert not outside.exists()  # outside the workspace: read-only in codex's sandbox
    output = json.dumps(server.turn_requests()[-1].body)
    assert "Read-only file system" in output
