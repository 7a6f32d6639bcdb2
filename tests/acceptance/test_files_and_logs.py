"""Files and logs of a real `taskyard serve` (SQLite and PostgreSQL): the agent's log
redacted and kept with the task after its workspace is gone, and served from there; private
modes of the home, the databases, the logs and the workspaces."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path

import httpx
import pytest

from tests.acceptance.run_harness import RunYard, python_agent
from tests.acceptance.test_serve import SECRET

pytestmark = pytest.mark.slow

SHARED = Path(__file__).resolve().parents[3] / "shared" / "webhooks"
API_TOKEN = "api-token-printed-9f2c"
MODEL_KEY = "sk-model-key-printed-77d1"
LEAKER = r"""
import json, os, pathlib, sys
for name in ("LEAK_HOOK", "LEAK_API", "LEAK_MODEL"):
    print(f"{name}={os.environ[name]}", flush=True)
print(json.dumps({"type": "message", "text": "key " + os.environ["LEAK_MODEL"]}), flush=True)
sys.stderr.write("stderr " + os.environ["LEAK_HOOK"] + "\n")
out = pathlib.Path(os.environ["OUTPUT_DIR"])
result = {"success": True, "actions": [], "summary": "ok", "analysis": "none"}
(out / "result.json").write_text(json.dumps(result))
"""
CONFIG = """
queue:
  polling_interval_sec: 0.05
agents:
  agent: {agent}
routes:
  - name: linear-triage
    on: ["linear:Issue.create"]
    agent: agent
    prompt: linear-triage
"""


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest) -> str | None:
    return request.getfixturevalue("pg_url") if request.param == "postgres" else None


def test_secrets_printed_by_the_agent_are_redacted_and_the_log_outlives_the_workspace(
    tmp_path: Path, db: str | None
) -> None:
    env = {"LEAK_HOOK": SECRET, "LEAK_API": API_TOKEN, "LEAK_MODEL": MODEL_KEY}
    agent = json.loads(python_agent(LEAKER, env)) | {"api_key": MODEL_KEY}
    ty = RunYard(tmp_path, db, CONFIG.format(agent=json.dumps(agent)))
    ty.env["TASKYARD_API_TOKEN"] = API_TOKEN
    tmp_path.chmod(0o755)  # an older home, readable by all: narrowed on start
    ty.start()
    try:
        payload = json.loads((SHARED / "linear" / "issue.create.json").read_text())
        payload["webhookTimestamp"] = int(time.time() * 1000)
        task = ty.wait_task_end(ty.send_file("linear", payload))
        assert task["status"] == "succeeded", (task["reason"], task["result"])
        assert task["workspace_exists"] is False  # removed after success
        shown = ty.cli("tasks", "logs", task["id"]).stdout  # was "no log yet"
        answer = httpx.get(
            f"{ty.url}/api/tasks/{task['id']}/logs",
            headers={"authorization": f"Bearer {API_TOKEN}"},
            timeout=10,
        )
    finally:
        ty.stop()
    assert answer.status_code == 200 and answer.headers["x-log-kept"] == "true"
    assert answer.text == shown
    kept = tmp_path / "logs" / f"task-{task['id']}.jsonl"
    stored = kept.read_text()
    assert "LEAK_HOOK=[redacted]" in shown and "LEAK_API=[redacted]" in shown
    assert "LEAK_MODEL=[redacted]" in shown and '"key [redacted]"' in shown
    for secret in (SECRET, API_TOKEN, MODEL_KEY):
        assert secret not in shown and secret not in stored
    assert _mode(kept) == 0o600 and _mode(kept.parent) == 0o700
    assert _mode(tmp_path) == 0o700
    assert _mode(tmp_path / "workspaces") == 0o700
    if db is None:  # the SQLite files: ours and DBOS's
        for name in ("taskyard.db", "taskyard.db-wal", "taskyard.db-shm", "queue.db"):
            assert _mode(tmp_path / name) == 0o600, name
        for extra in ("queue.db-wal", "queue.db-shm"):
            if (tmp_path / extra).exists():
                assert _mode(tmp_path / extra) == 0o600, extra
