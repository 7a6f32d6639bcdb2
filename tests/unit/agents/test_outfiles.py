"""What an agent leaves in `outputs/` is read from outside its box only if it is a plain file
of its own: links, FIFOs, devices and huge files are refused, never followed, never waited on."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from taskyard.agents.base import AgentRequest
from taskyard.agents.cli_support import json_object
from taskyard.agents.codex import _read_answer
from taskyard.agents.command import read_result
from taskyard.agents.outfiles import read_output
from taskyard.exceptions import AgentOutputRefused

SECRET = b'{"private_key": "-----BEGIN server secret"}'


@pytest.fixture
def outputs(tmp_path: Path) -> Path:
    (tmp_path / "secret.json").write_bytes(SECRET)
    (tmp_path / "outputs").mkdir()
    return tmp_path / "outputs"


def _request(outputs: Path) -> AgentRequest:
    root = outputs.parent
    return AgentRequest(
        task_id="t1",
        task_dir=root,
        workspace=root,
        context_dir=root,
        output_dir=outputs,
        prompt_file=root / "p.md",
        result_schema={},
    )


def test_a_plain_result_is_read(outputs: Path) -> None:
    (outputs / "result.json").write_bytes(b'{"success": true}')
    assert read_result(_request(outputs)) == ({"success": True}, None)
    assert read_output(outputs, "missing.json") is None


def test_a_symlinked_result_is_not_followed(outputs: Path) -> None:
    (outputs / "result.json").symlink_to(outputs.parent / "secret.json")
    result, why = read_result(_request(outputs))
    assert result is None and why is not None and "symbolic link" in why


def test_a_hard_linked_result_is_not_read(outputs: Path) -> None:
    os.link(outputs.parent / "secret.json", outputs / "result.json")
    result, why = read_result(_request(outputs))
    assert result is None and why is not None and "2 links" in why


def test_a_symlinked_outputs_dir_is_not_followed(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "result.json").write_bytes(SECRET)
    (tmp_path / "outputs").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(AgentOutputRefused, match="link or not a directory"):
        read_output(tmp_path / "outputs", "result.json")


def test_a_fifo_is_refused_at_once(outputs: Path) -> None:
    os.mkfifo(outputs / "result.json")
    began = time.monotonic()
    result, why = read_result(_request(outputs))
    assert time.monotonic() - began < 1
    assert result is None and why is not None and "not a regular file" in why


def test_a_huge_sparse_result_is_refused_unread(outputs: Path) -> None:
    with (outputs / "result.json").open("wb") as f:
        f.truncate(10 * 1024**3)  # 10 GB, sparse: reading it whole would take the server down
    result, why = read_result(_request(outputs))
    assert result is None and why is not None and "over the limit" in why


def test_codex_last_message_is_not_followed(outputs: Path) -> None:
    (outputs / "last_message.txt").symlink_to(outputs.parent / "secret.json")
    assert _read_answer(outputs / "last_message.txt") is None
    (outputs / "last_message.txt").unlink()
    (outputs / "last_message.txt").write_text("the answer")
    assert _read_answer(outputs / "last_message.txt") == "the answer"


def test_a_last_message_nested_too_deep_to_parse_is_no_result() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    assert json_object(deep) is None
    assert json_object('{"ok": true}') == {"ok": True}
