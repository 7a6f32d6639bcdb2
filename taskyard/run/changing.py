"""A change route's attempt (`taskyard.run.change`) wired to the run stage: each gate's agent
run in the task's workspace and box (the implementing agent with the gate tools in front of
its own, the reviewer with none), the tests run by taskyard in the same box, the subtasks its
agent creates, and where the commit goes (a pull request, or, for a subtask, a ref its parent
picks up)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taskyard.actions.service import TaskActions
from taskyard.agents.supervisor import RunReport
from taskyard.approvals.gate import RiskPolicy, StoreGate
from taskyard.exceptions import ConfigError
from taskyard.lifecycle import EndingKind, Gate
from taskyard.models import Event, Task, TaskStatus
from taskyard.records import Fix, FixStatus
from taskyard.review.safety import ChangeLimits
from taskyard.routing.admission import pr_key
from taskyard.run.change import ChangeJob, ChangeRun, Deliver, carried_usage
from taskyard.run.ending import Ending
from taskyard.run.fixlock import keep_sessions, previous_fix, take_turn
from taskyard.run.personreview import PersonReview, TaskPersonReview
from taskyard.run.prdelivery import PullRequestDelivery
from taskyard.run.subtasks import SubtaskLimits, create_subtask, keep_subtask_commit
from taskyard.run.taskspec import TaskSpec
from taskyard.run.testgate import GateSettings, TestReport, run_tests
from taskyard.run.workspace import TaskDirs
from taskyard.tools.base import ToolHandler
from taskyard.tools.gates import GateTools

if TYPE_CHECKING:
    from taskyard.run.attempt import Attempts

_GATE_DONE = frozenset({"passed", "approved", "skipped"})
SESSIONS = "sessions"  # below $TASKYARD_HOME: each fix's agent sessions, for the PR's next fix
log = logging.getLogger(__name__)


async def run_change(
    attempts: Attempts,
    task: Task,
    spec: TaskSpec,
    event: Event,
    dirs: TaskDirs,
    acts: TaskActions | None,
    prompt_file: Path,
) -> Ending:
    """A change route's run: its gates, each agent run in the task's workspace and box, the
    tests run by taskyard in the same box."""
    settings, store = attempts.settings, attempts.store
    change = spec.change or {}
    if dirs.repo is None:
        raise ConfigError(f"route {task.route!r}: mode change needs `repo: true`")
    (dirs.context / "task.md").write_text(prompt_file.read_text("utf-8"), "utf-8")
    repo = dirs.repo
    pr = _pr_of(spec) if task.parent_id is None else None
    if pr and await _a_draft_it_skips(attempts, task, spec, event):
        why = f"skipped: {pr} is a draft, and route {task.route!r} takes no drafts"
        return Ending(TaskStatus.CANCELLED, why, kind=EndingKind.CANCELLED)
    fix = await take_turn(store, pr, task.id, attempts.clock) if pr else None
    earlier: list[Path | None] = [None]  # the PR's previous fix's kept sessions, carried once
    ceiling: float | None = None  # what the PR's fixes may still cost

    async def call(
        name: str, template: str, round_: int, schema: Mapping[str, Any], resume: str | None
    ) -> RunReport:
        agent = settings.agents.get(name)
        if agent is None:
            raise ConfigError(f"route {task.route!r} names unknown agent {name!r}")
        prompt = render_gate(attempts, task, template, round_, dirs, schema)
        request, limits = attempts.request_for(task, spec, agent, dirs, prompt, schema)
        # Every gate's run in the task's log, and no earlier gate's answer taken for this one.
        request = replace(request, resume_session=resume, append_logs=True)
        for stale in ("last_message.txt", "result.json"):
            (dirs.outputs / stale).unlink(missing_ok=True)
        if ceiling is not None:
            left = max(ceiling - (job.usage.cost_usd or 0.0), 0.0)
            cap = left if limits.max_cost_usd is None else min(limits.max_cost_usd, left)
            limits = replace(limits, max_cost_usd=cap)
        if name == spec.agent and resume is not None and earlier[0] is not None:
            request = attempts.adapter(name).carry_session(earlier[0], request)
            earlier[0] = None
        if name != spec.agent:  # the reviewer proposes no actions and gets no tools
            return await attempts.run_agent(
                task, replace(spec, agent=name), agent, dirs, None, request, limits
            )
        return await attempts.run_agent(
            task, spec, agent, dirs, acts, request, limits, wrap=gate_tools
        )

    def remaining() -> list[str]:
        done = {s["gate"] for s in job.record if s["outcome"] in _GATE_DONE}
        return [str(g) for g in job.gates if g not in done]

    async def refused(tool: str, arguments: dict[str, Any], why: str) -> None:
        data = {"tool": tool, "arguments": arguments, "why": why}
        actor = f"agent:{spec.agent}"
        now = attempts.clock()
        await asyncio.to_thread(store.append_audit, "refusal", task.id, actor, data, now)

    async def subtask(title: str, prompt: str, agent: str | None) -> Task:
        name = agent or spec.agent
        if name not in settings.agents:
            raise ConfigError(f"no agent {name!r} is configured")
        limits = SubtaskLimits(settings.changes.max_subtasks, settings.changes.max_subtask_depth)
        now = attempts.clock()
        return await asyncio.to_thread(
            create_subtask, store, task, title, prompt, name, limits, now
        )

    def gate_tools(inner: ToolHandler | None) -> ToolHandler:
        return GateTools(dirs.outputs / "plan.md", remaining, refused, inner, subtask)

    implementer = settings.agents[spec.agent]
    request, limits = attempts.request_for(task, spec, implementer, dirs, prompt_file, {})
    commands = tuple(change.get("test_commands") or ())
    gate_settings = GateSettings.of(settings.changes)

    async def tests() -> TestReport:
        return await run_tests(commands, repo, dirs, limits, request.base_env, gate_settings)

    job = ChangeJob(
        task_id=task.id,
        agent=spec.agent,
        reviewer=change.get("reviewer"),
        gates=tuple(Gate(g) for g in change.get("gates") or [g.value for g in Gate]),
        repo=repo,
        context_dir=dirs.context,
        output_dir=dirs.outputs,
        call=call,
        run_tests=tests,
        deliver=_deliver(attempts, task, spec, event, repo),
        max_revisions=int(change.get("max_revisions") or settings.changes.max_revisions),
        limits=ChangeLimits(settings.changes.max_changed_lines),
        record=list(task.gates),
        usage=carried_usage(task.usage),
        person=_person_review(attempts, task, spec, acts, repo),
    )
    if pr is None or fix is None:
        return await ChangeRun(store, attempts.clock).run(job)
    spent = await asyncio.to_thread(store.pr_spend, pr)
    ceiling = settings.changes.cost_ceiling_per_pr_usd - spent
    ending: Ending | None = None
    try:
        if ceiling <= 0:
            why = (
                f"refused: the fixes of {pr} have cost ${spent:.2f}, at its ceiling of "
                f"${settings.changes.cost_ceiling_per_pr_usd:.2f}"
            )
            log.warning("pull request at its cost ceiling", extra={"pr": pr, "task_id": task.id})
            ending = Ending(TaskStatus.FAILED, why, kind=EndingKind.CHANGE_REFUSED)
            return ending
        job.session, earlier[0] = await asyncio.to_thread(_earlier_session, attempts, pr, task)
        ending = await ChangeRun(store, attempts.clock).run(job)
        return ending
    finally:
        await _after_fix(attempts, task, spec, dirs, fix, ending, job.usage.cost_usd)


def _person_review(
    attempts: Attempts, task: Task, spec: TaskSpec, acts: TaskActions | None, repo: Path
) -> TaskPersonReview | None:
    """A person's review through approvals, when approvals are on (their risk rules and
    policies); a subtask's change is reviewed with its parent's."""
    service = acts.service if acts is not None else None
    policy = service.risk_policy if service is not None else None
    gate = service.gate if service is not None else None
    if not isinstance(policy, RiskPolicy) or not isinstance(gate, StoreGate):
        return None
    mode = str((spec.change or {}).get("mode") or "suggest")
    reviewer = PersonReview(policy, gate, attempts.store)
    return TaskPersonReview(reviewer, task.id, task.route, spec.repo or {}, mode, repo)


async def _a_draft_it_skips(attempts: Attempts, task: Task, spec: TaskSpec, event: Event) -> bool:
    """A fix asked in a conversation comment may not say whether its pull request is a draft
    (`routing.fixes`): asked of GitHub now, before any agent runs."""
    route = next((r for r in attempts.settings.routes if r.name == task.route), None)
    prs = attempts.deliver_for
    if route is None or route.drafts or not isinstance(prs, PullRequestDelivery):
        return False
    return await prs.is_draft(spec, event)


def _pr_of(spec: TaskSpec) -> str | None:
    where = spec.repo or {}
    full_name, number = where.get("full_name"), where.get("pr_number")
    return pr_key(str(full_name), number) if full_name and isinstance(number, int) else None


def _earlier_session(attempts: Attempts, pr: str, task: Task) -> tuple[str | None, Path | None]:
    """The implementing session of the PR's previous fix and where its files are kept, when
    both are there (else the fix starts a session of its own)."""
    before = previous_fix(attempts.store, pr, task.id)
    if before is None:
        return None, None
    kept = attempts.settings.home / SESSIONS / before
    earlier = attempts.store.get_task(before)
    sessions = [s.get("session") for s in earlier.gates if s.get("session")]
    if not sessions or not kept.is_dir():
        return None, None
    return str(sessions[-1]), kept


async def _after_fix(
    attempts: Attempts,
    task: Task,
    spec: TaskSpec,
    dirs: TaskDirs,
    fix: Fix,
    ending: Ending | None,
    cost: float | None,
) -> None:
    """The PR's lock given back with what the fix cost; its sessions kept for the next fix
    (not while it waits for subtasks: it holds the lock until it ends)."""
    if ending is not None and ending.status is TaskStatus.WAITING:
        return
    under = attempts.adapter(spec.agent).session_files(dirs.root)
    if under is not None:
        keep_in = attempts.settings.home / SESSIONS / task.id
        await asyncio.to_thread(keep_sessions, dirs.root, under, keep_in)
    now = attempts.clock()
    await asyncio.to_thread(attempts.store.finish_fix, fix.id, FixStatus.DONE, cost or 0.0, now)


def _deliver(
    attempts: Attempts, task: Task, spec: TaskSpec, event: Event, repo: Path
) -> Deliver | None:
    """A subtask's commit is kept for its parent; a task's goes where `deliver_for` says."""
    if task.parent_id is not None:

        async def keep(sha: str, review_hash: str, title: str, summary: str) -> str:
            await asyncio.to_thread(keep_subtask_commit, repo, task.id, sha)
            return f"kept for task {task.parent_id}"

        return keep
    if attempts.deliver_for is None:
        return None
    return attempts.deliver_for(task, spec, event, repo)


def render_gate(
    attempts: Attempts,
    task: Task,
    template: str,
    round_: int,
    dirs: TaskDirs,
    schema: Mapping[str, Any],
) -> Path:
    """A gate's prompt, rendered into the task's prompts directory."""
    text = attempts.prompts.render(
        template,
        {**dirs.prompt_values(task.id, task.route, schema), "round": round_},
    )
    path = dirs.prompts / f"{template.lstrip('_')}-{round_}.md"
    path.write_text(text, encoding="utf-8")
    return path


__all__ = ["render_gate", "run_change"]
