"""The per-task cost ceiling against real processes: a command agent whose usage lines pass
it, the real claude whose model messages pass it mid-run (priced by the table), the real
codex whose cost is known only when its turn ends; and the executor ending the task."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from taskyard.agents import build_adapter
from taskyard.agents.command import CommandAdapter
from taskyard.agents.process import group_members
from taskyard.agents.supervisor import Limits, RunStatus, supervise
from taskyard.config import AgentConfig, ModelPrice
from taskyard.devtools.model_server import ModelServer
from taskyard.models import TaskStatus
from taskyard.run.budget import priced
from taskyard.run.executor import TaskExecutor
from taskyard.store import MemoryStore
from tests.agent_binaries import agent_binary
from tests.executor_harness import build_executor
from tests.integration.test_executor import queue_task
from tests.integration.test_real_agents import MODELS, RESULT
from tests.integration.test_real_agents import make_request as agent_request
from tests.integration.test_supervisor import make_request

GIB = 1024**3
LIMITS = Limits(timeout_seconds=60, kill_grace_seconds=0.5, max_tool_calls=50, max_cost_usd=0.01)

# Reports $0.004 three times, then would work for five minutes.
SPENDER = r"""
import json, time
for _ in range(3):
    print(json.dumps({"type": "usage", "input_tokens": 1000, "output_tokens": 100,
                      "cost_usd": 0.004}), flush=True)
time.sleep(300)
"""
# Does its work, writes its result, and reports what it cost as it exits.
FINISHER = r"""
import json, os, pathlib, sys
pathlib.Path(os.environ["OUTPUT_DIR"], "result.json").write_text(json.dumps({
    "success": True, "actions": [], "analysis": "done", "summary": "ok"}))
print(json.dumps({"type": "usage", "cost_usd": float(sys.argv[1])}), flush=True)
"""


def python(script: str, *args: str) -> CommandAdapter:
    return CommandAdapter(AgentConfig(kind="command", argv=(sys.executable, "-c", script, *args)))


async def test_a_command_agent_is_stopped_once_its_cost_passes_the_ceiling(tmp_path: Path) -> None:
    request = make_request(tmp_path)
    began = time.monotonic()
    report = await supervise(python(SPENDER), request, LIMITS)
    took = time.monotonic() - began
    assert report.status is RunStatus.FAILED
    assert report.reason == "cost ceiling $0.01 exceeded ($0.012 so far)"
    assert report.stopped_by == "cost_ceiling"
    assert took < 15  # not the five minutes it meant to run
    assert report.outcome is not None and report.outcome.result is None
    assert report.outcome.usage.cost_usd == pytest.approx(0.012)
    assert report.outcome.usage.input_tokens == 3000  # what it used is kept
    assert report.pgid is not None and group_members(report.pgid) == []
    log = [json.loads(line) for line in (request.output_dir / "log.jsonl").read_text().splitlines()]
    assert log[-1]["stream"] == "taskyard" and log[-1]["reason"].startswith("cost ceiling")


@pytest.mark.parametrize(
    ("cost", "status"), [(0.02, RunStatus.FAILED), (0.005, RunStatus.SUCCEEDED)]
)
async def test_a_cost_known_only_at_the_end_is_judged_then(
    tmp_path: Path, cost: float, status: RunStatus
) -> None:
    report = await supervise(python(FINISHER, str(cost)), make_request(tmp_path), LIMITS)
    assert report.status is status
    if status is RunStatus.FAILED:
        assert report.reason is not None and report.reason.startswith("cost ceiling $0.01 exceeded")
        assert report.stopped_by == "cost_ceiling"
    else:
        assert report.reason is None and report.outcome is not None
        assert report.outcome.usage.cost_usd == pytest.approx(0.005)


async def test_without_a_ceiling_nothing_is_stopped(tmp_path: Path) -> None:
    limits = Limits(timeout_seconds=60, kill_grace_seconds=0.5)
    report = await supervise(python(FINISHER, "50"), make_request(tmp_path), limits)
    assert report.status is RunStatus.SUCCEEDED


# --- the real CLIs -----------------------------------------------------------------------


def real_agent(kind: str, server: ModelServer, price: ModelPrice) -> Any:
    config = AgentConfig(
        kind=kind,
        binary=agent_binary(kind),
        model=MODELS[kind],
        base_url=f"{server.url}/v1" if kind == "codex" else server.url,
        api_key="sk-test-model-key",
    )
    return build_adapter(priced(config, {MODELS[kind]: price}))


async def test_real_claude_is_stopped_mid_run_when_its_messages_pass_the_ceiling(
    tmp_path: Path, model_server: Any
) -> None:
    """A million input tokens a turn at $3 per million: the first model message passes the
    $1 ceiling; the next turn would hang until the timeout."""
    script = {
        "scripts": [
            {
                "usage": {"input_tokens": 1_000_000, "output_tokens": 10},
                "turns": [{"shell": "echo working"}, {"hang": True}],
            }
        ]
    }
    server = model_server(script)
    adapter = real_agent("claude", server, ModelPrice(input_usd_per_mtok=3, output_usd_per_mtok=15))
    limits = Limits(timeout_seconds=60, kill_grace_seconds=1, max_cost_usd=1.0,
                    address_space_bytes=4 * GIB)  # fmt: skip
    began = time.monotonic()
    report = await supervise(adapter, agent_request(tmp_path), limits)
    took = time.monotonic() - began
    assert report.status is RunStatus.FAILED, report
    assert report.reason is not None and report.reason.startswith("cost ceiling $1 exceeded ($3")
    assert took < 45
    assert report.outcome is not None and report.outcome.usage.input_tokens >= 1_000_000


async def test_real_codex_cost_is_judged_when_its_turn_ends(
    tmp_path: Path, model_server: Any
) -> None:
    script = {
        "scripts": [
            {
                "usage": {"input_tokens": 10_000, "output_tokens": 10},
                "turns": [{"shell": "echo working"}, {"final": RESULT}],
            }
        ]
    }
    server = model_server(script)
    # Two turns of 10,000 tokens at $50 per million: $1 (few tokens: codex compacts a
    # conversation that nears its model's context window).
    price = ModelPrice(input_usd_per_mtok=50, output_usd_per_mtok=0)
    adapter = real_agent("codex", server, price)
    limits = Limits(timeout_seconds=60, kill_grace_seconds=1, max_cost_usd=0.5)
    report = await supervise(adapter, agent_request(tmp_path), limits)
    assert report.status is RunStatus.FAILED, report
    assert report.reason is not None and report.reason.startswith("cost ceiling $0.5 exceeded ($1")
    assert report.outcome is not None and report.outcome.usage.cost_usd == pytest.approx(
        1.0, abs=0.01
    )


# --- the executor --------------------------------------------------------------------------


def executor(
    tmp_path: Path, script: str, budget: dict[str, Any]
) -> tuple[TaskExecutor, MemoryStore]:
    command = {"kind": "command", "argv": [sys.executable, "-c", script]}
    ex, store, _ = build_executor(tmp_path, command, budget=budget)
    assert isinstance(store, MemoryStore)
    return ex, store


async def test_the_executor_ends_a_task_over_its_ceiling_failed_with_its_cost(
    tmp_path: Path,
) -> None:
    ex, store = executor(tmp_path, SPENDER, {"per_task_usd": 0.01})
    task = queue_task(store)
    assert await ex.run(task.id) == "failed"
    done = store.get_task(task.id)
    assert done.status is TaskStatus.FAILED
    assert done.reason == "cost ceiling $0.01 exceeded ($0.012 so far)"
    assert done.cost_usd == pytest.approx(0.012)  # counts toward the month's spend
    assert done.usage["input_tokens"] == 3000
