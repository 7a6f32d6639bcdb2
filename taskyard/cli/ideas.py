"""`taskyard ideas …`: ideas that run themselves (`taskyard.ideas`).

    taskyard ideas submit FILE [--json]   an idea from a YAML or JSON file of its shape
    taskyard ideas list [--status S] [--json]
    taskyard ideas show ID [--json]       its tasks, their states and what each waits on
    taskyard ideas pause|cancel ID [--reason WHY], ideas resume ID

An idea that is not valid is not submitted: exit code 2, with what is wrong on stderr. A step
the idea cannot take (resuming one that is not paused) exits 1, saying why."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.table import Table
from rich.text import Text

from taskyard.cli.main import (
    ConfigOpt,
    DbOpt,
    JsonOpt,
    _fail,
    _print_json,
    _store,
    out,
    settings_from,
)
from taskyard.exceptions import NotFound
from taskyard.idea import IdeaStatus
from taskyard.records import iso

ideas_app = typer.Typer(no_args_is_help=True, help="Ideas: planned and run as a graph of tasks.")


def _read_shape(path: Path) -> Any:
    """The file's YAML or JSON (JSON is YAML); exit 2 when it cannot be read."""
    import yaml

    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise _fail(f"cannot read {path}: {exc.strerror}", 2) from exc
    except yaml.YAMLError as exc:
        raise _fail(f"{path} is not YAML or JSON: {exc}", 2) from exc


@ideas_app.command("submit")
def ideas_submit(
    file: Annotated[Path, typer.Argument(help="The idea: a YAML or JSON file of its fields.")],
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
    database_url: DbOpt = None,
) -> None:
    """Submit an idea: its goal (required), constraints, success_metrics, priority (P0-P3);
    optionally repo (owner/name), labels, risk (low|medium|high|critical) and budget_usd."""
    from taskyard.ideas.service import IdeaService
    from taskyard.ideas.shape import parse
    from taskyard.ideas.views import idea_json

    shape, problems = parse(_read_shape(file))
    if shape is None:
        raise _fail(f"{file} is not a valid idea: " + "; ".join(problems), 2)
    budget = settings_from(config, database_url=database_url).ideas.budget_usd
    service = IdeaService(_store(config, database_url), budget_usd=budget)
    idea = service.submit(shape.submitted(), {"platform": "cli", "file": file.name})
    if as_json:
        _print_json(idea_json(idea))
        return
    out.print(f"idea {idea.id} registered: {idea.goal.splitlines()[0][:100]}", highlight=False)


WHO = "cli"  # who pauses, resumes or cancels from here, in the idea's event log
ReasonOpt = Annotated[str | None, typer.Option("--reason", help="Why (kept with the idea).")]


@ideas_app.command("list")
def ideas_list(
    status: Annotated[IdeaStatus | None, typer.Option(help="Only this status.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10000)] = 50,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
    database_url: DbOpt = None,
) -> None:
    """The newest ideas first."""
    from taskyard.ideas.views import idea_json

    found = _store(config, database_url).list_ideas(status, limit)
    if as_json:
        _print_json([idea_json(i) for i in found])
        return
    table = Table("created", "status", "plan", "goal")
    table.add_column("id", no_wrap=True, min_width=32)  # people copy it into `ideas show`
    for i in found:
        plan = f"v{i.plan_version}" if i.plan_version else "-"
        goal = (i.goal.splitlines() or [""])[0][:80]
        table.add_row(*map(Text, (iso(i.created_at) or "", str(i.status), plan, goal, i.id)))
    out.print(table)


@ideas_app.command("show")
def ideas_show(
    idea_id: str, as_json: JsonOpt = False, config: ConfigOpt = None, database_url: DbOpt = None
) -> None:
    """One idea: its state, its plan's tasks (each with its taskyard task's state, branch,
    cost and the tasks it waits on), its cost, its plan versions and its latest events."""
    from taskyard.ideas.overview import idea_overview

    try:
        data = idea_overview(_store(config, database_url), idea_id)
    except NotFound as exc:
        raise _fail(str(exc)) from exc
    if as_json:
        _print_json(data)
        return
    _print_overview(data)


def _print_overview(data: dict[str, Any]) -> None:
    from taskyard.run.budget import money

    idea = data["idea"]
    say = (
        f"idea {idea['id']}: {idea['status']}" + (f" ({idea['reason']})" if idea["reason"] else ""),
        f"goal: {idea['goal']}",
        f"plan: v{idea['plan_version']}, branch: {idea['branch'] or '-'}, "
        f"cost: {money(data['cost_usd'])}",
    )
    for line in say:
        out.print(line, markup=False, highlight=False)
    tasks = Table("key", "title", "state", "waits on", "branch", "cost", "task", box=None)
    for t in data["tasks"]:
        cost = None if t["cost_usd"] is None else money(t["cost_usd"])
        waits = ", ".join(t["waits_on"])
        row = (t["key"], t["title"], t["status"], waits, t["branch"], cost, t["task_id"])
        tasks.add_row(*(Text(v or "-") for v in row))  # a plan's text is not markup
    out.print(tasks)
    for p in data["plans"]:
        how = "accepted" if p["accepted"] else "sent back: " + "; ".join(p["errors"])
        out.print(f"plan v{p['version']} ({p['created_at']}): {how}", markup=False, highlight=False)
    for e in data["events"]:
        said = orjson.dumps(e["data"]).decode()
        line = f"#{e['seq']} {e['at']} {e['subject']} {e['kind']} {said}"
        out.print(line, markup=False, highlight=False)


def _control(name: str, idea_id: str, why: str | None, config: Any, database_url: Any) -> None:
    """Take the step; exit 1 saying why when the idea cannot (or there is no such idea)."""
    from taskyard.ideas.controls import take_control

    try:
        idea = take_control(_store(config, database_url), name, idea_id, WHO, why)
    except (NotFound, ValueError) as exc:
        raise _fail(str(exc)) from exc
    out.print(f"idea {idea.id} is {idea.status}", highlight=False)


@ideas_app.command("pause")
def ideas_pause(
    idea_id: str, reason: ReasonOpt = None, config: ConfigOpt = None, database_url: DbOpt = None
) -> None:
    """Pause an idea that has not ended (resume takes it back where it was)."""
    _control("pause", idea_id, reason, config, database_url)


@ideas_app.command("resume")
def ideas_resume(idea_id: str, config: ConfigOpt = None, database_url: DbOpt = None) -> None:
    """Resume a paused idea in the state it was paused in."""
    _control("resume", idea_id, None, config, database_url)


@ideas_app.command("cancel")
def ideas_cancel(
    idea_id: str, reason: ReasonOpt = None, config: ConfigOpt = None, database_url: DbOpt = None
) -> None:
    """Cancel an idea that has not ended."""
    _control("cancel", idea_id, reason, config, database_url)
