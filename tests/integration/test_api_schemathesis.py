"""schemathesis against a running server: the management API on a seeded SQLite store, served
by uvicorn on loopback, tested from its own OpenAPI document in a bounded run (every check:
no server error, answers and status codes as documented, bad input refused, the bearer token
required). Set TASKYARD_SCHEMATHESIS_SEED to try another seed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from taskyard.store import SQLStore
from tests.integration.api_harness import DOC, TOKEN, app_for, seed, serving
from tests.integration.idea_harness import mixed_diamond

pytestmark = pytest.mark.slow

# `since` in the future, and `window` with `since`, are refused (400) although each value alone
# fits the document (which cannot say "in the past" or "not both"): schemathesis' check that
# valid input is accepted does not hold for this one operation.
CONFIG = """
[[operations]]
include-path = "/api/stats"
checks.positive_data_acceptance.enabled = false
"""
# The log's pages (offset, limit) and the audit entries are tried on a task that has them,
# not on made-up ids.
LOG_PAGES = """
[[operations]]
include-path = "/api/tasks/{{task_id}}/logs"
parameters = {{ "path.task_id" = "{task_id}" }}

[[operations]]
include-path = "/api/tasks/{{task_id}}/audit"
parameters = {{ "path.task_id" = "{task_id}" }}
"""
# An idea's overview and steps are tried on an idea that has them (a running diamond).
IDEA_PAGES = """
[[operations]]
include-path-regex = '^/api/ideas/.'
parameters = {{ "path.idea_id" = "{idea_id}" }}
"""


def _schemathesis() -> Path:
    found = Path(sys.executable).with_name("schemathesis")
    if not found.exists():
        pytest.fail("schemathesis is not installed: pip install -e '.[dev]'")
    return found


def test_schemathesis_finds_nothing_wrong(tmp_path: Path) -> None:
    store = SQLStore.open(f"sqlite:///{tmp_path / 'api.db'}")
    store.migrate()
    seeded = seed(store, tmp_path / "workspaces", time.time())
    config = tmp_path / "schemathesis.toml"
    idea, _ = mixed_diamond(store)
    pages = LOG_PAGES.format(task_id=seeded.tasks["succeeded"]) + IDEA_PAGES.format(idea_id=idea.id)
    config.write_text(CONFIG + pages)
    seed_value = os.environ.get("TASKYARD_SCHEMATHESIS_SEED", "1")
    # A short stream: a log stream of a task that never ends closes and is reconnected to.
    app = app_for(store, tmp_path, stream_seconds=1.0)
    try:
        with serving(app) as url:
            run = subprocess.run(
                [
                    str(_schemathesis()),
                    "--config-file",
                    str(config),
                    "run",
                    f"{url}/api/openapi.json",
                    "--header",
                    f"Authorization: Bearer {TOKEN}",
                    "--max-examples",
                    "12",
                    "--seed",
                    seed_value,
                    "--request-timeout",
                    "10",
                    "--generation-database",
                    "none",
                    "--no-color",
                ],
                cwd=tmp_path,
                env={**os.environ, "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"},
                capture_output=True,
                text=True,
                timeout=240,
                check=False,
            )
    finally:
        store.close()
    report = run.stdout + run.stderr
    assert run.returncode == 0, report[-8000:]
    # every operation but the one serving the document, which schemathesis leaves out
    operations = sum(len(ops) for ops in DOC["paths"].values()) - 1
    assert re.search(rf"Tested:\s+{operations}\b", report), report[-3000:]
    assert "No issues found" in report, report[-3000:]
    assert TOKEN not in report  # the token is filtered from what schemathesis prints
