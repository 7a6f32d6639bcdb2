"""Resuming an agent's session: the resume argv of codex and claude, and carrying a session's
file from an earlier task to a later one (tests/integration/test_real_agent_resume.py proves
both with the real CLIs)."""

from __future__ import annotations

import json
import os
import stat
from dataclasses import replace
from pathlib import Path

import pytest

from taskyard.agents import build_adapter
from taskyard.agents.base import AgentAdapter, AgentRequest, Usage
from taskyard.agents.claude import project_name
from taskyard.agents.codex import CodexParser, thread_usage
from taskyard.config import AgentConfig
from taskyard.exceptions import ConfigError

THREAD = "01a25243-5bf8-71e3-b4d0-28e4bb38f475"  # the shape of a real codex thread id
ROLLOUT = ("2026", "12", "07", f"rollout-2026-12-07T20-47-55-{THREAD}.jsonl")
TRANSCRIPT = b'{"type":"session_meta"}\n{"type":"response_item"}\n'


def token_count(inputs: int, output: int) -> bytes:
    """A rollout's `token_count` event (codex 0.169), with the thread's total so far."""
    total = {"input_tokens": inputs, "cached_input_tokens": 0, "output_tokens": output}
    info = {"total_token_usage": total, "last_token_usage": total}
    event = {"type": "event_msg", "payload": {"type": "token_count", "info": info}}
    return json.dumps(event).encode() + b"\n"


def make_request(root: Path, task_id: str, resume: str | None = None) -> AgentRequest:
    task = root / f"task-{task_id}"
    for sub in ("workspace", "outputs", "prompts"):
        (task / sub).mkdir(parents=True)
    return AgentRequest(
        task_id=task_id,
        task_dir=task,
        workspace=task / "workspace",
        context_dir=task / "context",
        output_dir=task / "outputs",
        prompt_file=task / "prompts" / "route.md",
        result_schema={"type": "object"},
        base_env={"PATH": str(root / "bin"), "LANG": "C.UTF-8"},
        resume_session=resume,
    )


@pytest.fixture
def binaries(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("codex", "claude"):
        path = bin_dir / name
        path.write_text("#!/bin/sh\n")
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return bin_dir


def adapter(kind: str) -> AgentAdapter:
    config: dict[str, object] = {"kind": kind, "argv": ["true"]}
    if kind != "command":
        config = {"kind": kind, "model": "m", "base_url": "http://127.0.0.1:9", "api_key": "sk"}
    return build_adapter(AgentConfig.model_validate(config))


def plant(root: Path, parts: tuple[str, ...]) -> Path:
    path = root.joinpath(*parts)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(TRANSCRIPT)
    return path


def test_codex_resumes_its_thread_with_the_options_before_resume(
    tmp_path: Path, binaries: Path
) -> None:
    request = make_request(tmp_path, "2", THREAD)
    argv = adapter("codex").launch(request).argv

    assert argv[1:2] == ("exec",)
    assert argv[-3:] == ("resume", THREAD, "-")
    assert argv.index("--sandbox") < argv.index("resume")  # `resume` takes no --sandbox, -C
    assert argv.index("-C") < argv.index("resume")
    assert "--ephemeral" not in argv  # every run's thread is kept, to be resumed later


def test_claude_resumes_its_session(tmp_path: Path, binaries: Path) -> None:
    request = make_request(tmp_path, "2", THREAD)
    argv = adapter("claude").launch(request).argv

    assert argv[-2:] == ("--resume", THREAD)
    assert "--no-session-persistence" not in argv


@pytest.mark.parametrize("kind", ["codex", "claude"])
def test_without_resume_nothing_is_resumed(kind: str, tmp_path: Path, binaries: Path) -> None:
    argv = adapter(kind).launch(make_request(tmp_path, "1")).argv

    assert "resume" not in argv
    assert "--resume" not in argv


@pytest.mark.parametrize("kind", ["codex", "claude"])
@pytest.mark.parametrize("session", ["--dangerously-skip-permissions", "../../x", "test", ""])
def test_a_session_id_is_a_uuid_or_refused(
    kind: str, session: str, tmp_path: Path, binaries: Path
) -> None:
    """The id comes from the agent's own output: never an option, never a path."""
    with pytest.raises(ConfigError, match="is not a UUID"):
        adapter(kind).launch(make_request(tmp_path, "2", session))


def test_codex_carries_the_rollout_to_the_same_place(tmp_path: Path) -> None:
    codex = adapter("codex")
    earlier = make_request(tmp_path, "1")
    under = codex.session_files(earlier.task_dir)
    assert under == earlier.task_dir / "home" / ".codex" / "sessions"
    plant(under, ROLLOUT)
    plant(under, ("2026", "12", "07", "rollout-2026-12-07T20-00-00-other.jsonl"))
    later = make_request(tmp_path, "2", THREAD)

    carried = codex.carry_session(earlier.task_dir, later)

    assert carried == replace(later, resumed_usage=Usage())  # no token count in that rollout
    later_sessions = codex.session_files(later.task_dir)
    assert later_sessions is not None
    copied = later_sessions.joinpath(*ROLLOUT)
    assert copied.read_bytes() == TRANSCRIPT
    assert stat.S_IMODE(copied.stat().st_mode) == 0o600
    assert [p.name for p in later_sessions.rglob("*.jsonl")] == [ROLLOUT[-1]]  # only that one


def test_claude_carries_the_session_into_the_new_workspaces_project(tmp_path: Path) -> None:
    claude = adapter("claude")
    earlier = make_request(tmp_path, "1")
    projects = claude.session_files(earlier.task_dir)
    assert projects == earlier.task_dir / "home" / ".claude" / "projects"
    plant(projects, (project_name(earlier.workspace), f"{THREAD}.jsonl"))
    later = make_request(tmp_path, "2", THREAD)

    carried = claude.carry_session(earlier.task_dir, later)

    assert carried == later
    project = later.task_dir / "home" / ".claude" / "projects" / project_name(later.workspace)
    assert (project / f"{THREAD}.jsonl").read_bytes() == TRANSCRIPT


@pytest.mark.parametrize("kind", ["codex", "claude"])
def test_no_session_file_means_a_new_session(kind: str, tmp_path: Path) -> None:
    earlier = make_request(tmp_path, "1")
    later = make_request(tmp_path, "2", THREAD)

    assert adapter(kind).carry_session(earlier.task_dir, later) == replace(
        later, resume_session=None
    )


@pytest.mark.parametrize("kind", ["codex", "claude"])
def test_a_linked_session_file_is_never_copied(kind: str, tmp_path: Path) -> None:
    """The earlier task's home was the agent's: a link there to a server file stays there."""
    agent = adapter(kind)
    earlier = make_request(tmp_path, "1")
    secret = tmp_path / "server-secret"
    secret.write_text("token\n")
    under = agent.session_files(earlier.task_dir)
    assert under is not None
    name = ROLLOUT if kind == "codex" else ("-ws", f"{THREAD}.jsonl")
    link = under.joinpath(*name)
    link.parent.mkdir(parents=True)
    link.symlink_to(secret)
    later = make_request(tmp_path, "2", THREAD)

    assert agent.carry_session(earlier.task_dir, later).resume_session is None
    assert not any(os.walk(later.task_dir / "home"))  # nothing written


def test_a_hard_linked_session_file_is_refused(tmp_path: Path) -> None:
    """A hard link to a server file looks like a plain file but for its link count."""
    codex = adapter("codex")
    earlier = make_request(tmp_path, "1")
    secret = tmp_path / "server-secret"
    secret.write_text("token\n")
    under = codex.session_files(earlier.task_dir)
    assert under is not None
    link = under.joinpath(*ROLLOUT)
    link.parent.mkdir(parents=True)
    os.link(secret, link)
    later = make_request(tmp_path, "2", THREAD)

    assert codex.carry_session(earlier.task_dir, later).resume_session is None
    assert not any(os.walk(later.task_dir / "home"))


@pytest.mark.parametrize("kind", ["codex", "claude"])
def test_a_linked_session_directory_is_never_followed(kind: str, tmp_path: Path) -> None:
    agent = adapter(kind)
    earlier = make_request(tmp_path, "1")
    elsewhere = tmp_path / "elsewhere"
    plant(elsewhere, ROLLOUT if kind == "codex" else ("-ws", f"{THREAD}.jsonl"))
    under = agent.session_files(earlier.task_dir)
    assert under is not None
    under.parent.mkdir(parents=True)
    under.symlink_to(elsewhere)
    later = make_request(tmp_path, "2", THREAD)

    assert agent.carry_session(earlier.task_dir, later).resume_session is None


def test_an_id_that_is_no_uuid_is_not_carried(tmp_path: Path) -> None:
    earlier = make_request(tmp_path, "1")
    later = make_request(tmp_path, "2", "../../etc/passwd")

    assert adapter("claude").carry_session(earlier.task_dir, later).resume_session is None


def test_the_command_agent_has_no_sessions(tmp_path: Path) -> None:
    command = adapter("command")
    later = make_request(tmp_path, "2", THREAD)

    assert command.session_files(later.task_dir) is None
    assert command.carry_session(tmp_path / "task-1", later) == later
    assert THREAD not in command.launch(later).argv


def test_claude_project_name_is_claudes() -> None:
    """Checked against claude 2.1.197's own function (run in node), long and non-ASCII paths
    included."""
    assert project_name(Path("/tmp/a b/task-1/workspace")) == "-tmp-a-b-task-1-workspace"
    assert project_name(Path("/t/\u00e9\U0001f600/ws")) == "-t-----ws"  # UTF-16 units
    long = Path("/x/" + "long" * 60 + "/ws")
    assert project_name(long) == ("-x-" + "long" * 60)[:200] + "-mxm79x"


def test_codex_takes_the_earlier_runs_off_a_resumed_threads_usage(tmp_path: Path) -> None:
    """codex reports a resumed thread's total (earlier runs included): the carried rollout's
    last total is what the earlier runs used, and the outcome is this run's only."""
    codex = adapter("codex")
    earlier = make_request(tmp_path, "1")
    under = codex.session_files(earlier.task_dir)
    assert under is not None
    rollout = plant(under, ROLLOUT)
    rollout.write_bytes(TRANSCRIPT + token_count(100, 20) + token_count(200, 40) + b"{oops\n")
    later = make_request(tmp_path, "2", THREAD)

    carried = codex.carry_session(earlier.task_dir, later)
    parser = codex.new_parser()
    assert isinstance(parser, CodexParser)
    for line in (
        {"type": "thread.started", "thread_id": THREAD},
        {"type": "item.completed", "item": {"id": "1", "type": "agent_message", "text": "{}"}},
        {"type": "turn.completed", "usage": {"input_tokens": 300, "output_tokens": 60}},
    ):
        parser.feed(json.dumps(line))
    outcome = codex.outcome(carried, parser, 0, "")

    assert carried.resumed_usage == Usage(200, 0, 40, 0)
    assert outcome.success, outcome.error
    assert (outcome.usage.input_tokens, outcome.usage.output_tokens) == (100, 20)
    assert outcome.session_id == THREAD


def test_a_rollout_without_token_counts_used_nothing() -> None:
    assert thread_usage(TRANSCRIPT) == Usage()
    assert thread_usage(b"\xff\xfe not json\n") == Usage()
