"""Change routes (`mode: change`) with the real codex and claude against the scripted model
server: a real `pull_request_review_comment.created` delivery (@octokit/webhooks-examples, set
to a local bare repository) runs the gates plan → plan_review → implement → test → review →
commit, codex implementing and claude reviewing.

- Every gate passes: the task succeeds, its record lists the gates in order, the commit carries
  a Review-Hash that `taskyard review-hash verify` accepts (and rejects once the tree is
  amended) and claude's real session id; the audit chain verifies and names that session.
- A needs-revision review sends the change back: a second implement round reads the findings.
- A failing test command stops the task at `test`, with the output's tail in its reason.
- A 600-line change and a planted secret are refused at the safety checks; nothing is committed.

Delivery to GitHub is not wired yet: the commit stays in the task's worktree, whose objects
live in taskyard's mirror (the kept workspace's repo loses its link to it when archived).
"""

from __future__ import annotations

import copy
import json
import os
import random
import string
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest

from taskyard.devtools.model_server import ModelServer
from tests.acceptance.run_harness import RunYard, git, make_repository
from tests.agent_binaries import agent_binary

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
OCTOKIT = REPO / ".cache/npm/node_modules/@octokit/webhooks-examples/api.github.com/index.json"
API_TOKEN = "acceptance-api-token"
# The planted secret is made here, so none sits in this file (as in test_change_safety.py).
_RANDOM = random.Random(15)
AWS_KEY = "AKIA" + "".join(_RANDOM.choice(string.ascii_uppercase + "234567") for _ in range(16))

FIXED_APP = "def greet(name):\n    return 'hello, ' + name\n"
PLAN_FILE = "# Plan\\n\\n1. greet(): say hello with a comma (app.py).\\n2. Test: grep app.py.\\n"
PLAN = {"plan": "greet() says hello with a comma.", "summary": "One line in app.py."}
CHANGE = {"title": "greet: say hello with a comma", "summary": "The reviewer asked for it."}
APPROVE = {"verdict": "approve", "findings": [], "summary": "Does what was asked."}
REVISE = {
    "verdict": "needs_revision",
    "findings": ["app.py: greet() must also strip the name"],
    "summary": "Almost.",
}
IMPLEMENT = f"cd repo && printf {json.dumps(FIXED_APP)} > app.py"

# taskyard runs it in the worktree; a failure says what greet() still is
TEST = 'grep -n "hello, " app.py || { echo "greet is still: $(cat app.py)"; exit 3; }'
CONFIG = """
queue:
  polling_interval_sec: 0.05
runs:
  timeout_seconds: 90
  kill_grace_seconds: 1
  keep_workspaces: true
agents:
  codex: {{kind: codex, binary: "{codex}", model: gpt-5.5}}
  claude: {{kind: claude, binary: "{claude}", model: claude-sonnet-4-5,
            address_space_bytes: 4294967296}}
routes:
  - name: pr-fix
    on: ["github:pull_request_review_comment.created"]
    agent: codex
    mode: change
    repo: true
    who: {{min_permission: none}}
    test_commands: [{test}]
log_level: INFO
"""


def at(turn: int, *turns: dict[str, Any]) -> list[dict[str, Any]]:
    """`turns` from turn number `turn` on. A resumed codex conversation counts the earlier
    gates' tool calls (the server numbers turns by the model turns a conversation holds), so
    the implementer's later gates start past 0; an earlier turn would be a mistake, and fails."""
    unexpected = {"error": {"status": 400, "message": f"turn before {turn}: unexpected"}}
    return [unexpected] * turn + list(turns)


def read_findings(round_: int) -> str:
    """A later round first reads the reviewer's findings (its output goes to the model)."""
    return "cat ../context/review-findings.md && " if round_ > 1 else ""


def script(implement: str, reviews: list[dict[str, Any]]) -> dict[str, Any]:
    """codex plans (a shell command writes outputs/plan.md) and implements with one shell
    command per round; claude approves the plan and gives `reviews`, one per review round.
    A resumed conversation holds the earlier prompts, so a later gate's script comes first and
    matches on its own heading."""
    scripts: list[dict[str, Any]] = []
    for n in range(len(reviews), 0, -1):
        # round n of implement follows the plan's tool call and one per earlier round
        scripts.append(
            {
                "name": f"implement-{n}",
                "match": f"implement the change (gate: implement, round {n})",
                "turns": at(n, {"shell": read_findings(n) + implement}, {"final": CHANGE}),
            }
        )
    scripts.append(
        {
            "name": "plan",
            "match": "plan a code change (gate: plan, round 1)",
            "turns": [{"shell": f"printf '{PLAN_FILE}' > ../outputs/plan.md"}, {"final": PLAN}],
        }
    )
    scripts.append(
        {
            "name": "plan-review",
            "match": "review a plan (gate: plan review, round 1)",
            "turns": [{"final": APPROVE}],
        }
    )
    for n, verdict in enumerate(reviews, 1):
        scripts.append(
            {
                "name": f"review-{n}",
                "match": f"review a code change (gate: review, round {n})",
                "turns": [{"final": verdict}],
            }
        )
    return {"scripts": scripts}


@cache
def _octokit() -> dict[str, list[dict[str, Any]]]:
    if not OCTOKIT.is_file():
        pytest.fail(f"{OCTOKIT} is missing: scripts/test installs it")
    return {group["name"]: group["examples"] for group in json.loads(OCTOKIT.read_text())}


def review_comment(head: str, base: str) -> dict[str, Any]:
    """GitHub's own review-comment delivery, on the local repository's pull request."""
    examples = _octokit()["pull_request_review_comment"]
    payload = copy.deepcopy(next(p for p in examples if p["action"] == "created"))
    payload["pull_request"]["head"]["sha"] = head
    payload["pull_request"]["base"]["sha"] = base
    payload["comment"]["commit_id"] = head
    payload["comment"]["path"] = "app.py"
    payload["comment"]["body"] = "@taskyard fix: greet() should say hello with a comma"
    return dict(payload)


@dataclass
class Change:
    """One change task's run: the yard, the model server, the ended task and its record."""

    yard: RunYard
    server: ModelServer
    head: str
    task: dict[str, Any]

    @property
    def gates(self) -> list[tuple[str, int, str]]:
        return [(g["gate"], g["round"], g["outcome"]) for g in self.task["gates"]]

    @property
    def kept(self) -> Path:
        return Path(self.task["workspace"])

    def mirror(self) -> Path:
        found = [
            p
            for p in (self.yard.home / "workspaces" / "mirrors").rglob("*.git")
            if (p / "HEAD").is_file()
        ]
        assert len(found) == 1, found
        return found[0]

    def commits(self) -> int:
        """Commit objects in the mirror, unreachable ones too (a worktree's commit is)."""
        objects = git("cat-file", "--batch-all-objects", "--batch-check", cwd=self.mirror())
        return sum(line.split()[1] == "commit" for line in objects.splitlines())

    def audit(self) -> list[dict[str, Any]]:
        return list(json.loads(self.yard.cli("audit", "show", self.task["id"], "--json").stdout))

    def prompts_to(self, name: str) -> list[str]:
        return [json.dumps(r.body) for r in self.server.turn_requests() if r.script == name]


RunChange = Callable[[dict[str, Any]], Change]


@pytest.fixture(params=["sqlite"])
def run_change(
    request: pytest.FixtureRequest, tmp_path: Path, model_server: Callable[[Any], ModelServer]
) -> Iterator[RunChange]:
    """Start a yard on a script, send the review comment, return the ended task."""
    db = request.getfixturevalue("pg_url") if request.param == "postgres" else None
    config = CONFIG.format(
        codex=agent_binary("codex"), claude=agent_binary("claude"), test=json.dumps(TEST)
    )
    yards: list[RunYard] = []

    def run(model_script: dict[str, Any]) -> Change:
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
        ended = yard.wait_task_end(event_id, 240)
        answer = httpx.get(
            f"{yard.url}/api/tasks/{ended['id']}",
            headers={"authorization": f"Bearer {API_TOKEN}"},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        return Change(yard, server, head, answer.json())

    yield run
    for yard in yards:
        yard.stop()


def checkout(change: Change, commit: str, where: Path) -> Path:
    """A repository at `commit`, sharing the mirror's objects (where taskyard's commit is)."""
    git("clone", "-q", "--no-checkout", "--shared", str(change.mirror()), str(where))
    git("checkout", "-q", "--detach", commit, cwd=where)
    return where


def review_hash_verify(repo: Path) -> subprocess.CompletedProcess[str]:
    """`taskyard review-hash verify` as a CI job runs it: in the repository, nothing else."""
    return subprocess.run(
        [sys.executable, "-m", "taskyard", "review-hash", "verify", "HEAD~1..HEAD"],
        cwd=repo,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def trailers(repo: Path) -> dict[str, str]:
    raw = git("log", "-1", "--format=%(trailers:only,unfold)", cwd=repo)
    return dict(line.split(": ", 1) for line in raw.splitlines() if ": " in line)


HAPPY_GATES = [
    ("plan", 1, "entered"),
    ("plan", 1, "passed"),
    ("plan_review", 1, "entered"),
    ("plan_review", 1, "approved"),
    ("implement", 1, "entered"),
    ("implement", 1, "passed"),
    ("test", 1, "entered"),
    ("test", 1, "passed"),
    ("review", 1, "entered"),
    ("review", 1, "approved"),
    ("commit", 1, "entered"),
    ("commit", 1, "passed"),
]


@pytest.mark.parametrize("run_change", ["sqlite", "postgres"], indirect=True)
def test_every_gate_passes_and_the_commit_carries_a_verifiable_review_hash(
    run_change: RunChange, tmp_path: Path
) -> None:
    change = run_change(script(IMPLEMENT, [APPROVE]))
    task = change.task
    assert task["status"] == "succeeded", (task["reason"], task["gates"])
    assert change.gates == HAPPY_GATES
    assert task["gate"] == "commit"
    # every gate's agent counts: 4 runs of 2 model requests each (100 input tokens a request:
    # the script's default), and codex's two shell commands
    assert task["usage"]["input_tokens"] == 800, task["usage"]
    assert task["usage"]["tool_calls"] == 2, task["usage"]
    # the plan codex wrote with its shell, not the answer's copy
    assert (change.kept / "outputs" / "plan.md").read_text().startswith("# Plan\n\n1. greet()")
    commit = task["result"]["analysis"]["commit"]

    repo = checkout(change, commit, tmp_path / "check")
    assert git("rev-parse", "HEAD~1", cwd=repo) == change.head  # on the pull request's head
    assert (repo / "app.py").read_text() == FIXED_APP
    assert git("log", "-1", "--format=%s", cwd=repo) == CHANGE["title"]
    found = trailers(repo)
    assert found["Review-Hash"] == task["result"]["analysis"]["review_hash"]
    reviewer = found["Reviewed-by"]
    # claude's own session: its conversation file is in the task's claude config
    assert list(change.kept.rglob(f"{reviewer}.jsonl")), reviewer
    verified = review_hash_verify(repo)
    assert verified.returncode == 0, verified.stdout + verified.stderr

    (repo / "app.py").write_text(FIXED_APP + "# sneaked in after review\n")
    git(
        "-c",
        "user.name=x",
        "-c",
        "user.email=x@x",
        "commit",
        "-qa",
        "--amend",
        "--no-edit",
        cwd=repo,
    )
    assert trailers(repo)["Review-Hash"] == found["Review-Hash"]  # the trailer, unchanged
    refused = review_hash_verify(repo)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert git("rev-parse", "--short", "HEAD", cwd=repo) in refused.stdout

    assert change.yard.cli("audit", "verify").returncode == 0
    entries = [e["data"] for e in change.audit() if e["kind"] == "gate"]
    assert [(e["gate"], e["round"], e["outcome"]) for e in entries] == HAPPY_GATES
    approved = entries[9]
    assert (approved["reviewer"], approved["session"]) == ("claude", reviewer)
    assert approved["review_hash"] == found["Review-Hash"]
    assert entries[3]["session"] not in ("", reviewer)  # the plan's review: its own session
    assert (entries[-1]["commit"], entries[-1]["reviewed_by"]) == (commit, reviewer)
    assert entries[7]["commands"][0]["exit_code"] == 0


def test_a_needs_revision_review_sends_the_change_back_and_round_two_passes(
    run_change: RunChange,
) -> None:
    change = run_change(script(IMPLEMENT, [REVISE, APPROVE]))
    task = change.task
    assert task["status"] == "succeeded", (task["reason"], task["gates"])
    assert change.gates == [
        *HAPPY_GATES[:8],
        ("review", 1, "entered"),
        ("review", 1, "revise"),
        ("implement", 2, "entered"),
        ("implement", 2, "passed"),
        ("test", 2, "entered"),
        ("test", 2, "passed"),
        ("review", 2, "entered"),
        ("review", 2, "approved"),
        *HAPPY_GATES[-2:],
    ]
    prompt = (change.kept / "prompts" / "change-implement-2.md").read_text()
    assert "review-findings.md" in prompt
    # the implementer read the findings in round 2 (its shell output went back to the model)
    assert any(REVISE["findings"][0] in body for body in change.prompts_to("implement-2"))
    assert change.yard.cli("audit", "verify").returncode == 0


def test_a_failing_test_command_stops_at_test(run_change: RunChange, tmp_path: Path) -> None:
    change = run_change(script("cd repo && echo '# no comma yet' >> app.py", [APPROVE]))
    task = change.task
    assert task["status"] == "failed"
    assert task["ending"] == "tests_failed", task["reason"]
    assert "greet is still: def greet(name):" in task["reason"]
    assert change.gates[-2:] == [("test", 1, "entered"), ("test", 1, "failed")]
    assert not change.prompts_to("review-1")  # never reviewed
    assert task["result"] is None
    assert change.commits() == 2  # nothing committed


@pytest.mark.parametrize(
    ("extra", "refused"),
    [
        ("seq 1 600 > numbers.txt", "602 changed lines, over the limit of 500"),
        (f"echo 'aws_access_key_id = {AWS_KEY}' > settings.py", "a secret (AWS Access Key)"),
    ],
    ids=["600-lines", "secret"],
)
def test_an_oversized_or_secret_change_is_refused(
    run_change: RunChange, extra: str, refused: str
) -> None:
    change = run_change(script(f"{IMPLEMENT} && {extra}", [APPROVE]))
    task = change.task
    assert task["status"] == "failed"
    assert task["ending"] == "change_refused", task["reason"]
    assert refused in task["reason"]
    assert AWS_KEY not in task["reason"] and AWS_KEY not in json.dumps(change.audit())
    assert change.gates[-1] == ("test", 1, "refused")
    assert not change.prompts_to("review-1")
    assert change.commits() == 2  # nothing committed
