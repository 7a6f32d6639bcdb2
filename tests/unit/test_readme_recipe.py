"""The README's first steps name what exists and what the tests run: its two commands
(serve the try-it configuration; `scripts/test`), the shipped files its recipes use, and no
file outside the repository (a fresh clone has no `../shared`)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)```", text, flags=re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_the_two_commands_serve_the_try_it_config_and_run_scripts_test() -> None:
    first, second = [c for c in _commands() if not c.startswith("#")][:2]
    assert first.startswith("python3 -m venv .venv && .venv/bin/pip install -e . && ")
    assert first.endswith("taskyard serve --config examples/try-it/taskyard.yaml")
    assert second == "scripts/test"
    assert (ROOT / "scripts" / "test").stat().st_mode & 0o111  # executable


def test_every_file_the_recipes_name_is_shipped() -> None:
    named = {m for c in _commands() for m in re.findall(r"\bexamples/[\w./-]+", c)}
    assert {"examples/try-it/taskyard.yaml", "examples/try-it/issue.create.json"} <= named
    assert [n for n in named if not (ROOT / n).is_file()] == []
    assert not [c for c in _commands() if "../shared" in c]


def test_the_agent_clis_the_readme_installs_are_the_pinned_ones_the_tests_use() -> None:
    pinned = set(re.findall(r"(@[\w-]+/[\w-]+@[\d.]+)", (ROOT / "scripts" / "test").read_text()))
    installs = [c for c in _commands() if c.startswith("npm install")]
    assert installs and all("@" in c for c in installs)
    for command in installs:
        assert set(re.findall(r"(@[\w-]+/[\w-]+@[\d.]+)", command)) <= pinned, command
