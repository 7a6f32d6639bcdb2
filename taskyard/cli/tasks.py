"""`taskyard tasks …`: the agent runs routes started, listed, shown, followed, cancelled and
retried."""

from __future__ import annotations

import sys
import time
from typing import Annotated, Any

import typer
from rich.table import Table

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
from taskyard.models import Task, TaskStatus
from taskyard.records import iso

tasks_app = typer.Typer(no_args_is_help=True, help="Tasks: agent runs started by routes.")


@tasks_app.command("list")
def tasks_list(
    status: Annotated[TaskStatus | None, typer.Option(help="Only this status.")] = None,
    route: Annotated[str | None, typer.Option(help="Only this route.")] = None,
    event: Annotated[str | None, typer.Option(help="Only the tasks of this event.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10000)] = 50,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
    database_url: DbOpt = None,
) -> None:
    """The newest tasks first."""
    from taskyard.store.base import TaskFilter
    from taskyard.web.views import task_json

    found = _store(config, database_url).list_tasks(
        TaskFilter(status=status, route=route, event_id=event, limit=limit)
    )
    if as_json:
        _print_json([task_json(t) for t in found])
        return
    table = Table("created", "route", "agent", "status", "attempts", "reason")
    table.add_column("id", no_wrap=True, min_width=32)  # people copy it into `tasks show`
    for t in found:
        table.add_row(
            iso(t.created_at),
            t.route,
            t.agent,
            str(t.status),
            str(t.attempts),
            (t.reason or "")[:80],
            t.id,
        )
    out.print(table)


def _task(store: Any, task_id: str) -> Task:
    try:
        task: Task = store.get_task(task_id)
    except NotFound as exc:
        raise _fail(str(exc)) from exc
    return task


@tasks_app.command("show")
def tasks_show(
    task_id: str, as_json: JsonOpt = False, config: ConfigOpt = None, database_url: DbOpt = None
) -> None:
    """One task: state, reason, attempts, usage, cost, workspace, result, and its actions
    (each with its outcome and the exact requests sent or, in dry-run, that would be)."""
    from rich.markup import escape

    from taskyard.run.budget import money
    from taskyard.web.views import action_json, task_json

    store = _store(config, database_url)
    data = task_json(_task(store, task_id))
    actions = [action_json(a) for a in store.actions_of(task_id)]
    if as_json:
        _print_json({**data, "actions": actions})
        return
    for key, value in data.items():
        shown = _for_people(key, value, money)
        out.print(f"[bold]{key}[/bold]: {escape(str(shown))}", markup=True, highlight=False)
    out.print(f"[bold]actions[/bold]: {len(actions) or 'none'}", markup=True, highlight=False)
    for a in actions:
        where = f" → {a['url'] or a['external_id']}" if a["url"] or a["external_id"] else ""
        why = f" ({a['reason']})" if a["reason"] else ""
        line = f"  {a['kind']} {a['type']}: {a['status']}{where}{why}"
        out.print(line, markup=False, highlight=False)
        for request in a["requests"]:
            out.print(f"      {request['method']} {request['path']}", highlight=False)


def _for_people(key: str, value: Any, money: Any) -> Any:
    """A task field as `tasks show` prints it: costs as money (`$0.0012`), not float noise."""
    if key == "cost" and value is not None:
        return money(value)
    if key == "gates" and isinstance(value, list):  # a change task's: which gates ran, how
        shown = (f"{s.get('gate')} #{s.get('round')} {s.get('outcome')}" for s in value)
        return " → ".join(s for s in shown if not s.endswith(" entered")) or "none"
    if key == "usage" and isinstance(value, dict) and value.get("cost_usd") is not None:
        return {**value, "cost_usd": money(value["cost_usd"])}
    return value


@tasks_app.command("logs")
def tasks_logs(
    task_id: str,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Follow a running task.")] = False,
    config: ConfigOpt = None,
    database_url: DbOpt = None,
) -> None:
    """The agent's event stream (outputs/log.jsonl, or the copy kept with the task once its
    workspace is gone), redacted; with -f, until the task ends. A log that is not a regular
    file of taskyard's own (a link) is refused, never opened."""
    from taskyard.run.tasklogs import TaskLogs

    settings = settings_from(config, database_url=database_url)
    logs = TaskLogs.from_settings(settings)
    store = _store(config, database_url)
    task = _task(store, task_id)
    offset = 0
    seen = False
    while True:
        # Page by page: a long log is never read whole. The archive, and the kept copy, hold
        # the same lines at the same offsets.
        page = logs.page(task, offset)
        while page is not None:
            seen = True
            sys.stdout.write(page.data.decode("utf-8", "replace"))
            sys.stdout.flush()
            offset = page.next_offset
            page = logs.page(task, offset) if page.more and page.next_offset > page.offset else None
        if not follow or task.status.terminal:
            break
        time.sleep(0.25)
        task = _task(store, task_id)
    if not seen:
        raise _fail(f"task {task_id} has no log yet (status {task.status})")


@tasks_app.command("cancel")
def tasks_cancel(
    task_id: str, as_json: JsonOpt = False, config: ConfigOpt = None, database_url: DbOpt = None
) -> None:
    """Stop a queued or running task (its agent's whole process group is killed)."""
    from taskyard.run.taskops import cancel_task

    store = _store(config, database_url)
    try:
        done = cancel_task(store, task_id, time.time())
    except NotFound as exc:
        raise _fail(str(exc)) from exc
    if not done.done:
        hint = ""
        if done.status is TaskStatus.APPLYING:
            hint = "; see `taskyard tasks show` for each action's outcome"
        raise _fail(f"{done.why}{hint}")
    if done.ended_now:
        if as_json:
            _print_json({"id": task_id, "cancelled": True})
        else:
            out.print(f"task {task_id}: cancelled (it was awaiting approval)")
        return
    if as_json:
        _print_json({"id": task_id, "cancel_requested": True})
    else:
        out.print(f"task {task_id}: cancel requested")


@tasks_app.command("retry")
def tasks_retry(
    task_id: str,
    rerun: Annotated[
        bool,
        typer.Option(
            "--rerun",
            help="Run the agent again even when only applying its actions failed.",
        ),
    ] = False,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
    database_url: DbOpt = None,
) -> None:
    """Run an ended task again (a new attempt, same route and event). A task whose agent
    succeeded but some of whose actions failed only applies its actions again (the applied
    ones are not sent twice), unless --rerun."""
    from taskyard.run.taskops import retry_task

    store = _store(config, database_url)
    try:
        done = retry_task(store, task_id, time.time(), rerun=rerun)
    except NotFound as exc:
        raise _fail(str(exc)) from exc
    if not done.done:
        raise _fail(str(done.why))
    workflow, reapply = done.workflow_id, done.reapply
    if as_json:
        _print_json({"id": task_id, "workflow_id": workflow, "queued": True, "reapply": reapply})
    elif reapply:
        out.print(
            f"task {task_id} queued again as {workflow}: its failed actions will be applied "
            "again (the agent does not run; --rerun to run it)"
        )
    else:
        out.print(f"task {task_id} queued again as {workflow}")
