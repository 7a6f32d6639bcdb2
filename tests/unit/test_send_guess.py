"""`taskyard send` without --event: the GitHub event is guessed only when the payload's keys
leave no doubt; a guess is never wrong, and an unknown shape asks for --event (exit 2)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from taskyard.cli.main import app
from taskyard.cli.send import _GITHUB_SIGNATURES, UnknownEvent, guess_event

REPO = Path(__file__).resolve().parents[2]
OCTOKIT = REPO / ".cache/npm/node_modules/@octokit/webhooks-examples/api.github.com/index.json"
ASK = "cannot tell the GitHub event of this payload; pass --event NAME"


def _octokit() -> list[dict[str, Any]]:
    if not OCTOKIT.is_file():
        pytest.fail(f"{OCTOKIT} is missing: scripts/test installs it")
    return list(json.loads(OCTOKIT.read_text()))


def _guess(payload: Any) -> str | None:
    try:
        return guess_event(_GITHUB_SIGNATURES, payload, "GitHub event")
    except UnknownEvent as exc:
        assert str(exc) == ASK
        return None


def test_every_octokit_example_is_guessed_right_or_asked_for() -> None:
    outcome: Counter[str] = Counter()
    for group in _octokit():
        for example in group["examples"]:
            guessed = _guess(example)
            assert guessed in (group["name"], None), (group["name"], sorted(example))
            outcome["guessed" if guessed else "asked"] += 1
    assert outcome["guessed"] >= 150


def test_review_comments_are_not_taken_for_pull_requests() -> None:
    examples = {g["name"]: g["examples"] for g in _octokit()}
    for example in examples["pull_request_review_comment"]:
        assert _guess(example) == "pull_request_review_comment"
    for name in ("pull_request", "issue_comment", "issues", "push", "pull_request_review"):
        assert {_guess(e) for e in examples[name]} == {name}


def test_the_shared_samples(shared_dir: Path) -> None:
    # Every GitHub App delivery carries `installation`: an installation event is asked for.
    github = shared_dir / "webhooks/github"
    for path in github.glob("*.json"):
        name = path.name.split(".")[0]
        if name != "index":
            expected = None if name == "installation" else name
            assert _guess(json.loads(path.read_text())) == expected, path.name


@pytest.mark.parametrize("payload", [{}, {"foo": 1}, [1, 2], {"installation": {"id": 1}}])
def test_an_unknown_shape_asks_for_the_event(payload: Any) -> None:
    assert _guess(payload) is None


def test_the_cli_asks_for_event_with_exit_code_2(tmp_path: Path) -> None:
    path = tmp_path / "odd.json"
    path.write_text(json.dumps({"action": "created", "thing": {}}))
    env = {"TASKYARD_GITHUB_SECRET": "s", "TASKYARD_HOME": str(tmp_path / "home")}
    result = CliRunner().invoke(
        app, ["send", "github", str(path), "--url", "http://127.0.0.1:9"], env=env
    )
    assert result.exit_code == 2
    assert ASK in " ".join(result.output.split())
