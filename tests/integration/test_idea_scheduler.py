"""The ideas' scheduler (`taskyard.ideas.scheduler`) on every store, with a local bare
repository and the tasks' runs played by the test (their ending, their commits): planning and
re-planning, a diamond DAG run in dependency order with its middle tasks at the same time,
integration into the idea's branch, one pull request; a failed task blocking its dependents;
a budget pausing the idea; and a scheduler that runs again (a crash) making nothing twice."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from taskyard.config import Settings
from taskyard.idea import Idea, IdeaStatus
from taskyard.ideas.integrate import IdeaGit, idea_branch, milestone_branch, task_branch
from taskyard.ideas.scheduler import IdeaScheduler
from taskyard.ideas.service import IdeaService
from taskyard.ideas.tasks import task_id_of
from taskyard.models import TaskStatus
from taskyard.review.commit import commit_with_review_hash
from taskyard.review.hash import staged_hash
from taskyard.review.verify import verify_range
from taskyard.run.delivery import GitRemote
from taskyard.store import Store
from tests.lifecycle_paths import drive

SESSION = "6f1c2a9e-4b7d-4c1e-9a55-0d2e8b7f3c11"
WHO = "Dev <dev@example.com>"


def sh(*args: str, cwd: Path) -> str:
    return subprocess.run(args, cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def task(key: str, *deps: str, heavy: bool = False) -> dict[str, Any]:
    return {"id": key, "title": f"do {key}", "stage": "build", "depends_on": list(deps),
            "acceptance_criteria": [f"{key} works"], "risk_labels": [], "estimate": "1h",
            "files": [f"{key}.py"], "heavy": heavy}  # fmt: skip


def plan(*tasks: dict[str, Any]) -> dict[str, Any]:
    return {"tasks": list(tasks), "milestones": [], "risks": [], "summary": "a plan"}


DIAMOND = plan(task("A"), task("B", "A"), task("C", "A"), task("D", "B", "C"))


@pytest.fixture
def bare(tmp_path: Path) -> Path:
    work = tmp_path / "seed"
    work.mkdir()
    sh("git", "init", "-q", "-b", "main", cwd=work)
    (work / "README").write_text("hello\n")
    sh("git", "add", ".", cwd=work)
    sh("git", "-c", "user.name=D", "-c", "user.email=d@x", "commit", "-qm", "first", cwd=work)
    remote = tmp_path / "remote.git"
    sh("git", "clone", "-q", "--bare", str(work), str(remote), cwd=tmp_path)
    return remote


class World:
    def __init__(self, store: Store, bare: Path, tmp_path: Path, **ideas: Any) -> None:
        self.store, self.bare, self.tmp = store, bare, tmp_path
        self.settings = Settings.model_validate({"home": tmp_path, "ideas": ideas})
        self.git = IdeaGit(GitRemote(lambda repo: str(bare)))
        self.prs: list[tuple[str, ...]] = []
        self.told: list[str] = []
        self.scheduler = IdeaScheduler(
            self.settings, store, self.git, open_pr=self.open_pr, tell=self.tell
        )

    async def open_pr(self, *args: str) -> str:
        self.prs.append(args)
        return "https://github.test/acme/api/pull/7"

    async def tell(self, idea: Idea, text: str) -> None:
        self.told.append(text)

    def submit(self, **shape: Any) -> Idea:
        return IdeaService(self.store).submit(
            {"goal": "search", "repo": "acme/api", **shape}, {"platform": "cli"}
        )

    def planned(self, idea: Idea, version: int, answer: dict[str, Any]) -> None:
        tid = task_id_of(idea.id, f"plan-v{version}")
        assert drive(self.store, tid, TaskStatus.SUCCEEDED, result={"plan": answer})

    def running(self, idea: Idea) -> set[str]:
        """The plan tasks whose change task is queued (scheduled, not ended)."""
        return {
            i.key
            for i in self.store.idea_tasks(idea.id)
            if i.task_id and self.store.get_task(i.task_id).status is TaskStatus.QUEUED
        }

    async def finish(
        self, idea: Idea, key: str, ok: bool = True, cost: float = 0.1, file: str = ""
    ) -> None:
        """The task's run: a reviewed commit on its base, pushed to its branch; its ending."""
        item = next(i for i in self.store.idea_tasks(idea.id) if i.key == key)
        assert item.task_id is not None
        spec = self.store.get_task(item.task_id).spec
        if not ok:
            drive(self.store, item.task_id, TaskStatus.FAILED, reason="tests failed",
                  cost_usd=cost)  # fmt: skip
            return
        tree = self.tmp / f"wt-{idea.id[:6]}-{item.task_id[:8]}"
        sh("git", "clone", "-q", str(self.bare), str(tree), cwd=self.tmp)
        sh("git", "checkout", "-q", "--detach", spec["repo"]["sha"], cwd=tree)
        (tree / (file or f"{key}.py")).write_text(f"{key} = True\n")
        sh("git", "add", ".", cwd=tree)
        sha = commit_with_review_hash(tree, f"task {key}\n", staged_hash(tree), SESSION, WHO, WHO)
        await self.git.push_task("acme/api", tree, sha, task_branch(idea.id, key))
        result = {"success": True, "actions": [], "analysis": {"commit": sha}, "summary": key}
        drive(self.store, item.task_id, TaskStatus.SUCCEEDED, result=result, cost_usd=cost)


async def test_a_diamond_runs_in_order_and_ends_in_one_pull_request(
    store: Store, bare: Path, tmp_path: Path
) -> None:
    w = World(store, bare, tmp_path)
    idea = w.submit()
    assert (await w.scheduler.advance(idea.id)).status is IdeaStatus.PLANNING
    w.planned(idea, 1, DIAMOND)
    idea = await w.scheduler.advance(idea.id)
    assert idea.status is IdeaStatus.RUNNING and idea.branch == idea_branch(idea.id)
    assert w.running(idea) == {"A"}
    await w.scheduler.advance(idea.id)  # again: nothing twice
    assert len(store.idea_tasks(idea.id)) == 4 and w.running(idea) == {"A"}
    await w.finish(idea, "A")
    await w.scheduler.advance(idea.id)
    assert w.running(idea) == {"B", "C"}  # B and C at the same time
    await w.finish(idea, "C")
    await w.scheduler.advance(idea.id)
    assert w.running(idea) == {"B"}  # D waits for B too
    await w.finish(idea, "B")
    await w.scheduler.advance(idea.id)
    assert w.running(idea) == {"D"}
    await w.finish(idea, "D")
    idea = await w.scheduler.advance(idea.id)
    assert idea.status is IdeaStatus.COMPLETED, idea.reason
    assert idea.pr_url == "https://github.test/acme/api/pull/7"
    assert w.prs == [("acme/api", idea_branch(idea.id), "main", "search", w.prs[0][4])]
    clone = tmp_path / "check"
    sh("git", "clone", "-q", "--branch", idea_branch(idea.id), str(bare), str(clone), cwd=tmp_path)
    files = sorted(sh("git", "ls-files", cwd=clone).split())
    assert files == ["A.py", "B.py", "C.py", "D.py", "README"]
    subjects = sh("git", "log", "--format=%s", cwd=clone).splitlines()
    assert subjects[0] == "task D" and subjects[-1] == "first"
    assert subjects.index("task A") > subjects.index("task C")  # A before B and C
    base = sh("git", "rev-parse", "main", cwd=bare)
    assert verify_range(clone, f"{base}..HEAD") == []
    kinds = [e.kind for e in store.idea_events(idea.id)]
    assert kinds[:4] == ["registered", "planning", "plan_ready", "running"]
    assert kinds.count("task_scheduled") == 4 and kinds.count("task_integrated") == 4
    assert kinds[-3:] == ["review", "integration", "completed"]
    assert [e.seq for e in store.idea_events(idea.id)] == list(range(1, len(kinds) + 1))


async def test_a_refused_plan_goes_back_with_its_errors_and_the_next_one_runs(
    store: Store, bare: Path, tmp_path: Path
) -> None:
    w = World(store, bare, tmp_path)
    idea = w.submit()
    await w.scheduler.advance(idea.id)
    cyclic = plan(task("A", "B"), task("B", "A"), task("C", "X"))
    w.planned(idea, 1, cyclic)
    idea = await w.scheduler.advance(idea.id)
    assert idea.status is IdeaStatus.PLANNING and idea.plan_version == 2
    replanner = store.get_task(task_id_of(idea.id, "plan-v2"))
    errors = replanner.spec["idea"]["errors"]
    assert any("cycle" in e for e in errors) and any("X" in e for e in errors)
    [first] = store.idea_plans(idea.id)
    assert first["errors"] == errors
    w.planned(idea, 2, DIAMOND)
    idea = await w.scheduler.advance(idea.id)
    assert idea.status is IdeaStatus.RUNNING and idea.plan_version == 2


async def test_plans_that_stay_wrong_fail_the_idea(
    store: Store, bare: Path, tmp_path: Path
) -> None:
    w = World(store, bare, tmp_path, max_replans=1)
    idea = w.submit()
    await w.scheduler.advance(idea.id)
    no_criteria = plan({**task("A"), "acceptance_criteria": []})
    w.planned(idea, 1, no_criteria)
    await w.scheduler.advance(idea.id)
    w.planned(idea, 2, no_criteria)
    idea = await w.scheduler.advance(idea.id)
    assert idea.status is IdeaStatus.FAILED
    assert idea.reason is not None and "acceptance criteria" in idea.reason
    assert w.told and "could not carry this idea through" in w.told[-1]


async def test_a_failed_task_blocks_its_dependents_and_fails_the_idea(
    store: Store, bare: Path, tmp_path: Path
) -> None:
    w = World(store, bare, tmp_path)
    idea = w.submit()
    await w.scheduler.advance(idea.id)
    w.planned(idea, 1, DIAMOND)
    await w.scheduler.advance(idea.id)
    await w.finish(idea, "A")
    await w.scheduler.advance(idea.id)
    await w.finish(idea, "B", ok=False)
    idea = await w.scheduler.advance(idea.id)
    assert idea.status is IdeaStatus.RUNNING  # C still runs
    await w.finish(idea, "C")
    idea = await w.scheduler.advance(idea.id)
    assert idea.status is IdeaStatus.FAILED
    assert idea.reason == "task B failed: tests failed (blocked: D)"
    d = next(i for i in store.idea_tasks(idea.id) if i.key == "D")
    assert d.task_id is None  # never started
    failures = [e.data["key"] for e in store.idea_events(idea.id) if e.kind == "task_failed"]
    assert failures == ["B"]  # once, though the scheduler looked twice


async def test_the_budget_pauses_the_idea_not_a_running_agent(
    store: Store, bare: Path, tmp_path: Path
) -> None:
    w = World(store, bare, tmp_path)
    idea = w.submit(budget_usd=0.5)
    await w.scheduler.advance(idea.id)
    w.planned(idea, 1, DIAMOND)
    await w.scheduler.advance(idea.id)
    await w.finish(idea, "A", cost=0.6)
    idea = await w.scheduler.advance(idea.id)
    assert idea.status is IdeaStatus.PAUSED
    assert idea.reason is not None and "budget of $0.50 is reached ($0.60 spent)" in idea.reason
    assert w.running(idea) == set()  # B and C not started
    assert w.told == ["taskyard paused this idea: " + idea.reason + "."]


async def test_a_change_that_conflicts_at_integration_is_done_again_on_the_new_head(
    store: Store, bare: Path, tmp_path: Path
) -> None:
    w = World(store, bare, tmp_path)
    idea = w.submit()
    await w.scheduler.advance(idea.id)
    w.planned(idea, 1, DIAMOND)
    await w.scheduler.advance(idea.id)
    await w.finish(idea, "A")
    await w.scheduler.advance(idea.id)
    first_c = next(i for i in store.idea_tasks(idea.id) if i.key == "C").task_id
    await w.finish(idea, "B", file="shared.py")
    await w.finish(idea, "C", file="shared.py")  # the same file, from the same base
    idea = await w.scheduler.advance(idea.id)
    assert idea.status is IdeaStatus.RUNNING
    c = next(i for i in store.idea_tasks(idea.id) if i.key == "C")
    assert c.task_id != first_c and c.integrated is None
    redo = store.get_task(c.task_id or "")
    assert redo.route == "idea-task-C-redo1" and redo.status is TaskStatus.QUEUED
    b_head = next(i for i in store.idea_tasks(idea.id) if i.key == "B").integrated
    assert redo.spec["repo"]["sha"] == b_head  # on the branch as it is now
    assert "does not apply" in redo.spec["idea"]["conflict"]["error"]
    await w.finish(idea, "C", file="shared.py")
    await w.scheduler.advance(idea.id)
    assert w.running(idea) == {"D"}
    kinds = [e.kind for e in store.idea_events(idea.id)]
    assert kinds.count("integration_conflict") == 1


async def test_heavy_tasks_wait_for_room_in_their_idea(
    store: Store, bare: Path, tmp_path: Path
) -> None:
    w = World(store, bare, tmp_path, heavy_limit_per_idea=1)
    idea = w.submit()
    await w.scheduler.advance(idea.id)
    w.planned(idea, 1, plan(task("A", heavy=True), task("B", heavy=True), task("C")))
    await w.scheduler.advance(idea.id)
    assert w.running(idea) == {"A", "C"}  # one heavy at a time; the light one goes too
    await w.finish(idea, "A")
    await w.scheduler.advance(idea.id)
    assert w.running(idea) == {"B", "C"}


async def test_one_pull_request_per_milestone_each_on_the_one_before(
    store: Store, bare: Path, tmp_path: Path
) -> None:
    w = World(store, bare, tmp_path, pr_per_milestone=True)
    milestones = [
        {"id": "m1", "title": "the base", "tasks": ["A", "B"]},
        {"id": "m2", "title": "the rest", "tasks": ["C", "D"]},
    ]
    idea = w.submit()
    await w.scheduler.advance(idea.id)
    w.planned(idea, 1, {**DIAMOND, "milestones": milestones})
    await w.scheduler.advance(idea.id)
    await w.finish(idea, "A")
    await w.scheduler.advance(idea.id)
    await w.finish(idea, "B")
    await w.scheduler.advance(idea.id)
    assert [(p[1], p[2]) for p in w.prs] == [(milestone_branch(idea.id, "m1"), "main")]
    await w.finish(idea, "C")
    await w.scheduler.advance(idea.id)
    await w.finish(idea, "D")
    idea = await w.scheduler.advance(idea.id)
    assert idea.status is IdeaStatus.COMPLETED
    m1, m2 = milestone_branch(idea.id, "m1"), milestone_branch(idea.id, "m2")
    assert [(p[1], p[2]) for p in w.prs] == [(m1, "main"), (m2, m1)]  # no third one
    clone = tmp_path / "m1"
    sh("git", "clone", "-q", "--branch", m1, str(bare), str(clone), cwd=tmp_path)
    assert {"A.py", "B.py"} <= set(sh("git", "ls-files", cwd=clone).split())
    kinds = [e.kind for e in store.idea_events(idea.id)]
    assert kinds.count("milestone_pr") == 2
