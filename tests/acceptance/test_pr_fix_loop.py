"""The PR-fix loop end to end with the real codex and claude against the scripted model
server: `taskyard serve` writing to the GitHub test server (every request checked against
@octokit/openapi) and pushing to a local bare repository, fed real
`pull_request_review_comment.created` deliveries (@octokit/webhooks-examples) whose comment
says `@taskyard fix …` to a route with `fix: true`.

- Suggestion mode: one review of suggested changes, nothing pushed.
- Push mode: taskyard's commit on the pull request's branch, with a Review-Hash that
  `taskyard review-hash verify` accepts and the `taskyard/review-hash` status; a pull request
  whose head is the default branch gets nothing pushed and a refusal in words.
- The PR's second fix resumes the first fix's codex session: the model server sees its turns.
- Refusals and failures are said on the pull request: a fix over the hourly bound, and a
  failing test command with its output's tail.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from taskyard.devtools.model_script import Conversation, Script
from taskyard.devtools.model_server import ModelServer, RecordedRequest
from tests.acceptance.run_harness import RunYard, git, make_repository
from tests.acceptance.test_change_routes import (
    APPROVE,
    CHANGE,
    FIXED_APP,
    IMPLEMENT,
    PLAN,
    PLAN_FILE,
    TEST,
    _octokit,
)
from tests.agent_binaries import agent_binary
from tests.platform_servers import (
    PlatformServer,
    Recorded,
    github_problems,
    github_server,
    serve_pull_request,
)

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
FULL_NAME = "Codertocat/Hello-World"
TOKEN = "ghp_PRFIXtokenTHATmustNEVERleak000000000000"
MARKER = "<!-- taskyard:"
BRANCH = "changes"  # the pull request's head branch in the bare repository
ASK = "@taskyard fix: greet() should say hello with a comma"
CONFIG = """
queue:
  polling_interval_sec: 0.05
runs:
  timeout_seconds: 90
  kill_grace_seconds: 1
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
    fix: true
    who: {{min_permission: none}}
    test_commands: [{test}]
changes: {changes}
platforms:
  github: {{base_url: "{base_url}"}}
  backoff_seconds: 0.01
log_level: INFO
"""


class LatestGate(Script):
    """Picks the conversation of the gate the agent is at: the match found LAST in the
    prompt. A resumed codex thread holds every earlier gate's prompt (the previous fix's
    too), so the first match would answer an earlier gate."""

    def pick(self, prompt: str) -> Conversation | None:
        found = [(prompt.rfind(c.match or ""), c) for c in self.scripts if c.matches(prompt)]
        return max(found, key=lambda f: f[0])[1] if found else None


def script(implement: str, fixes: int = 1) -> LatestGate:
    """codex plans and implements `fixes` times in one thread (a fix's plan resumes the
    previous fix's thread, so its turns follow on: the server counts a conversation's calls);
    claude approves every plan and every change."""
    unexpected = {"error": {"status": 400, "message": "turn 0 of implement: unexpected"}}
    plan = [{"shell": f"printf '{PLAN_FILE}' > ../outputs/plan.md"}, {"final": PLAN}]
    change = [{"shell": implement}, {"final": CHANGE}]
    return LatestGate.model_validate(
        {
            "scripts": [
                {
                    "name": "plan",
                    "match": "plan a code change (gate: plan, round 1)",
                    "turns": plan * fixes,
                },
                {
                    "name": "implement",
                    "match": "implement the change (gate: implement, round 1)",
                    "turns": [unexpected, *change * fixes],
                },
                {
                    "name": "plan-review",
                    "match": "review a plan (gate: plan review, round 1)",
                    "turns": [{"final": APPROVE}],
                },
                {
                    "name": "review",
                    "match": "review a code change (gate: review, round 1)",
                    "turns": [{"final": APPROVE}],
                },
            ]
        }
    )


@dataclass
class PullRequestWorld:
    """A yard serving one pull request (#2 of Codertocat/Hello-World, its branch `changes`
    one commit over `main` in a bare repository), GitHub and the model server."""

    yard: RunYard
    gh: PlatformServer
    server: ModelServer
    bare: Path
    head: str
    base: str
    comments: int = 0
    tasks: list[dict[str, Any]] = field(default_factory=list)

    def delivery(self, head_ref: str = BRANCH, body: str = ASK) -> dict[str, Any]:
        """GitHub's own review-comment delivery, on this pull request; a new comment each."""
        examples = _octokit()["pull_request_review_comment"]
        payload = copy.deepcopy(next(p for p in examples if p["action"] == "created"))
        self.comments += 1
        pull, comment = payload["pull_request"], payload["comment"]
        pull["head"].update(ref=head_ref, sha=self.head)
        pull["base"].update(ref="main", sha=self.base)
        pull["base"]["repo"]["default_branch"] = "main"
        payload["repository"]["default_branch"] = "main"
        comment.update(id=comment["id"] + self.comments, commit_id=self.head, path="app.py")
        comment["body"] = body
        return dict(payload)

    def comment(self, payload: dict[str, Any]) -> str:
        """Send the delivery; its event id."""
        return self.yard.send_file("github", payload, "pull_request_review_comment")

    def fix(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Send the delivery and wait for its task to end."""
        task = self.yard.wait_task_end(self.comment(payload), 120)
        self.tasks.append(task)
        return task

    def refs(self) -> str:
        return git("for-each-ref", "--format=%(refname) %(objectname)", cwd=self.bare)

    def posted(self, method: str, path: str) -> list[Recorded]:
        return [r for r in self.gh.requests if (r.method, r.path) == (method, path)]

    def comments_posted(self) -> list[str]:
        found = self.posted("POST", f"/repos/{FULL_NAME}/issues/2/comments")
        return [str(r.json()["body"]) for r in found]

    def codex_requests(self, name: str) -> list[RecordedRequest]:
        return [r for r in self.server.turn_requests() if r.script == name]


StartWorld = Callable[..., PullRequestWorld]


@pytest.fixture
def start_world(tmp_path: Path, model_server: Callable[[Any], ModelServer]) -> Iterator[StartWorld]:
    """A world on `model_script`, its route's test command `test`, `changes:` as given and
    `extra` configuration."""
    yards: list[RunYard] = []
    with github_server() as gh:

        def start(
            model_script: Script,
            test: str = TEST,
            changes: dict[str, Any] | None = None,
            extra: str = "",
        ) -> PullRequestWorld:
            server = model_server(model_script)
            head = make_repository(tmp_path)
            base = git("rev-parse", "HEAD~1", cwd=tmp_path / "src")
            bare = tmp_path / "mirrors-src" / "Codertocat" / "Hello-World.git"
            git("update-ref", f"refs/heads/{BRANCH}", head, cwd=bare)
            git("update-ref", "refs/heads/main", base, cwd=bare)
            diff = git("diff", base, head, cwd=tmp_path / "src") + "\n"
            config = CONFIG.format(
                codex=agent_binary("codex"),
                claude=agent_binary("claude"),
                test=json.dumps(test),
                changes=json.dumps(changes or {}),
                base_url=gh.base_url,
            )
            yard = RunYard(tmp_path, None, config + extra)
            yard.env.update(
                OPENAI_BASE_URL=f"{server.url}/v1",
                OPENAI_API_KEY="sk-test-openai",
                ANTHROPIC_BASE_URL=server.url,
                ANTHROPIC_API_KEY="sk-test-anthropic",
                TASKYARD_GITHUB_TOKEN=TOKEN,
            )
            world = PullRequestWorld(yard, gh, server, bare, head, base)
            serve_pull_request(gh, world.delivery(), diff)
            world.comments = 0
            yards.append(yard)
            yard.start()
            return world

        yield start
        for yard in yards:
            yard.stop()
        leaked = [r for r in gh.requests if TOKEN in r.everything_but_auth()]
        assert not leaked, leaked


def review_hash_verify(repo: Path, span: str) -> subprocess.CompletedProcess[str]:
    """`taskyard review-hash verify` as a CI job runs it: in the repository, nothing else."""
    return subprocess.run(
        [sys.executable, "-m", "taskyard", "review-hash", "verify", span],
        cwd=repo,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_fix_in_suggestion_mode_posts_one_review_and_pushes_nothing(
    start_world: StartWorld,
) -> None:
    world = start_world(script(IMPLEMENT))
    before = world.refs()
    task = world.fix(world.delivery())
    assert task["status"] == "succeeded", task["reason"]

    reviews = world.posted("POST", f"/repos/{FULL_NAME}/pulls/2/reviews")
    assert len(reviews) == 1, reviews
    assert github_problems(reviews[0]) == []
    review = reviews[0].json()
    assert review["commit_id"] == world.head
    suggestion = "```suggestion\n    return 'hello, ' + name\n```"
    assert [c["path"] for c in review["comments"]] == ["app.py"]
    assert suggestion in review["comments"][0]["body"]
    assert MARKER in review["body"] and MARKER in review["comments"][0]["body"]
    assert world.refs() == before  # nothing pushed
    assert not world.posted("POST", f"/repos/{FULL_NAME}/statuses/{world.head}")
    assert world.gh.problems == []
    assert ("suggestion", task["id"]) in audited(world)


def test_a_fix_in_push_mode_lands_on_the_branch_with_a_verifiable_review_hash(
    start_world: StartWorld, tmp_path: Path
) -> None:
    world = start_world(script(IMPLEMENT), changes={"mode": "push"})
    task = world.fix(world.delivery())
    assert task["status"] == "succeeded", task["reason"]

    pushed = git("rev-parse", f"refs/heads/{BRANCH}", cwd=world.bare)
    assert pushed != world.head
    assert git("rev-parse", f"{pushed}~1", cwd=world.bare) == world.head
    assert git("rev-parse", "refs/heads/main", cwd=world.bare) == world.base
    assert git("show", f"{pushed}:app.py", cwd=world.bare) + "\n" == FIXED_APP
    clone = tmp_path / "clone"
    git("clone", "-q", "--branch", BRANCH, str(world.bare), str(clone))
    trailer = git("log", "-1", "--format=%(trailers:key=Review-Hash,valueonly)", cwd=clone)
    assert len(trailer) == 64, trailer
    verified = review_hash_verify(clone, f"{world.head}..{pushed}")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    (clone / "app.py").write_text(FIXED_APP + "# sneaked in after review\n")
    who = ("-c", "user.name=x", "-c", "user.email=x@x")
    git(*who, "commit", "-qa", "--amend", "--no-edit", cwd=clone)
    refused = review_hash_verify(clone, f"{world.head}..HEAD")
    assert refused.returncode == 1, refused.stdout + refused.stderr

    statuses = world.posted("POST", f"/repos/{FULL_NAME}/statuses/{pushed}")
    assert len(statuses) == 1, [r.path for r in world.gh.requests]
    status = statuses[0].json()
    assert (status["state"], status["context"]) == ("success", "taskyard/review-hash")
    assert trailer[:12] in status["description"]
    assert not world.posted("POST", f"/repos/{FULL_NAME}/pulls/2/reviews")
    assert ("push", task["id"]) in audited(world)
    assert world.gh.problems == []


def test_a_pull_request_from_the_default_branch_gets_nothing_pushed(
    start_world: StartWorld,
) -> None:
    world = start_world(script(IMPLEMENT), changes={"mode": "push"})
    before = world.refs()
    task = world.fix(world.delivery(head_ref="main"))
    assert (task["status"], task["ending"]) == ("failed", "change_refused"), task["reason"]
    assert "'main' is the default branch" in task["reason"]
    assert world.refs() == before
    assert not [r for r in world.gh.requests if "/statuses/" in r.path]
    said = [c for c in world.comments_posted() if "'main' is the default branch" in c]
    assert len(said) == 1, world.comments_posted()
    assert "taskyard refused the change: deliver: taskyard did not push" in said[0]
    assert MARKER in said[0]
    assert world.gh.problems == []


def test_the_second_fix_resumes_the_first_fixs_codex_session(start_world: StartWorld) -> None:
    world = start_world(script(IMPLEMENT, fixes=2))
    first = world.fix(world.delivery())
    assert first["status"] == "succeeded", first["reason"]
    second = world.fix(world.delivery(body=ASK + ", again"))
    assert second["status"] == "succeeded", second["reason"]

    plans = world.codex_requests("plan")
    # the first fix's plan began its thread; the second's came with the first fix's two
    # shell calls (plan and implement) already in the conversation
    assert [r.turn for r in plans] == [0, 1, 2, 3], [r.turn for r in plans]
    resumed = json.dumps(plans[2].body)
    first_id, second_id = first["id"], second["id"]
    assert f"task-{first_id}/context" in resumed  # the first fix's own prompts
    assert "implement the change (gate: implement, round 1)" in resumed
    assert f"task-{second_id}/context" in resumed  # and the second fix's plan prompt
    assert resumed.index(first_id) < resumed.index(second_id)
    assert [r.turn for r in world.codex_requests("implement")] == [1, 2, 3, 4]

    sessions = [
        {s.get("session") for s in task["gates"] if s.get("session")} for task in world.tasks
    ]
    assert len(sessions[0]) == 1 and sessions[0] == sessions[1]  # one codex thread, continued


def test_a_failing_test_and_refused_fixes_are_said_on_the_pull_request(
    start_world: StartWorld,
) -> None:
    world = start_world(
        script("cd repo && echo '# no comma yet' >> app.py"),
        changes={"attempts_per_comment": 1, "fixes_per_pr_per_hour": 1},
        extra="intake: {dedup_window_seconds: 0}\n",  # a redelivery is not dropped as a copy
    )
    asked = world.delivery()
    failed = world.fix(asked)
    assert (failed["status"], failed["ending"]) == ("failed", "tests_failed"), failed["reason"]
    said = [c for c in world.comments_posted() if "greet is still: def greet(name):" in c]
    assert len(said) == 1, world.comments_posted()
    assert "The tests taskyard ran did not pass" in said[0] and "(exit 3)" in said[0]
    assert MARKER in said[0]

    comment_id = asked["comment"]["id"]
    redelivered = refusal_for(world, asked)  # the same comment, under a new delivery id
    assert f"the 2nd attempt on comment {comment_id}: at most 1" in redelivered, redelivered
    another = refusal_for(world, world.delivery(body=ASK + ", please"))
    assert f"the 2nd fix on github:{FULL_NAME}#2 within an hour: at most 1" in another, another
    assert len(world.yard.tasks()) == 1  # the refused fixes started no task
    assert world.gh.problems == []
    deadline = time.monotonic() + 10  # each refusal is audited once it is posted
    while audited(world).count(("refusal", None)) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert audited(world).count(("refusal", None)) == 2


def audited(world: PullRequestWorld) -> list[tuple[str, str | None]]:
    """(kind, task id) of every audit entry, as `taskyard audit export --jsonl` gives them."""
    lines = world.yard.cli("audit", "export", "--jsonl").stdout.splitlines()
    entries = [json.loads(line) for line in lines if line.strip()]
    return [(e["kind"], e["task_id"]) for e in entries]


def refusal_for(world: PullRequestWorld, payload: dict[str, Any]) -> str:
    """Send the delivery; the refusal it got on the pull request."""
    mark = world.gh.mark()
    world.comment(payload)
    posted = world.gh.wait_for(
        lambda r: r.method == "POST" and r.path == f"/repos/{FULL_NAME}/issues/2/comments", mark
    )
    assert posted is not None, "no refusal posted"
    body = str(posted.json()["body"])
    assert body.startswith("taskyard will not fix this now: fix refused: "), body
    assert MARKER in body
    return body
