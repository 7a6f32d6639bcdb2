"""Resuming a session with the real codex and claude CLIs against the scripted model server: a
later task, in a workspace of its own, continues an earlier task's conversation.

As in test_real_agents.py (whose helpers these are), no supervisor: the test does what the
run stage and the supervisor will do — carry the session's file to the new task
(`AgentAdapter.carry_session`), launch with `AgentRequest.resume_session`, read the outcome.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from taskyard.agents.base import AgentAdapter
from taskyard.devtools.model_server import ModelServer
from tests.agent_binaries import agent_binary
from tests.integration.test_real_agents import (
    KINDS,
    RESULT,
    Run,
    ServerFactory,
    make_adapter,
    make_request,
    run_agent,
)

AGAIN = {**RESULT, "analysis": "proof checked", "summary": "checked again"}
FIRST_PROMPT, LATER_PROMPT = "Write the proof.", "Now check the proof."
# Why a resumed run cannot start over: what each CLI says when the session's file is missing.
NOT_FOUND = {
    "codex": "no rollout found for thread id",
    "claude": "No conversation found with session ID",
}


def resume_script() -> dict[str, Any]:
    """The first run writes the proof; the later one (its prompt matches) answers at once.
    A resumed conversation holds the first run's model turns, which number the server's
    turns (codex: its function call; claude: its assistant messages), so every turn of the
    later script gives the same answer."""
    return {
        "scripts": [
            {"name": "later", "match": LATER_PROMPT, "turns": [{"final": AGAIN}] * 6},
            {"name": "first", "turns": [{"shell": "echo hello > proof.txt"}, {"final": RESULT}]},
        ]
    }


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    agent_binary(request.param)  # skip (or fail in CI) before starting anything
    return str(request.param)


def first_run(adapter: AgentAdapter, root: Path) -> Run:
    run = run_agent(adapter, make_request(root, "1", FIRST_PROMPT))
    assert run.outcome.success, (run.outcome.error, run.stderr[-500:])
    assert run.outcome.session_id
    return run


def test_a_later_task_resumes_the_earlier_session(
    kind: str, model_server: ServerFactory, tmp_path: Path
) -> None:
    server: ModelServer = model_server(resume_script())
    adapter = make_adapter(kind, server)
    first = first_run(adapter, tmp_path)
    session = first.outcome.session_id
    seen = len(server.turn_requests())

    later = replace(make_request(tmp_path, "2", LATER_PROMPT), resume_session=session)
    carried = adapter.carry_session(first.request.task_dir, later)
    assert carried.resume_session == session  # the session's file was found and copied
    second = run_agent(adapter, carried)

    assert second.outcome.success, (second.outcome.error, second.stderr[-500:])
    assert second.outcome.result == AGAIN
    assert second.outcome.session_id == session  # the same session, continued
    # This run's one model request only (100 in, 20 out), though codex reports the thread's
    # total, the first run's two requests included.
    assert (second.outcome.usage.input_tokens, second.outcome.usage.output_tokens) == (100, 20)
    resumed = server.turn_requests()[seen:]
    assert resumed
    assert {r.script for r in resumed} == {"later"}
    assert resumed[0].turn is not None and resumed[0].turn >= 1  # the first run's turns count
    sent = json.dumps(resumed[0].body)
    # The first run's prompt, its tool call and its answer, then the later prompt.
    assert FIRST_PROMPT in sent
    assert "echo hello > proof.txt" in sent
    assert "proof written" in sent
    assert sent.index(FIRST_PROMPT) < sent.index(LATER_PROMPT)
    assert not (second.request.workspace / "proof.txt").exists()  # a workspace of its own


def test_resuming_without_the_session_file_fails_in_words(
    kind: str, model_server: ServerFactory, tmp_path: Path
) -> None:
    """Each CLI finds a session only in its own config home (claude: in its cwd's project),
    so a later task must carry the file: without it the run fails, and says why."""
    server = model_server(resume_script())
    adapter = make_adapter(kind, server)
    session = first_run(adapter, tmp_path).outcome.session_id
    seen = len(server.turn_requests())

    later = replace(make_request(tmp_path, "2", LATER_PROMPT), resume_session=session)
    run = run_agent(adapter, later)

    assert not run.outcome.success
    assert run.outcome.error is not None
    assert NOT_FOUND[kind] in run.outcome.error
    assert len(server.turn_requests()) == seen  # no model turn without the session
