"""Subtasks of a change task with the real codex (implementing) and claude (reviewing) against
the scripted model server, through `taskyard serve`.

- The parent's implement turn calls `create_subtask` twice and makes its own edit; it waits
  (`waiting`, implement "waiting" in its record) while the two subtasks run their own gates
  and commit; then it comes back, and its one commit holds its change and both subtasks', with
  a Review-Hash that `taskyard review-hash verify` accepts.
- kill -9 of the worker while the second subtask's agent runs: after the restart that subtask
  runs again (attempt 2), the first is not run again (one attempt, no model request after the
  restart), and the parent commits with both.

The first subtask (alpha) asks for claude as its implementer; the second (beta) is codex's,
like its parent. The route turns the planning gates off to keep it short (subtasks copy the
parent's spec, so theirs are off too). No GitHub writer is configured: commits stay in the
mirror, and nothing is reported to the source by anyone, so "a subtask reports nothing" is
not checked here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from taskyard.devtools.model_script import as_script
from taskyard.devtools.model_server import ModelServer
from tests.acceptance.run_harness import RunYard, git, make_repository
from tests.acceptance.test_change_routes import (
    API_TOKEN,
    APPROVE,
    CHANGE,
    FIXED_APP,
    review_comment,
    review_hash_verify,
    trailers,
)
from tests.acceptance.test_serve import wait_for
from tests.agent_binaries import agent_binary

pytestmark = pytest.mark.slow

ENDED = ("succeeded", "failed", "timed_out", "cancelled")
# codex one at a time: beta's codex starts only once the parent's has ended
CONFIG = """
queue:
  polling_interval_sec: 0.05
runs:
  timeout_seconds: 120
  kill_grace_seconds: 1
  keep_workspaces: true
agents:
  codex: {{kind: codex, binary: "{codex}", model: gpt-5.5, max_concurrency: 1}}
  claude: {{kind: claude, binary: "{claude}", model: claude-sonnet-4-5,
            address_space_bytes: 4294967296}}
routes:
  - name: pr-fix
    on: ["github:pull_request_review_comment.created"]
    agent: codex
    mode: change
    repo: true
    gates: {{plan: false, plan_review: false}}
    who: {{min_permission: none}}
    test_commands: ["grep -q Hello README.md && git status --short"]
log_level: INFO
"""

# alpha is claude's to implement: it runs beside codex's work (and beside beta's hang)
ALPHA = {
    "title": "alpha",
    "prompt": "Write ALPHA-NOTES: a file alpha.txt saying alpha.",
    "agent": "claude",
}
BETA = {"title": "beta", "prompt": "Write BETA-NOTES: a file beta.txt saying beta."}
# a subtask's implementer reads its task (written to context/task.md) and does its piece
SUB_IMPLEMENT = (
    "if grep -q ALPHA-NOTES ../context/task.md; then f=alpha; else f=beta; fi; "
    'cd repo && echo "$f" > "$f.txt"'
)
SUB_CHANGE = {"title": "a piece of the change", "summary": "One file."}
# The parent's edit, then a pause: time for the test to learn beta's route before beta's
# codex starts (codex runs one at a time here: it waits for this run to end).
PARENT_IMPLEMENT = f"cd repo && printf {json.dumps(FIXED_APP)} > app.py && sleep 5"
IMPLEMENT_1 = "implement the change (gate: implement, round 1)"


def script(hang_route: str | None = None) -> dict[str, Any]:
    """The parent creates two subtasks, then edits app.py; each subtask writes its file; claude
    approves every review. `hang_route`: that subtask's agent hangs after its edit."""
    scripts: list[dict[str, Any]] = [
        {
            "name": "review",
            "match": "review a code change (gate: review, round 1)",
            "turns": [{"final": APPROVE}],
        },
        {
            "name": "parent-implement",
            "match": f"pr-fix: {IMPLEMENT_1}",
            "turns": [
                {"tool": {"name": "create_subtask", "arguments": ALPHA}},
                {"tool": {"name": "create_subtask", "arguments": BETA}},
                {"shell": PARENT_IMPLEMENT},
                {"final": CHANGE},
            ],
        },
        {
            "name": "sub-implement",
            "match": IMPLEMENT_1,
            "turns": [{"shell": SUB_IMPLEMENT}, {"final": SUB_CHANGE}],
        },
    ]
    if hang_route is not None:
        hang = {
            "name": "sub-implement-hangs",
            "match": f"{hang_route}: {IMPLEMENT_1}",
            "turns": [{"shell": SUB_IMPLEMENT}, {"hang": True}],
        }
        scripts.insert(0, hang)
    return {"scripts": scripts}


@dataclass
class Run:
    """A yard with the review comment sent: the parent task and its event."""

    yard: RunYard
    server: ModelServer
    head: str
    event_id: str
    parent_id: str

    def api(self, task_id: str) -> dict[str, Any]:
        answer = httpx.get(
            f"{self.yard.url}/api/tasks/{task_id}",
            headers={"authorization": f"Bearer {API_TOKEN}"},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def subtasks(self) -> list[dict[str, Any]]:
        """The parent's subtasks (they share its event), in the order it created them (task
        ids sort by creation time)."""
        found = [self.api(t["id"]) for t in self.yard.tasks(self.event_id)]
        return sorted((t for t in found if t["id"] != self.parent_id), key=lambda t: t["id"])

    def wait_all_ended(self, seconds: float) -> dict[str, Any]:
        def done() -> bool:
            found = self.yard.tasks(self.event_id)
            return len(found) == 3 and all(t["status"] in ENDED for t in found)

        wait_for(done, seconds, "the parent and its subtasks to end")
        return self.api(self.parent_id)

    def prompts_naming(self, text: str) -> int:
        return sum(text in json.dumps(r.body) for r in self.server.turn_requests())


StartRun = Callable[[dict[str, Any]], Run]


@pytest.fixture(params=["sqlite", "postgres"])
def start_run(
    request: pytest.FixtureRequest, tmp_path: Path, model_server: Callable[[Any], ModelServer]
) -> Iterator[StartRun]:
    """Start a yard on a script and send the review comment; the parent is known."""
    db = request.getfixturevalue("pg_url") if request.param == "postgres" else None
    config = CONFIG.format(codex=agent_binary("codex"), claude=agent_binary("claude"))
    yards: list[RunYard] = []

    def start(model_script: dict[str, Any]) -> Run:
        server = model_server(model_script)
        yard = RunYard(tmp_path, db, config)
        yard.env.update(
            OPENAI_BASE_URL=f"{server.url}/v1",
            OPENAI_API_KEY="sk-test-openai",
            ANTHROPIC_BASE_URL=server.url,
            ANTHROPIC_API_KEY="sk-test-anthropic",
            TASKYARD_API_TOKEN=API_TOKEN,
        )
        head = make_repository(tmp_path)
        base = git("rev-parse", "HEAD~1", cwd=tmp_path / "src")
        yards.append(yard)
        yard.start()
        event_id = yard.send_file(
            "github", review_comment(head, base), "pull_request_review_comment"
        )
        wait_for(lambda: bool(yard.tasks(event_id)), 30, "the parent task")
        (parent,) = [t for t in yard.tasks(event_id) if t["parent_id"] is None]
        return Run(yard, server, head, event_id, parent["id"])

    yield start
    for yard in yards:
        yard.stop()


def gates(task: dict[str, Any]) -> list[tuple[str, int, str]]:
    return [(g["gate"], g["round"], g["outcome"]) for g in task["gates"]]


PARENT_GATES = [
    ("plan", 0, "skipped"),
    ("plan_review", 0, "skipped"),
    ("implement", 1, "entered"),
    ("implement", 1, "passed"),  # its own edit
    ("implement", 1, "waiting"),  # its work kept, the subtasks run
    ("implement", 1, "passed"),  # back: its work and the subtasks' commits staged
    ("test", 1, "entered"),
    ("test", 1, "passed"),
    ("review", 1, "entered"),
    ("review", 1, "approved"),
    ("commit", 1, "entered"),
    ("commit", 1, "passed"),
]


def check_parent_commit(run: Run, parent: dict[str, Any], where: Path) -> None:
    """The parent's one commit, on the pull request's head: its change and both subtasks',
    with a Review-Hash that verifies."""
    assert parent["status"] == "succeeded", (parent["reason"], parent["gates"])
    commit = parent["result"]["analysis"]["commit"]
    repo = checkout_mirror(run, commit, where)
    assert git("rev-parse", "HEAD~1", cwd=repo) == run.head
    changed = git("diff", "--name-only", "HEAD~1", "HEAD", cwd=repo).split()
    assert sorted(changed) == ["alpha.txt", "app.py", "beta.txt"]
    assert (repo / "app.py").read_text() == FIXED_APP
    assert (repo / "alpha.txt").read_text() == "alpha\n"
    assert (repo / "beta.txt").read_text() == "beta\n"
    assert git("log", "-1", "--format=%s", cwd=repo) == CHANGE["title"]
    assert trailers(repo)["Review-Hash"] == parent["result"]["analysis"]["review_hash"]
    verified = review_hash_verify(repo)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def checkout_mirror(run: Run, commit: str, where: Path) -> Path:
    """A repository at `commit`, sharing the objects of taskyard's mirror (where it is)."""
    mirrors = run.yard.home / "workspaces" / "mirrors"
    (mirror,) = [p for p in mirrors.rglob("*.git") if (p / "HEAD").is_file()]
    git("clone", "-q", "--no-checkout", "--shared", str(mirror), str(where))
    git("checkout", "-q", "--detach", commit, cwd=where)
    return where


def check_subtask(run: Run, sub: dict[str, Any], attempts: int) -> None:
    """A subtask ended with its own commit gate passed, kept for its parent."""
    assert sub["status"] == "succeeded", (sub["reason"], sub["gates"])
    assert sub["parent_id"] == run.parent_id
    assert sub["attempts"] == attempts
    assert sub["route"].startswith("pr-fix.sub-")
    committed = [g for g in sub["gates"] if g["gate"] == "commit" and g["outcome"] == "passed"]
    assert len(committed) == 1, sub["gates"]


def test_a_parent_waits_for_two_subtasks_and_commits_all_three_changes(
    start_run: StartRun, tmp_path: Path
) -> None:
    run = start_run(script())
    seen: set[str] = set()

    def waiting() -> bool:
        seen.add(run.api(run.parent_id)["status"])
        return "waiting" in seen

    wait_for(waiting, 90, "the parent to wait for its subtasks")
    parent = run.wait_all_ended(240)
    alpha, beta = run.subtasks()
    for sub in (alpha, beta):
        check_subtask(run, sub, attempts=1)
    assert parent["parent_id"] is None and parent["attempts"] == 2
    assert gates(parent) == PARENT_GATES
    audit = json.loads(run.yard.cli("audit", "show", run.parent_id, "--json").stdout)
    waited = next(e["data"] for e in audit if e["data"].get("outcome") == "waiting")
    assert waited["subtasks"] == [alpha["id"], beta["id"]]
    check_parent_commit(run, parent, tmp_path / "check")
    assert run.yard.cli("audit", "verify").returncode == 0


def test_kill_9_during_the_second_subtask_runs_it_again_and_not_the_first(
    start_run: StartRun, tmp_path: Path
) -> None:
    run = start_run(script())
    wait_for(lambda: len(run.subtasks()) == 2, 60, "the parent to create its subtasks")
    alpha, beta = run.subtasks()
    # Armed before beta's codex starts (it waits for the parent's, which pauses after its
    # edit): turns are chosen statelessly, so beta's hang is keyed on its route, and the
    # script without it is put back before the restart.
    run.server.script = as_script(script(hang_route=beta["route"]))

    def beta_hangs() -> bool:
        return any(
            r.script == "sub-implement-hangs" and r.turn == 1 for r in run.server.turn_requests()
        )

    wait_for(beta_hangs, 120, "the second subtask's agent to hang after its edit")
    wait_for(lambda: run.api(alpha["id"])["status"] in ENDED, 60, "the first subtask's end")
    assert run.api(run.parent_id)["status"] == "waiting"
    assert run.api(beta["id"])["status"] == "running"
    alpha_prompts = run.prompts_naming(alpha["route"])
    assert alpha_prompts > 0
    run.yard.kill9()
    run.server.script = as_script(script())  # the second attempt does not hang
    run.yard.start()

    parent = run.wait_all_ended(240)
    alpha, beta = run.subtasks()
    check_subtask(run, alpha, attempts=1)
    check_subtask(run, beta, attempts=2)
    assert (alpha["agent"], beta["agent"]) == ("claude", "codex")
    implements = [g["outcome"] for g in beta["gates"] if g["gate"] == "implement"]
    assert implements == ["entered", "entered", "passed"]  # the killed attempt's, then its own
    assert parent["attempts"] == 2
    assert run.prompts_naming(alpha["route"]) == alpha_prompts  # never run again
    assert gates(parent) == PARENT_GATES
    check_parent_commit(run, parent, tmp_path / "check")
    assert run.yard.cli("audit", "verify").returncode == 0
