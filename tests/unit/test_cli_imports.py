"""Read-only CLI commands stay quick: they import the store and the config, never the server,
the queue engine (DBOS), the platform clients or the HTTP stack (which took 3-6 s)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = (
    "dbos",
    "githubkit",
    "uvicorn",
    "starlette",
    "httpx",
    "sqlalchemy",
    "taskyard.service.server",
)
PROBE = """
import json, sys
from typer.testing import CliRunner
from taskyard.cli.main import app
result = CliRunner().invoke(app, sys.argv[1:])
heavy = sorted(m for m in sys.modules if m.split(".")[0] in HEAVY or m in HEAVY)
print(json.dumps({"exit": result.exit_code, "output": result.output, "heavy": heavy}))
"""

READS = [
    ["--help"],
    ["--version"],
    ["events", "list"],
    ["events", "show", "nope"],
    ["tasks", "list"],
    ["tasks", "show", "nope"],
    ["tasks", "logs", "nope"],
    ["dlq", "list"],
    ["approvals", "list-pending"],
    ["approvals", "status", "nope"],
]


@pytest.mark.parametrize("argv", READS, ids=" ".join)
def test_a_read_only_command_imports_no_server_parts(tmp_path: Path, argv: list[str]) -> None:
    code = f"HEAVY = {HEAVY!r}\n{PROBE}"
    env = {"TASKYARD_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", code, *argv],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["heavy"] == [], seen["output"]
    assert seen["exit"] in (0, 1), seen["output"]  # 1: "not found" for the made-up ids


def test_version_and_help_speak_to_users(tmp_path: Path) -> None:
    from importlib.metadata import version

    from typer.testing import CliRunner

    from taskyard.cli.main import app

    runner = CliRunner()
    assert runner.invoke(app, ["--version"]).output == f"taskyard {version('taskyard')}\n"
    shown = runner.invoke(app, ["--help"]).output
    assert "reads the environment" not in shown and "webhooks in" in shown
