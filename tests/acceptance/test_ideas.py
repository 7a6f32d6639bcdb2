"""Ideas that run themselves, with the real codex (planner and implementer) and claude
(reviewer) against the scripted model server, through `taskyard serve` writing to the GitHub
test server (every request checked against @octokit/openapi) and pushing to a local bare
repository. The idea comes from a real `issues.opened` delivery whose body is the idea issue
form (`### Goal` …), on the repository of GitHub's samples (Codertocat/Hello-World).

- The planner answers a diamond (A → B, A → C, B + C → D), each task writing its own file: B's
  and C's implementing agents run at the same time, D starts only after both; each task passes
  its gates; the idea's branch holds the four commits in dependency order, its Review-Hashes
  verify, and one pull request (head: the idea's branch) goes to GitHub.
- A first plan with a cycle, a missing dependency and a task without acceptance criteria is
  sent back with the errors, and the second plan runs.
- kill -9 of taskyard while B's agent runs (its model request hangs), after C ended: after the
  restart B runs again, A and C do not, the idea completes, and the NATS JetStream stream
  holds each of the idea's events once, in order.

Ideas' tasks are made from the route `idea-change` (`ideas.route`), whose planning gates are
off to keep it short: each task goes implement → test → review → commit.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from taskyard.devtools.model_script import as_script
from taskyard.devtools.model_server import ModelServer
from tests.acceptance.run_harness import SHARED, RunYard, git, make_repository
from tests.acceptance.test_change_routes import API_TOKEN, APPROVE
from tests.acceptance.test_pr_fix_loop import review_hash_verify
from tests.acceptance.test_serve import wait_for
from tests.agent_binaries import agent_binary
from tests.integration.test_idea_events import read_stream, stream
from tests.platform_servers import PlatformServer, github_problems, github_server

pytestmark = pytest.mark.slow

FULL_NAME = "Codertocat/Hello-World"
TOKEN = "ghp_IDEAStokenTHATmustNEVERleak0000000000"
CONFIG = """
queue:
  polling_interval_sec: 0.05
runs:
  timeout_seconds: 90
  kill_grace_seconds: 1
  concurrency: 4
agents:
  codex: {{kind: codex, binary: "{codex}", model: gpt-5.5, max_concurrency: 2}}
  claude: {{kind: claude, binary: "{claude}", model: claude-sonnet-4-5,
            address_space_bytes: 4294967296}}
routes:
  - name: idea-change
    on: ["taskyard:idea.task"]
    agent: codex
    mode: change
    repo: true
    gates: {{plan: false, plan_review: false}}
    who: {{min_permission: none}}
    test_commands: ["ls *.txt"]
ideas: {{route: idea-change}}
platforms:
  github: {{base_url: "{base_url}"}}
  backoff_seconds: 0.01
log_level: INFO
"""
FORM = """### Goal

Four notes, one file each: A first, then B and C, then D.

### Constraints

- one file per task

### Success metrics

- the four files on the idea's branch

### Priority

P2
"""
PLAN_HEADING = "Plan an idea as a graph of tasks"
REFUSED = "Your previous plan was refused"


def task(key: str, *deps: str, criteria: tuple[str, ...] | None = None) -> dict[str, Any]:
    accepted = [f"{key}.txt says {key}"] if criteria is None else list(criteria)
    return {"id": key, "title": f"write {key}.txt", "stage": "implement",
            "depends_on": list(deps), "acceptance_criteria": accepted, "risk_labels": [],
            "estimate": "S", "files": [f"{key}.txt"], "heavy": False}  # fmt: skip


def plan(*tasks: dict[str, Any]) -> dict[str, Any]:
    return {
        "plan": {"tasks": list(tasks), "milestones": [], "risks": [], "summary": "notes"},
        "summary": f"{len(tasks)} notes",
    }


DIAMOND = plan(task("A"), task("B", "A"), task("C", "A"), task("D", "B", "C"))
# a cycle (X ↔ Y), a dependency on a task that is not there (Z), no acceptance criteria (W)
WRONG = plan(task("X", "Y"), task("Y", "X"), task("Z", "nowhere"), task("W", criteria=()))


def implement(key: str, *, pause: float = 0, hang: bool = False) -> dict[str, Any]:
    """Task `key`'s implementer writes its file (then pauses `pause` seconds: time for the
    other branch of the diamond to run beside it); with `hang`, its next request hangs."""
    shell = f"cd repo && echo {key} > {key}.txt" + (f" && sleep {pause}" if pause else "")
    last = {"hang": True} if hang else {"final": {"title": f"note {key}", "summary": key}}
    return {
        "name": f"implement-{key}" + ("-hangs" if hang else ""),
        "match": f"idea-task-{key}: implement the change (gate: implement, round 1)",
        "turns": [{"shell": shell}, last],
    }


def script(*plans: dict[str, Any], keys: str = "ABCD", hang: str = "") -> dict[str, Any]:
    """The planner answers `plans` in turn (the later ones matching the re-plan's words);
    each task's implementer writes its file (B and C pausing 3 s), claude approves each."""
    planners = [
        {"name": f"plan-v{n}", "match": REFUSED if n > 1 else PLAN_HEADING,
         "turns": [{"final": answer}]}
        for n, answer in enumerate(plans, 1)
    ]  # fmt: skip
    implementers = [implement(k, pause=3 if k in "BC" else 0, hang=k == hang) for k in keys]
    review = {
        "name": "review",
        "match": "review a code change (gate: review, round 1)",
        "turns": [{"final": APPROVE}],
    }
    return {"scripts": [review, *implementers, *reversed(planners)]}


@dataclass
class IdeaWorld:
    """A yard, GitHub, the model server and the bare repository (main at `base`)."""

    yard: RunYard
    gh: PlatformServer
    server: ModelServer
    bare: Path
    base: str

    def submit(self) -> str:
        """The idea issue as GitHub delivers it; the idea's id."""
        payload = json.loads((SHARED / "github" / "issues.opened.json").read_text())
        payload["issue"]["body"] = FORM
        payload["issue"]["labels"] = []
        self.yard.send_file("github", payload, "issues")
        found: list[dict[str, Any]] = []

        def registered() -> bool:
            found[:] = json.loads(self.yard.cli("ideas", "list", "--json").stdout)
            return bool(found)

        wait_for(registered, 30, "the idea to be registered")
        (idea,) = found
        return str(idea["id"])

    def api(self, path: str) -> dict[str, Any]:
        answer = httpx.get(
            f"{self.yard.url}{path}",
            headers={"authorization": f"Bearer {API_TOKEN}"},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def idea(self, idea_id: str) -> dict[str, Any]:
        return self.api(f"/api/ideas/{idea_id}")

    def wait_idea(self, idea_id: str, seconds: float = 90) -> dict[str, Any]:
        """The idea once it ended (completed, failed or cancelled)."""
        seen: list[dict[str, Any]] = []

        def ended() -> bool:
            seen[:] = [self.idea(idea_id)]
            return seen[0]["idea"]["status"] in ("completed", "failed", "cancelled")

        wait_for(ended, seconds, f"idea {idea_id} to end")
        return seen[0]

    def runs(self, overview: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """Each plan task's taskyard task, by key."""
        return {t["key"]: self.api(f"/api/tasks/{t['task_id']}") for t in overview["tasks"]}

    def requests_of(self, name: str) -> int:
        return sum(r.script == name for r in self.server.turn_requests())


StartWorld = Callable[..., IdeaWorld]


@pytest.fixture
def start_world(tmp_path: Path, model_server: Callable[[Any], ModelServer]) -> Iterator[StartWorld]:
    yards: list[RunYard] = []
    with github_server() as gh:

        def start(
            model_script: dict[str, Any], extra: str = "", db: str | None = None
        ) -> IdeaWorld:
            server = model_server(model_script)
            make_repository(tmp_path)
            bare = tmp_path / "mirrors-src" / "Codertocat" / "Hello-World.git"
            config = CONFIG.format(
                codex=agent_binary("codex"), claude=agent_binary("claude"), base_url=gh.base_url
            )
            yard = RunYard(tmp_path, db, config + extra)
            yard.env.update(
                OPENAI_BASE_URL=f"{server.url}/v1",
                OPENAI_API_KEY="sk-test-openai",
                ANTHROPIC_BASE_URL=server.url,
                ANTHROPIC_API_KEY="sk-test-anthropic",
                TASKYARD_API_TOKEN=API_TOKEN,
                TASKYARD_GITHUB_TOKEN=TOKEN,
            )
            yards.append(yard)
            yard.start()
            return IdeaWorld(yard, gh, server, bare, git("rev-parse", "main", cwd=bare))

        yield start
        for yard in yards:
            yard.stop()
        leaked = [r for r in gh.requests if TOKEN in r.everything_but_auth()]
        assert not leaked, leaked


def at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def implementing(run: dict[str, Any]) -> tuple[float, float]:
    """When the task's implementing agent ran: its implement gate, entered to passed."""
    steps = [g for g in run["gates"] if g["gate"] == "implement"]
    return steps[0]["at"], next(g["at"] for g in steps if g["outcome"] == "passed")


def check_completed(world: IdeaWorld, idea_id: str, tmp_path: Path) -> dict[str, Any]:
    """The diamond done: every task passed its gates, B's and C's agents overlapped, D came
    after both, the branch holds the four commits in order with verifying Review-Hashes, and
    one pull request from it was sent to GitHub."""
    overview = world.wait_idea(idea_id)
    idea = overview["idea"]
    assert idea["status"] == "completed", (idea["reason"], overview["events"])
    runs = world.runs(overview)
    for key, run in runs.items():
        assert run["status"] == "succeeded", (key, run["reason"], run["gates"])
        passed = [g["gate"] for g in run["gates"] if g["outcome"] in ("passed", "approved")]
        assert passed == ["implement", "test", "review", "commit"], (key, run["gates"])
    (b_from, b_to), (c_from, c_to) = implementing(runs["B"]), implementing(runs["C"])
    assert b_from < c_to and c_from < b_to, "B's and C's agents did not run at the same time"
    assert at(runs["D"]["started_at"]) >= max(at(runs["B"]["finished_at"]),
                                              at(runs["C"]["finished_at"]))  # fmt: skip
    assert at(runs["B"]["started_at"]) >= at(runs["A"]["finished_at"])

    branch = f"taskyard/idea-{idea_id}/integration"
    assert idea["branch"] == branch
    subjects = git("log", "--format=%s", f"{world.base}..{branch}", cwd=world.bare).split("\n")
    assert subjects[0] == "note D" and subjects[-1] == "note A", subjects
    assert sorted(subjects[1:3]) == ["note B", "note C"], subjects
    for key in "ABCD":
        assert git("show", f"{branch}:{key}.txt", cwd=world.bare) == key
    clone = tmp_path / "check"
    git("clone", "-q", "--branch", branch, str(world.bare), str(clone))
    verified = review_hash_verify(clone, f"{world.base}..HEAD")
    assert verified.returncode == 0, verified.stdout + verified.stderr

    pulls = [r for r in world.gh.requests if (r.method, r.path) == ("POST",
             f"/repos/{FULL_NAME}/pulls")]  # fmt: skip
    assert len(pulls) == 1, [r.path for r in world.gh.requests]
    assert github_problems(pulls[0]) == []
    assert (pulls[0].json()["head"], pulls[0].json()["base"]) == (branch, "main")
    assert idea["pr_url"]
    assert world.gh.problems == []
    return overview


def test_a_diamond_plan_runs_b_and_c_together_and_ends_in_one_pull_request(
    start_world: StartWorld, tmp_path: Path
) -> None:
    world = start_world(script(DIAMOND))
    idea_id = world.submit()
    overview = check_completed(world, idea_id, tmp_path)
    assert overview["idea"]["shape"]["goal"].startswith("Four notes")
    assert overview["idea"]["origin"]["platform"] == "github"
    kinds = [e["kind"] for e in overview["events"]]
    assert kinds.count("task_scheduled") == 4 and kinds.count("task_integrated") == 4
    assert kinds[-3:] == ["review", "integration", "completed"]


def test_a_refused_plan_goes_back_with_its_errors_and_the_second_one_runs(
    start_world: StartWorld,
) -> None:
    world = start_world(script(WRONG, plan(task("A")), keys="A"))
    idea_id = world.submit()
    overview = world.wait_idea(idea_id)
    assert overview["idea"]["status"] == "completed", overview["idea"]["reason"]
    assert overview["idea"]["plan_version"] == 2
    first, second = overview["plans"]
    errors = " | ".join(first["errors"])
    assert "cycle" in errors and "nowhere" in errors and "acceptance criteria" in errors, errors
    assert second["errors"] == []
    replanned = [r for r in world.server.turn_requests() if r.script == "plan-v2"]
    assert len(replanned) == 1
    asked = json.dumps(replanned[0].body)
    assert REFUSED in asked and "nowhere" in asked  # the errors, in the re-planner's prompt
    assert [t["key"] for t in overview["tasks"]] == ["A"]
    assert world.runs(overview)["A"]["status"] == "succeeded"
    branch = f"taskyard/idea-{idea_id}/integration"
    assert git("show", f"{branch}:A.txt", cwd=world.bare) == "A"


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_kill_9_mid_dag_runs_only_the_unfinished_task_again_and_events_go_out_once_in_order(
    start_world: StartWorld, tmp_path: Path, stream: str, store: str, request: pytest.FixtureRequest
) -> None:
    db = request.getfixturevalue("pg_url") if store == "postgres" else None
    events = f"events: {{nats_url: 'nats://127.0.0.1:4222', stream: {stream}}}\n"
    world = start_world(script(DIAMOND, hang="B"), extra=events, db=db)
    idea_id = world.submit()

    def c_ended_and_b_hangs() -> bool:
        tasks = {t["key"]: t for t in world.idea(idea_id)["tasks"]}
        hangs = world.requests_of("implement-B-hangs") >= 2
        return hangs and tasks.get("C", {}).get("status") == "succeeded"

    wait_for(c_ended_and_b_hangs, 90, "C to end while B's agent hangs")
    before = {k: world.requests_of(f"implement-{k}") for k in "AC"}
    world.yard.kill9()
    world.server.script = as_script(script(DIAMOND))  # B's second attempt does not hang
    world.yard.start()

    overview = check_completed(world, idea_id, tmp_path)
    attempts = {k: r["attempts"] for k, r in world.runs(overview).items()}
    assert attempts == {"A": 1, "B": 2, "C": 1, "D": 1}, attempts
    assert {k: world.requests_of(f"implement-{k}") for k in "AC"} == before  # not run again

    shown = json.loads(world.yard.cli("ideas", "show", idea_id, "--json").stdout)["events"]
    expected = [(f"{idea_id}-{e['seq']}", e["kind"]) for e in shown]
    assert [e["seq"] for e in shown] == list(range(1, len(shown) + 1))

    def all_out() -> bool:
        return len(asyncio.run(read_stream(stream))) >= len(expected)

    wait_for(all_out, 30, "the idea's events to reach the stream")
    held = asyncio.run(read_stream(stream))
    assert [(msg_id, m["kind"]) for _, msg_id, m in held if m["idea_id"] == idea_id] == expected


__all__ = ["stream"]  # the NATS stream fixture, shared with the integration tests
