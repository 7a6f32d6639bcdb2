"""A change task's gates (`taskyard.run.change`) on MemoryStore, SQLite and PostgreSQL, with a
real git worktree and scripted agents: the order of the gates and what each one records, the
bounded revision loops, the test gate's refusal, the safety checks, the reviewer's session id,
gates turned off by configuration, a task cancelled between gates, and the gate tools that
refuse an agent's wish to skip one. (The real codex and claude run the same gates in
tests/acceptance/test_change_routes.py.)"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from taskyard.actions.policy import AllowListPolicy
from taskyard.agents.base import AgentOutcome, Usage
from taskyard.agents.stops import Stop
from taskyard.agents.supervisor import RunReport, RunStatus
from taskyard.approvals.gate import RiskPolicy, StoreGate
from taskyard.approvals.policies import ApprovalPolicies
from taskyard.approvals.risk import RiskRules
from taskyard.audit import verify_chain
from taskyard.lifecycle import EndingKind, Gate, Kind
from taskyard.models import Priority, Task, TaskStatus
from taskyard.records import Decision
from taskyard.review.verify import verify_range
from taskyard.run.change import ChangeJob, ChangeRun
from taskyard.run.personreview import PersonReview, TaskPersonReview
from taskyard.run.subtasks import (
    SubtaskLimits,
    SubtaskRefused,
    create_subtask,
    keep_subtask_commit,
)
from taskyard.run.taskops import cancel_task
from taskyard.run.testgate import CommandResult, TestReport
from taskyard.store import Store
from taskyard.tools.gates import GateTools
from tests.integration.test_change_safety import AWS_KEY
from tests.lifecycle_paths import drive

T0 = 1_700_000_000.0
CLAUDE_SESSION = "6f1c2a9e-4b7d-4c1e-9a55-0d2e8b7f3c11"
CODEX_THREAD = "019a1b2c-3d4e-7f60-8a9b-0c1d2e3f4a5b"


def sh(*args: str, cwd: Path) -> str:
    return subprocess.run(args, cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    work = tmp_path / "repo"
    work.mkdir()
    sh("git", "init", "-q", "-b", "main", cwd=work)
    sh("git", "config", "user.email", "dev@example.com", cwd=work)
    sh("git", "config", "user.name", "Dev", cwd=work)
    (work / "app.py").write_text("def greet(name):\n    return 'hello ' + name\n")
    sh("git", "add", ".", cwd=work)
    sh("git", "commit", "-q", "-m", "first", cwd=work)
    return work


@pytest.fixture
def running(store: Store) -> Task:
    task = Task(
        id="t1",
        event_id="e1",
        route="pr-fix",
        agent="codex",
        status=TaskStatus.QUEUED,
        priority=Priority.P2,
        created_at=T0,
        updated_at=T0,
        workflow_id="task-t1",
        spec={"route": "pr-fix", "agent": "codex", "prompt": "default"},
    )
    store.record_routing([], [task])
    assert drive(store, "t1", TaskStatus.RUNNING)
    return store.get_task("t1")


@dataclass
class Agents:
    """Scripted agents: what each gate answers, round by round, and what implement edits."""

    repo: Path
    verdicts: dict[str, list[str]] = field(default_factory=dict)  # gate → verdict per round
    edit: str | None = "def greet(name):\n    return f'hello {name}'\n"  # None: app.py stays
    reviewer_session: str = CLAUDE_SESSION
    calls: list[tuple[str, str, int, str | None]] = field(default_factory=list)

    async def __call__(
        self,
        agent: str,
        template: str,
        round_: int,
        schema: Mapping[str, Any],
        resume: str | None,
    ) -> RunReport:
        self.calls.append((agent, template, round_, resume))
        if template == "_change-plan":
            return report({"plan": "1. use an f-string", "summary": "plan"}, CODEX_THREAD)
        if template == "_change-implement":
            if self.edit is not None:
                (self.repo / "app.py").write_text(self.edit)
            return report({"title": "Use an f-string", "summary": "greet"}, CODEX_THREAD)
        gate = template.removeprefix("_change-").replace("-", "_")
        verdicts = self.verdicts.get(gate) or ["approve"]
        verdict = verdicts[min(round_, len(verdicts)) - 1]
        answer = {"verdict": verdict, "findings": ["name the f-string"], "summary": verdict}
        return report(answer, self.reviewer_session)


def report(result: dict[str, Any], session: str) -> RunReport:
    now = datetime.now(UTC)
    usage = Usage(100, 0, 20, 0, 0.01)
    outcome = AgentOutcome(True, result, None, usage, 1, session)
    return RunReport(RunStatus.SUCCEEDED, None, 0, outcome, now, now, 123)


def suite_that(passed: bool, output: str = "ok") -> Any:
    async def run() -> TestReport:
        result = CommandResult("make test", 0 if passed else 1, 0.1, output)
        return TestReport((result,))

    return run


def job_for(task: Task, repo: Path, agents: Agents, tmp_path: Path, **kw: Any) -> ChangeJob:
    context, outputs = tmp_path / "context", tmp_path / "outputs"
    context.mkdir(parents=True, exist_ok=True)
    outputs.mkdir(parents=True, exist_ok=True)
    fields: dict[str, Any] = {
        "task_id": task.id,
        "agent": "codex",
        "reviewer": "claude",
        "gates": tuple(Gate),
        "repo": repo,
        "context_dir": context,
        "output_dir": outputs,
        "call": agents,
        "run_tests": suite_that(True),
        "deliver": None,
    }
    fields.update(kw)
    return ChangeJob(**fields)


def steps(store: Store, task_id: str) -> list[tuple[str, int, str]]:
    return [(s["gate"], s["round"], s["outcome"]) for s in store.get_task(task_id).gates]


async def test_every_gate_in_order_then_a_commit_with_its_review_hash(
    store: Store, running: Task, repo: Path, tmp_path: Path
) -> None:
    agents = Agents(repo)
    ending = await ChangeRun(store).run(job_for(running, repo, agents, tmp_path))
    assert ending.status is TaskStatus.SUCCEEDED, ending.reason
    assert steps(store, "t1") == [
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
    assert store.get_task("t1").gate == "commit"
    message = sh("git", "log", "-1", "--format=%B", cwd=repo)
    assert "Review-Hash: " in message and f"Reviewed-by: {CLAUDE_SESSION}" in message
    assert verify_range(repo, "HEAD~1..HEAD") == []
    # The implementer's session goes on from plan to implement; reviewers start afresh.
    assert [(c[0], c[1], c[3]) for c in agents.calls] == [
        ("codex", "_change-plan", None),
        ("claude", "_change-plan-review", None),
        ("codex", "_change-implement", CODEX_THREAD),
        ("claude", "_change-review", None),
    ]
    audit = store.audit_entries(task_id="t1")
    assert verify_chain(store.audit_entries()) == []
    review = [e.data for e in audit if e.data.get("gate") == "review"][-1]
    assert review["session"] == CLAUDE_SESSION and review["verdict"] == "approve"
    assert len(review["review_hash"]) == 64
    assert ending.outcome is not None and ending.outcome.usage.input_tokens == 400


async def test_needs_revision_goes_back_and_the_second_round_passes(
    store: Store, running: Task, repo: Path, tmp_path: Path
) -> None:
    agents = Agents(repo, verdicts={"review": ["needs_revision", "approve"]})
    job = job_for(running, repo, agents, tmp_path)
    ending = await ChangeRun(store).run(job)
    assert ending.status is TaskStatus.SUCCEEDED, ending.reason
    rounds = [(g, r, o) for g, r, o in steps(store, "t1") if o != "entered"]
    assert ("review", 1, "revise") in rounds and ("implement", 2, "passed") in rounds
    assert ("review", 2, "approved") in rounds
    assert "name the f-string" in (tmp_path / "context" / "review-findings.md").read_text()


async def test_revisions_are_bounded(
    store: Store, running: Task, repo: Path, tmp_path: Path
) -> None:
    agents = Agents(repo, verdicts={"plan_review": ["needs_revision"]})
    job = job_for(running, repo, agents, tmp_path, max_revisions=2)
    ending = await ChangeRun(store).run(job)
    assert ending.kind is EndingKind.REVIEW_REFUSED
    assert ending.reason is not None and "after 2 revision(s) of plan" in ending.reason
    assert [c[2] for c in agents.calls if c[1] == "_change-plan"] == [1, 2, 3]
    assert sh("git", "log", "--format=%s", cwd=repo).split("\n")[0] == "first"


async def test_a_failing_test_command_stops_at_test_with_its_output(
    store: Store, running: Task, repo: Path, tmp_path: Path
) -> None:
    failing = suite_that(False, "AssertionError: greet('x') == 'hello x'")
    job = job_for(running, repo, Agents(repo), tmp_path, run_tests=failing)
    ending = await ChangeRun(store).run(job)
    assert ending.kind is EndingKind.TESTS_FAILED
    assert ending.reason is not None and "AssertionError: greet('x')" in ending.reason
    assert steps(store, "t1")[-1] == ("test", 1, "failed")
    assert sh("git", "log", "--format=%s", cwd=repo).strip() == "first"


async def test_a_change_too_big_or_with_a_secret_is_refused(
    store: Store, running: Task, repo: Path, tmp_path: Path
) -> None:
    big = "".join(f"line_{n} = {n}\n" for n in range(600))
    job = job_for(running, repo, Agents(repo, edit=big), tmp_path)
    ending = await ChangeRun(store).run(job)
    assert ending.kind is EndingKind.CHANGE_REFUSED
    assert ending.reason is not None and "over the limit of 500" in ending.reason
    assert sh("git", "log", "--format=%s", cwd=repo).strip() == "first"


async def test_a_change_adding_a_secret_is_refused(
    store: Store, running: Task, repo: Path, tmp_path: Path
) -> None:
    planted = f"AWS_ACCESS_KEY_ID = '{AWS_KEY}'\n"
    job = job_for(running, repo, Agents(repo, edit=planted), tmp_path)
    ending = await ChangeRun(store).run(job)
    assert ending.kind is EndingKind.CHANGE_REFUSED
    assert ending.reason is not None and "app.py line 1" in ending.reason
    assert AWS_KEY not in ending.reason
    assert sh("git", "log", "--format=%s", cwd=repo).strip() == "first"
    assert steps(store, "t1")[-1] == ("test", 1, "refused")


async def test_a_placeholder_reviewer_session_is_refused(
    store: Store, running: Task, repo: Path, tmp_path: Path
) -> None:
    agents = Agents(repo, reviewer_session="test")
    ending = await ChangeRun(store).run(job_for(running, repo, agents, tmp_path))
    assert ending.status is TaskStatus.FAILED
    assert ending.reason is not None and "session id" in ending.reason
    assert sh("git", "log", "--format=%s", cwd=repo).strip() == "first"


async def test_gates_turned_off_are_recorded_as_skipped(
    store: Store, running: Task, repo: Path, tmp_path: Path
) -> None:
    gates = (Gate.IMPLEMENT, Gate.TEST, Gate.COMMIT)
    agents = Agents(repo)
    job = job_for(running, repo, agents, tmp_path, gates=gates, reviewer=None)
    ending = await ChangeRun(store).run(job)
    assert ending.status is TaskStatus.SUCCEEDED, ending.reason
    skipped = [g for g, _, o in steps(store, "t1") if o == "skipped"]
    assert skipped == ["plan", "plan_review", "review"]
    assert [c[1] for c in agents.calls] == ["_change-implement"]
    assert "Review-Hash" not in sh("git", "log", "-1", "--format=%B", cwd=repo)


async def test_a_task_cancelled_between_gates_stops_there(
    store: Store, running: Task, repo: Path, tmp_path: Path
) -> None:
    agents = Agents(repo)

    async def cancelling(*args: Any) -> RunReport:
        found = await agents(*args)
        if args[1] == "_change-plan-review":
            assert store.transition("t1", Kind.CANCEL, reason="cancelled by alice")
        return found

    job = job_for(running, repo, agents, tmp_path, call=cancelling)
    ending = await ChangeRun(store).run(job)
    assert ending.status is TaskStatus.CANCELLED
    assert not [c for c in agents.calls if c[1] == "_change-implement"]


async def test_an_agent_asking_to_skip_a_gate_is_refused_naming_it(tmp_path: Path) -> None:
    refusals: list[tuple[str, str]] = []

    async def refused(tool: str, arguments: dict[str, Any], why: str) -> None:
        refusals.append((tool, why))

    tools = GateTools(tmp_path / "plan.md", lambda: ["test", "review", "commit"], refused)
    answer = await tools.call("skip_gate", {"gate": "test", "reason": "tests are slow"})
    assert not answer.ok
    assert "the test gate cannot be skipped" in answer.text
    assert "gates still to pass: test, review, commit" in answer.text
    answer = await tools.call("push", {"branch": "main"})
    assert not answer.ok and "only taskyard may push" in answer.text
    assert [t for t, _ in refusals] == ["skip_gate", "push"]
    answer = await tools.call("submit_plan", {"plan": "1. do it"})
    assert answer.ok and (tmp_path / "plan.md").read_text() == "1. do it"


# --- subtasks ---------------------------------------------------------------------------


def worktree(repo: Path, name: str) -> Path:
    path = repo.parent / name
    sh("git", "worktree", "add", "-q", "--detach", str(path), "HEAD", cwd=repo)
    return path


def start(store: Store, task_id: str) -> Task:
    assert store.transition(task_id, Kind.START_ATTEMPT, attempts=1, worker="w1")
    assert store.transition(task_id, Kind.AGENT_STARTED, started_at=T0)
    return store.get_task(task_id)


async def run_subtask(store: Store, child: Task, repo: Path, tmp_path: Path, text: str) -> None:
    """A subtask's own run, in its own worktree, its commit kept for the parent, then its end
    (as `Finishing.end` writes it)."""
    tree = worktree(repo, f"wt-{child.id}")
    agents = Agents(tree, edit=None)

    async def edit(*args: Any) -> RunReport:
        if args[1] == "_change-implement":
            (tree / f"{child.id}.txt").write_text(text)
        return await agents(*args)

    async def keep(sha: str, *_: str) -> str:
        keep_subtask_commit(tree, child.id, sha)
        return "kept"

    start(store, child.id)
    job = job_for(child, tree, agents, tmp_path / child.id, call=edit, deliver=keep)
    ending = await ChangeRun(store).run(job)
    assert ending.status is TaskStatus.SUCCEEDED, ending.reason
    assert store.transition(child.id, Kind.SUCCEED, finished_at=T0 + 5)


async def test_a_parent_waits_for_its_subtasks_and_commits_their_work_with_its_own(
    store: Store, running: Task, repo: Path, tmp_path: Path
) -> None:
    parent_tree = worktree(repo, "wt-parent")
    agents = Agents(parent_tree)
    made: list[Task] = []

    async def splitting(*args: Any) -> RunReport:
        found = await agents(*args)
        if args[1] == "_change-implement":
            for title in ("docs", "tests", "docs"):  # asking twice gives the same subtask
                made.append(
                    create_subtask(
                        store, running, title, f"write {title}", "codex", SubtaskLimits(), T0
                    )
                )
        return found

    job = job_for(running, parent_tree, agents, tmp_path / "p", call=splitting)
    ending = await ChangeRun(store).run(job)
    assert ending.status is TaskStatus.WAITING
    parent = store.get_task("t1")
    assert parent.status is TaskStatus.WAITING and parent.reason == "waiting for 2 subtasks"
    assert made[0].id == made[2].id and len(store.subtasks_of("t1")) == 2
    titled = {t.spec["subtask"]["title"]: t for t in store.subtasks_of("t1")}
    docs, tests = titled["docs"], titled["tests"]
    assert docs.parent_id == "t1" and docs.spec["subtask"]["title"] == "docs"

    await run_subtask(store, docs, repo, tmp_path, "docs\n")
    assert store.get_task("t1").status is TaskStatus.WAITING
    assert store.get_task("t1").reason == "waiting for 1 of 2 subtasks"
    await run_subtask(store, tests, repo, tmp_path, "tests\n")
    back = store.get_task("t1")
    assert back.status is TaskStatus.QUEUED and not back.dispatched
    assert back.workflow_id != parent.workflow_id  # handed to a worker again, once

    # The parent's next attempt: a fresh worktree; its work and the subtasks' come back.
    again = start(store, "t1")
    fresh = worktree(repo, "wt-parent-2")
    agents2 = Agents(fresh)
    job = job_for(again, fresh, agents2, tmp_path / "p2", record=list(again.gates))
    ending = await ChangeRun(store).run(job)
    assert ending.status is TaskStatus.SUCCEEDED, ending.reason
    assert [c[1] for c in agents2.calls] == ["_change-review"]  # no agent re-ran its work
    files = sh("git", "show", "--name-only", "--format=", "HEAD", cwd=fresh).split()
    assert sorted(files) == sorted(["app.py", f"{docs.id}.txt", f"{tests.id}.txt"])
    assert verify_range(fresh, "HEAD~1..HEAD") == []


async def test_the_commit_gate_refuses_while_a_subtask_failed(
    store: Store, running: Task, repo: Path, tmp_path: Path
) -> None:
    child = create_subtask(store, running, "docs", "write docs", "codex", SubtaskLimits(), T0)
    start(store, child.id)
    assert store.transition(child.id, Kind.FAIL, reason="agent failed", finished_at=T0)
    ending = await ChangeRun(store).run(job_for(running, repo, Agents(repo), tmp_path))
    assert ending.kind is EndingKind.CHANGE_REFUSED
    assert ending.reason is not None and f"subtask {child.id} ended failed" in ending.reason
    assert sh("git", "log", "--format=%s", cwd=repo).strip() == "first"


def test_subtasks_are_bounded_in_number_and_depth(store: Store, running: Task) -> None:
    limits = SubtaskLimits(max_count=2, max_depth=1)
    first = create_subtask(store, running, "a", "do a", "codex", limits, T0)
    create_subtask(store, running, "b", "do b", "codex", limits, T0)
    with pytest.raises(SubtaskRefused, match="at most 2 subtasks"):
        create_subtask(store, running, "c", "do c", "codex", limits, T0)
    with pytest.raises(SubtaskRefused, match="nest at most 1 deep"):
        create_subtask(store, first, "d", "do d", "codex", limits, T0)


# --- a person's review through approvals -------------------------------------------------


def person_for(store: Store, task: Task, repo: Path) -> TaskPersonReview:
    """The shipped risk rules and approval policies, and the store's gate (no channels)."""
    rules, policies = RiskRules.load(), ApprovalPolicies.load()
    policy = RiskPolicy(AllowListPolicy({}), rules, policies)
    reviewer = PersonReview(policy, StoreGate(store, policies), store)
    where = {"full_name": "acme/api", "ref": "fix-greeting"}
    return TaskPersonReview(reviewer, task.id, task.route, where, "push", repo)


async def back_from_the_person(
    store: Store, repo: Path, tmp_path: Path, name: str, agents: Agents
) -> tuple[ChangeJob, Any]:
    """What the executor does once a decision handed the task back: `back_to_gates`, a new
    attempt in a fresh worktree, the gates from where they stopped."""
    assert store.get_task("t1").status is TaskStatus.APPLYING
    assert store.transition("t1", Kind.BACK_TO_GATES)
    again = start(store, "t1")
    fresh = worktree(repo, name)
    agents.repo = fresh
    job = job_for(
        again,
        fresh,
        agents,
        tmp_path / f"{name}-task",
        record=list(again.gates),
        person=person_for(store, again, fresh),
    )
    return job, await ChangeRun(store).run(job)


async def test_a_risky_change_waits_for_a_person_and_commits_what_they_approved(
    store: Store, running: Task, repo: Path, tmp_path: Path
) -> None:
    tree = worktree(repo, "wt-first")
    agents = Agents(tree)

    async def touching_ci(*args: Any) -> RunReport:
        found = await agents(*args)
        if args[1] == "_change-implement":
            (agents.repo / ".github").mkdir(exist_ok=True)
            (agents.repo / ".github" / "ci.yml").write_text("on: push\n")
        return found

    person = person_for(store, running, tree)
    job = job_for(running, tree, agents, tmp_path / "a", call=touching_ci, person=person)
    ending = await ChangeRun(store).run(job)
    assert ending.status is TaskStatus.AWAITING_APPROVAL, ending.reason
    assert ending.reason is not None and "change-sensitive-paths" in ending.reason
    assert sh("git", "log", "--format=%s", cwd=tree).strip() == "first"  # nothing committed
    # The run stage pauses it (`Applying.pause`): awaiting approval, holding no worker.
    assert store.transition("t1", Kind.AWAIT_APPROVAL, reason=ending.reason)
    [approval] = store.list_approvals(task_id="t1")
    assert approval.action_type == "change" and approval.risk == "high"
    assert ".github/ci.yml" in approval.details["diff"]
    decided = store.decide_approval(
        approval.id, Decision.APPROVE, "github:alice", "github", "ci is fine", T0 + 9, "wf-2"
    )
    assert decided.resumed

    job, ending = await back_from_the_person(store, repo, tmp_path, "wt-second", agents)
    assert ending.status is TaskStatus.SUCCEEDED, ending.reason
    message = sh("git", "log", "-1", "--format=%B", cwd=agents.repo)
    assert f"Approved-by: github:alice (approval {approval.id})" in message
    assert f"Reviewed-by: {CLAUDE_SESSION}" in message
    assert verify_range(agents.repo, "HEAD~1..HEAD") == []
    files = sh("git", "show", "--name-only", "--format=", "HEAD", cwd=agents.repo).split()
    assert sorted(files) == [".github/ci.yml", "app.py"]
    outcomes = [(g, o) for g, _, o in steps(store, "t1") if g == "review"]
    assert outcomes[-2:] == [("review", "awaiting_person"), ("review", "approved")]


async def test_a_person_denying_sends_their_reason_back_to_the_agent(
    store: Store, running: Task, repo: Path, tmp_path: Path
) -> None:
    big = "".join(f"line_{n} = {n}\n" for n in range(320))  # 300+ lines: change-large
    tree = worktree(repo, "wt-first")
    agents = Agents(tree, edit=big)
    person = person_for(store, running, tree)
    ending = await ChangeRun(store).run(
        job_for(running, tree, agents, tmp_path / "a", person=person)
    )
    assert ending.status is TaskStatus.AWAITING_APPROVAL
    assert store.transition("t1", Kind.AWAIT_APPROVAL, reason=ending.reason)
    [approval] = store.list_approvals(task_id="t1")
    store.decide_approval(
        approval.id, Decision.DENY, "cli:bob", "cli", "split it up", T0 + 9, "wf-2"
    )
    agents.edit = "def greet(name):\n    return f'hi {name}'\n"  # the next round is small
    _, ending = await back_from_the_person(store, repo, tmp_path, "wt-second", agents)
    assert ending.status is TaskStatus.SUCCEEDED, ending.reason
    findings = (tmp_path / "wt-second-task" / "context" / "review-findings.md").read_text()
    assert "split it up" in findings
    assert [c[2] for c in agents.calls if c[1] == "_change-implement"] == [1, 2]
    assert "Approved-by" not in sh("git", "log", "-1", "--format=%B", cwd=agents.repo)


async def test_an_agent_stopped_at_the_cost_ceiling_ends_the_change_so(
    store: Store, running: Task, repo: Path, tmp_path: Path
) -> None:
    async def costly(*args: Any) -> RunReport:
        now = datetime.now(UTC)
        why = "cost ceiling of $0.50 reached"
        return RunReport(RunStatus.FAILED, why, -9, None, now, now, 1, stopped_by=Stop.COST_CEILING)

    ending = await ChangeRun(store).run(job_for(running, repo, Agents(repo), tmp_path, call=costly))
    assert ending.kind is EndingKind.COST_EXCEEDED
    assert ending.reason is not None and "cost ceiling" in ending.reason
    assert steps(store, "t1")[-1] == ("plan", 1, "failed")


def test_cancelling_a_waiting_parent_cancels_its_subtasks(store: Store, running: Task) -> None:
    child = create_subtask(store, running, "docs", "write docs", "codex", SubtaskLimits(), T0)
    assert store.transition("t1", Kind.WAIT_FOR_SUBTASKS, reason="waiting for 1 subtasks")
    done = cancel_task(store, "t1", T0 + 1)
    assert done.done and store.get_task("t1").status is TaskStatus.CANCELLED
    assert store.get_task("t1").ending == EndingKind.CANCELLED_WHILE_WAITING
    assert store.get_task(child.id).cancel_requested  # queued: its worker ends it
