"""The Run stage end to end with the real CLI and a `command` agent: routing, workspaces with
a real git worktree, results, failures, the concurrency cap and kill -9 of the worker."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from taskyard.intake.app import make_adapter
from tests.acceptance.run_harness import (
    RunYard,
    make_repository,
    pr_opened,
    processes_with,
    python_agent,
)
from tests.acceptance.test_serve import SECRET, wait_for

pytestmark = pytest.mark.slow

REVIEWER = r"""
import json, os, subprocess, pathlib
out = pathlib.Path(os.environ["OUTPUT_DIR"])
log = subprocess.run(["git", "-C", "repo", "log", "--format=%s"], capture_output=True, text=True)
prompt = pathlib.Path(os.environ["PROMPT_FILE"]).read_text()
(out / "result.json").write_text(json.dumps({
    "success": True,
    "actions": [{"type": "comment", "params": {"body": "looks fine"}, "reasoning": "small"}],
    "analysis": "commits: " + log.stdout.replace("\n", ", ") + " prompt has schema: "
        + str('"summary"' in prompt),
    "summary": "reviewed " + os.environ["TASK_ID"],
}))
"""

SLEEPER = r"""
import os, subprocess, sys, time
lasting = "import time; time.sleep(300)  # " + os.environ["MARKER"]
subprocess.Popen([sys.executable, "-c", lasting])
subprocess.Popen(["setsid", sys.executable, "-c", lasting])  # its own session
time.sleep(300)
"""

CRASHER = r"""
import sys
print("starting", flush=True)
sys.stderr.write("Traceback: boom, the agent fell over\n")
sys.exit(3)
"""

INVALID = r"""
import json, os, pathlib
pathlib.Path(os.environ["OUTPUT_DIR"], "result.json").write_text(json.dumps({"success": "yes"}))
"""

CONFIG = """
queue:
  polling_interval_sec: 0.05
runs:
  concurrency: {concurrency}
  timeout_seconds: {timeout}
  kill_grace_seconds: 1
  sandbox: {sandbox}
agents:
  agent: {agent}
routes:
  - name: pr-review
    on: ["github:pull_request.opened"]
    agent: agent
    prompt: pr-review
    repo: true
  - name: linear-triage
    on: ["linear:Issue.create"]
    agent: agent
    prompt: linear-triage
log_level: INFO
"""


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest) -> str | None:
    return request.getfixturevalue("pg_url") if request.param == "postgres" else None


def yard(tmp_path: Path, db: str | None, script: str, **kw: object) -> RunYard:
    env = kw.get("env")
    config = CONFIG.format(
        agent=python_agent(script, env if isinstance(env, dict) else None),
        concurrency=kw.get("concurrency", 3),
        timeout=kw.get("timeout", 60),
        sandbox=kw.get("sandbox", "auto"),
    )
    return RunYard(tmp_path, db, config)


@pytest.fixture
def reviewer(tmp_path: Path, db: str | None) -> Iterator[tuple[RunYard, str]]:
    ty = yard(tmp_path, db, REVIEWER)
    head = make_repository(tmp_path)
    ty.start()
    yield ty, head
    ty.stop()


def test_pull_request_becomes_a_succeeded_review_in_a_worktree(
    reviewer: tuple[RunYard, str],
) -> None:
    ty, head = reviewer
    event_id = ty.send_file("github", pr_opened(head), "pull_request")
    task = ty.wait_task_end(event_id)
    assert (task["route"], task["status"], task["reason"]) == ("pr-review", "succeeded", None)
    assert task["attempts"] == 1
    assert "commits: add greet, first" in task["result"]["analysis"]
    assert "prompt has schema: True" in task["result"]["analysis"]
    assert task["workspace"].endswith(f"task-{task['id']}")
    assert task["workspace_exists"] is False  # removed after success
    metrics = httpx.get(f"{ty.url}/metrics", timeout=5).text
    assert 'taskyard_tasks_total{agent="agent",route="pr-review",status="succeeded"} 1.0' in metrics
    assert 'taskyard_tasks{status="succeeded"} 1.0' in metrics
    assert 'taskyard_agents_running{agent="agent"} 0.0' in metrics
    notes = list((ty.home / "tasks").glob("*-github-*-pr-review-*.md"))
    assert len(notes) == 1 and "looks fine" in notes[0].read_text()
    event = ty.event(event_id)
    assert event["status"] == "processed"
    assert event["routing"] == [
        {"route": "pr-review", "decision": "started", "reason": None, "task_id": task["id"]}
    ]


def test_ignored_draft_and_forbidden_events_start_no_agent(
    reviewer: tuple[RunYard, str],
) -> None:
    ty, head = reviewer
    ignored = ty.send_file("github", {"zen": "hi", "hook_id": 1}, "ping")
    draft = pr_opened(head)
    draft["pull_request"]["draft"] = True
    draft_id = ty.send_file("github", draft, "pull_request")
    outsider = pr_opened(head)
    outsider["pull_request"]["author_association"] = "CONTRIBUTOR"
    outsider["pull_request"]["title"] = "from a stranger"
    forbidden_id = ty.send_file("github", outsider, "pull_request")
    for eid in (ignored, draft_id, forbidden_id):
        wait_for(lambda e=eid: ty.event(e)["status"] == "ignored", 20, f"{eid} to be ignored")
        assert ty.tasks(eid) == []
    [d] = ty.event(ignored)["routing"]
    assert d["decision"] == "ignored" and "no route matches github:ping" in d["reason"]
    [d] = ty.event(draft_id)["routing"]
    assert d["decision"] == "skipped" and "draft" in d["reason"]
    [d] = ty.event(forbidden_id)["routing"]
    assert d["decision"] == "forbidden" and "CONTRIBUTOR" in d["reason"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(")")[-1].split()[0] != "Z"


def test_hung_agent_is_killed_with_its_children(tmp_path: Path, db: str | None) -> None:
    marker = f"taskyard-hung-{os.getpid()}-{time.monotonic_ns()}"
    ty = yard(tmp_path, db, SLEEPER, timeout=4, env={"MARKER": marker})
    head = make_repository(tmp_path)
    ty.start()
    try:
        event_id = ty.send_file("github", pr_opened(head), "pull_request")
        wait_for(lambda: len(processes_with(marker)) == 2, 30, "the agent's children")
        task = ty.wait_task_end(event_id, 40)
        assert task["status"] == "timed_out" and "timed out" in task["reason"]
        assert processes_with(marker) == []  # the box's children, setsid or not, are gone
    finally:
        ty.stop()


def test_crash_and_invalid_result_fail_with_reasons(tmp_path: Path, db: str | None) -> None:
    ty = yard(tmp_path, db, CRASHER)
    head = make_repository(tmp_path)
    ty.start()
    try:
        task = ty.wait_task_end(ty.send_file("github", pr_opened(head), "pull_request"))
        assert task["status"] == "failed"
        assert "exited 3" in task["reason"] and "the agent fell over" in task["reason"]
        assert Path(task["workspace"], "outputs", "log.jsonl").exists()  # archived
    finally:
        ty.stop()
    (tmp_path / "b").mkdir()
    ty2 = yard(tmp_path / "b", db, INVALID)
    head = make_repository(tmp_path / "b")
    ty2.start()
    try:
        task = ty2.wait_task_end(ty2.send_file("github", pr_opened(head), "pull_request"))
        assert task["status"] == "failed" and task["reason"].startswith("invalid result:")
        assert "is not of type 'boolean'" in task["reason"] and "'actions'" in task["reason"]
    finally:
        ty2.stop()


WAITER = r"""
import json, os, pathlib, time
out = pathlib.Path(os.environ["OUTPUT_DIR"])
mark = pathlib.Path(os.environ["MARKS"])
mark.mkdir(exist_ok=True)
me = mark / os.environ["TASK_ID"]
me.write_text(str(time.time()))
alive = len(list(mark.iterdir()))
peak = mark.parent / "peak"
with open(peak, "a") as f:
    f.write(f"{alive}\n")
time.sleep(1.0)
me.unlink()
(out / "result.json").write_text(json.dumps(
    {"success": True, "actions": [], "analysis": "", "summary": str(alive)}))
"""


def post_at_once(ty: RunYard, source: str, bodies: list[bytes]) -> list[str]:
    """Sign each body as the platform would and post them all at the same moment."""
    adapter = make_adapter(source)

    def post(body: bytes) -> str:
        signed = adapter.sign(SECRET, body, time.time(), {})
        r = httpx.post(
            f"{ty.url}/webhooks/{source}", content=signed.body, headers=signed.headers, timeout=30
        )
        assert r.status_code == 202, r.text
        return str(r.json()["event_id"])

    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(post, bodies))


def test_twenty_events_never_exceed_the_cap(tmp_path: Path, db: str | None) -> None:
    # MARKS reaches the agent only because the agent's config lists it: taskyard passes an
    # allowlisted environment.
    # unboxed: the agents count each other in a directory they share outside their boxes
    marks = {"MARKS": str(tmp_path / "marks/alive")}
    ty = yard(tmp_path, db, WAITER, concurrency=3, env=marks, sandbox="none")
    (tmp_path / "marks").mkdir()
    ty.start()
    try:
        linear = json.loads(
            (
                Path(__file__).resolve().parents[3] / "shared/webhooks/linear/issue.create.json"
            ).read_text()
        )
        bodies = []
        for n in range(20):
            linear["data"]["id"] = f"issue-{n}"
            linear["data"]["title"] = f"issue number {n}"
            linear["webhookTimestamp"] = int(time.time() * 1000)
            bodies.append(json.dumps(linear).encode())
        ids = post_at_once(ty, "linear", bodies)
        assert len(set(ids)) == 20
        for eid in ids:
            assert ty.wait_task_end(eid, 120)["status"] == "succeeded"
        peaks = [int(x) for x in (tmp_path / "marks" / "peak").read_text().split()]
        assert len(peaks) == 20 and max(peaks) <= 3
        assert max(peaks) >= 2  # they did run side by side
    finally:
        ty.stop()


LONG = r"""
import json, os, pathlib, subprocess, sys, time
out = pathlib.Path(os.environ["OUTPUT_DIR"])
marks = pathlib.Path(os.environ["MARKS"])
marks.mkdir(parents=True, exist_ok=True)
attempt = len(list(marks.glob("start-*"))) + 1
child = subprocess.Popen(["sleep", "300"])
(marks / f"start-{attempt}").write_text(f"{os.getpid()} {child.pid}")
if attempt == 1:
    time.sleep(300)  # the worker is killed while this attempt runs
child.kill()
(out / "result.json").write_text(json.dumps(
    {"success": True, "actions": [], "analysis": "", "summary": f"attempt {attempt}"}))
"""


def test_worker_killed_mid_run_reruns_the_task(tmp_path: Path, db: str | None) -> None:
    marks = tmp_path / "marks"
    # unboxed: it writes marks outside its workspace and compares pids (box-local inside)
    ty = yard(tmp_path, db, LONG, env={"MARKS": str(marks)}, sandbox="none")
    head = make_repository(tmp_path)
    ty.start()
    try:
        event_id = ty.send_file("github", pr_opened(head), "pull_request")
        wait_for(lambda: (marks / "start-1").exists(), 30, "the first attempt to start")
        wait_for(lambda: ty.tasks(event_id)[0]["status"] == "running", 10, "running")
        first = [int(p) for p in (marks / "start-1").read_text().split()]
        ty.kill9()
        # The agent dies with its worker (parent-death signal); its child is killed on
        # recovery, before the task runs again.
        ty.start()
        task = ty.wait_task_end(event_id, 60)
        assert task["status"] == "succeeded" and task["attempts"] == 2
        assert task["result"]["summary"] == "attempt 2"
        assert not any(_alive(p) for p in first)
        assert ty.event(event_id)["status"] == "processed"
        assert len(ty.tasks()) == 1
    finally:
        ty.stop()


SECOND_TIME_LUCKY = r"""
import json, os, pathlib, time
marks = pathlib.Path(os.environ["MARKS"])
marks.mkdir(parents=True, exist_ok=True)
if (marks / "first").exists():
    pathlib.Path(os.environ["OUTPUT_DIR"], "result.json").write_text(json.dumps(
        {"success": True, "actions": [], "analysis": "", "summary": "second run"}))
else:
    (marks / "first").write_text("x")
    for n in range(3):
        print(json.dumps({"type": "message", "text": f"working {n}"}), flush=True)
    time.sleep(300)
"""


def test_tasks_cli_follows_cancels_and_retries(tmp_path: Path, db: str | None) -> None:
    # unboxed: the second attempt knows it is one by a mark the first left outside its box
    marks = {"MARKS": str(tmp_path / "marks")}
    ty = yard(tmp_path, db, SECOND_TIME_LUCKY, env=marks, sandbox="none")
    head = make_repository(tmp_path)
    ty.start()
    try:
        event_id = ty.send_file("github", pr_opened(head), "pull_request")
        wait_for(lambda: ty.tasks(event_id)[0]["status"] == "running", 30, "running")
        task_id = ty.tasks(event_id)[0]["id"]
        follow = subprocess.Popen(
            [sys.executable, "-m", "taskyard", "tasks", "logs", task_id, "-f",
             "--config", str(ty.config), *ty._db()],
            env=ty.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        time.sleep(1.5)
        assert "cancel requested" in ty.cli("tasks", "cancel", task_id).stdout
        task = ty.wait_task_end(event_id, 30)
        assert (task["status"], task["reason"]) == ("cancelled", "cancelled")
        out, _ = follow.communicate(timeout=15)
        assert follow.returncode == 0
        assert '"working 0"' in out and '"working 2"' in out  # followed, then stopped
        again = ty.cli("tasks", "cancel", task_id, check=False)
        assert again.returncode == 1 and "already ended" in again.stderr
        queued = json.loads(ty.cli("tasks", "retry", task_id, "--json").stdout)
        assert queued["queued"] is True
        task = ty.wait_task_end(event_id, 30)
        assert (task["status"], task["attempts"]) == ("succeeded", 2)
        assert task["result"]["summary"] == "second run"
        missing = ty.cli("tasks", "retry", "no-such-task", check=False)
        assert missing.returncode == 1 and "no task no-such-task" in missing.stderr
    finally:
        ty.stop()


@pytest.mark.postgres
def test_a_worker_beside_serve_takes_the_tasks_serve_has_no_room_for(
    tmp_path: Path, pg_url: str
) -> None:
    """One agent at a time in each process: with six tasks, `serve` takes what it can run and
    leaves the rest in the table, where the worker beside it takes them."""
    # unboxed: the agents count each other in a directory they share outside their boxes
    marks = {"MARKS": str(tmp_path / "marks/alive")}
    ty = yard(tmp_path, pg_url, WAITER, concurrency=1, env=marks, sandbox="none")
    (tmp_path / "marks").mkdir()
    metrics_port = _free_port()
    cmd = [sys.executable, "-m", "taskyard", "worker", "--config", str(ty.config)]
    cmd += ["--database-url", pg_url, "--metrics-port", str(metrics_port)]
    worker: subprocess.Popen[bytes] | None = None
    ty.start()
    try:
        with (tmp_path / "worker.log").open("ab") as out:
            worker = subprocess.Popen(cmd, env=ty.env, stdout=out, stderr=out)
        wait_for(lambda: _answers(f"http://127.0.0.1:{metrics_port}/healthz"), 60, "the worker")
        linear = json.loads(
            (
                Path(__file__).resolve().parents[3] / "shared/webhooks/linear/issue.create.json"
            ).read_text()
        )
        bodies = []
        for n in range(6):
            linear["data"]["id"] = f"issue-{n}"
            linear["webhookTimestamp"] = int(time.time() * 1000)
            bodies.append(json.dumps(linear).encode())
        ids = post_at_once(ty, "linear", bodies)
        ran_on = [ty.wait_task_end(eid, 120)["worker"] for eid in ids]
        per_process = {w: ran_on.count(w) for w in ran_on}
        # Both processes ran tasks: when both hand over the same task, it runs where its
        # workflow started first and the other does not count it against its room.
        assert len(per_process) == 2, ran_on
        # The worker serves its own metrics: what it ran, it counted.
        scraped = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
        counted = [
            float(line.rsplit(" ", 1)[1])
            for line in scraped.splitlines()
            if line.startswith("taskyard_tasks_total{") and 'status="succeeded"' in line
        ]
        assert sum(counted) in per_process.values(), scraped
        peaks = [int(x) for x in (tmp_path / "marks" / "peak").read_text().split()]
        assert len(peaks) == 6 and max(peaks) <= 2  # one per process at most
    finally:
        ty.stop()
        if worker is not None:
            worker.terminate()
            worker.wait(15)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
