"""`taskyard …` commands. The only module that reads the environment.

Read-only commands (`events`, `tasks`, `dlq`, `approvals` lists and shows, `--help`,
`--version`) import what they read with and no more: the server, the queue engine (DBOS) and
the platform clients are imported inside the commands that run them (a test holds this).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

from taskyard.exceptions import NotFound, TaskyardError
from taskyard.models import EventStatus
from taskyard.records import iso

if TYPE_CHECKING:
    from taskyard.config import Settings

HELP = (
    "taskyard: webhooks in, coding agents run on them, their actions applied with approvals. "
    "Start with `taskyard serve`; `taskyard doctor` checks the setup."
)
app = typer.Typer(no_args_is_help=True, add_completion=False, help=HELP)
events_app = typer.Typer(no_args_is_help=True, help="Stored webhook events.")
dlq_app = typer.Typer(no_args_is_help=True, help="Dead letters: jobs that failed for good.")
app.add_typer(events_app, name="events")
app.add_typer(dlq_app, name="dlq")
dev_app = typer.Typer(no_args_is_help=True, help="Tools for trying taskyard offline.")
app.add_typer(dev_app, name="dev")
out = Console()
err = Console(stderr=True)

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="taskyard.yaml to read.", envvar="TASKYARD_CONFIG"),
]
DbOpt = Annotated[
    str | None,
    typer.Option("--database-url", help="postgresql://… (default: SQLite under $TASKYARD_HOME)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        sys.stdout.write(f"taskyard {version('taskyard')}\n")
        raise typer.Exit()


@app.callback()
def _main(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """taskyard: webhooks in, coding agents run on them, their actions applied with approvals."""
    ctx.call_on_close(_close_stores)


def settings_from(config: Path | None, **overrides: Any) -> Settings:
    from taskyard.config import load_settings

    path = config
    if path is None and Path("taskyard.yaml").is_file():
        path = Path("taskyard.yaml")
    return load_settings(path, os.environ, overrides)


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}")
    return typer.Exit(code)


@app.command()
def serve(
    config: ConfigOpt = None,
    database_url: DbOpt = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    intake_processes: Annotated[
        int | None,
        typer.Option(
            "--intake-processes",
            min=1,
            max=64,
            help="Processes answering webhooks (default 1: this one, beside the queue).",
        ),
    ] = None,
    verify_only: Annotated[
        bool,
        typer.Option(
            "--verify-only", hidden=True, help="Benchmarks only: verify and answer, store nothing."
        ),
    ] = False,
) -> None:
    """Run the server: webhooks, dispatcher, workers."""
    s = settings_from(
        config, database_url=database_url, host=host, port=port, intake_processes=intake_processes
    )
    metrics_dir = _shared_metrics_dir(s) if s.intake.processes > 1 else None
    from taskyard.observe.metrics import setup_logging
    from taskyard.service import server  # imports prometheus_client: after _shared_metrics_dir

    setup_logging(s.log_level, s.log_format, s.secrets())
    server.run(
        server.serve(s, verify_only=verify_only, metrics_dir=metrics_dir, environ=os.environ)
    )


def _shared_metrics_dir(s: Settings) -> Path:
    """Where several processes keep their metrics (prometheus_client's multiprocess mode,
    which it picks from PROMETHEUS_MULTIPROC_DIR when it is imported): a fresh directory
    under $TASKYARD_HOME unless that variable names one."""
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if given:
        return Path(given)
    directory = (s.home / "run" / "metrics").resolve()
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    return directory


@app.command()
def worker(
    config: ConfigOpt = None,
    database_url: DbOpt = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            envvar="TASKYARD_METRICS_PORT",
            min=1,
            max=65535,
            help="Serve /metrics and /healthz on this port (default: none).",
        ),
    ] = None,
    metrics_host: Annotated[
        str,
        typer.Option(
            "--metrics-host",
            envvar="TASKYARD_METRICS_HOST",
            help="Address for --metrics-port (0.0.0.0 in a container).",
        ),
    ] = "127.0.0.1",
) -> None:
    """Run workers only (scale-out): they share the queue in the database with `serve`."""
    from taskyard.observe.metrics import setup_logging
    from taskyard.service import server

    s = settings_from(config, database_url=database_url)
    setup_logging(s.log_level, s.log_format, s.secrets())
    metrics_at = (metrics_host, metrics_port) if metrics_port else None
    server.run(server.work(s, environ=os.environ, metrics_at=metrics_at))


@app.command()
def migrate(config: ConfigOpt = None, database_url: DbOpt = None) -> None:
    """Create or upgrade the database schema (serve and worker also do this at start)."""
    from taskyard.store.migrated import open_migrated_store

    s = settings_from(config, database_url=database_url)
    store = open_migrated_store(s)
    store.close()
    out.print("schema up to date")


@app.command()
def doctor(config: ConfigOpt = None, database_url: DbOpt = None) -> None:
    """Check the configuration, the database and the sources; exit 1 on any problem."""
    from taskyard.service.doctor import run_checks

    s = settings_from(config, database_url=database_url)
    problems = 0
    for ok, line in run_checks(s, os.environ):
        problems += not ok
        out.print(("[green]ok[/green]   " if ok else "[red]FAIL[/red] ") + line)
    raise typer.Exit(1 if problems else 0)


@app.command()
def send(
    source: Annotated[
        str, typer.Argument(help="github, linear, slack, sentry, discord or generic/NAME.")
    ],
    payload: Annotated[Path, typer.Argument(help="The payload file, sent as it is.")],
    url: Annotated[str | None, typer.Option(help="Server base URL or full webhook URL.")] = None,
    event: Annotated[str | None, typer.Option(help="GitHub event name / Sentry resource.")] = None,
    config: ConfigOpt = None,
) -> None:
    """Sign a payload with the configured secret, as the platform would, and post it."""
    import httpx

    from taskyard.cli.send import SendError, UnknownEvent, post_signed

    s = settings_from(config)
    try:
        status, body = post_signed(
            s, source, payload.read_bytes(), url=url, event=event, environ=os.environ
        )
    except UnknownEvent as exc:
        raise _fail(str(exc), 2) from exc
    except (SendError, OSError, httpx.HTTPError) as exc:
        raise _fail(str(exc)) from exc
    out.print(f"{status} {body.decode(errors='replace')}")
    raise typer.Exit(0 if 200 <= status < 300 else 1)


# --- events -------------------------------------------------------------------------------


_opened: list[Any] = []  # the stores commands opened, closed when the command ends


def _store(config: Path | None, database_url: str | None) -> Any:
    from taskyard.store.migrated import open_migrated_store

    store = open_migrated_store(settings_from(config, database_url=database_url))
    _opened.append(store)
    return store


def _close_stores() -> None:
    while _opened:
        _opened.pop().close()


def _print_json(data: Any) -> None:
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")


@events_app.command("list")
def events_list(
    status: Annotated[EventStatus | None, typer.Option(help="Only this status.")] = None,
    source: Annotated[str | None, typer.Option(help="Only this source.")] = None,
    type_: Annotated[str | None, typer.Option("--type", help="Only this event type.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10000)] = 50,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
    database_url: DbOpt = None,
) -> None:
    """The newest events first."""
    from taskyard.store import EventFilter
    from taskyard.web.views import event_json

    store = _store(config, database_url)
    found = store.list_events(EventFilter(status=status, source=source, type=type_, limit=limit))
    if as_json:
        _print_json([event_json(e) for e in found])
        return
    table = Table("id", "received", "type", "subject", "priority", "status")
    for e in found:
        table.add_row(
            e.id, iso(e.received_at), e.type, e.subject or "", e.priority.name, str(e.status)
        )
    out.print(table)


@events_app.command("show")
def events_show(
    event_id: str, as_json: JsonOpt = False, config: ConfigOpt = None, database_url: DbOpt = None
) -> None:
    """One event with its headers and raw body."""
    from taskyard.web.views import decision_json, event_json

    store = _store(config, database_url)
    try:
        e = store.get_event(event_id)
    except NotFound as exc:
        raise _fail(str(exc)) from exc
    data = event_json(e, with_body=True)
    data["routing"] = [decision_json(d) for d in store.decisions_for(event_id)]
    if as_json:
        _print_json(data)
        return
    for key, value in data.items():
        out.print(f"[bold]{key}[/bold]: {value}", markup=True, highlight=False)


@events_app.command("replay")
def events_replay(
    event_id: str, as_json: JsonOpt = False, config: ConfigOpt = None, database_url: DbOpt = None
) -> None:
    """Run the event's job again (picked up by the running server or the next start)."""
    from taskyard.queue.replay import replay_event

    try:
        workflow = replay_event(_store(config, database_url), event_id)
    except NotFound as exc:
        raise _fail(str(exc)) from exc
    if as_json:
        _print_json({"event_id": event_id, "workflow_id": workflow, "queued": True})
    else:
        out.print(f"event {event_id} queued again as {workflow}")


# --- dead letters -------------------------------------------------------------------------


@dlq_app.command("list")
def dlq_list(
    status: Annotated[str, typer.Option(help="open, replayed or all.")] = "open",
    limit: Annotated[int, typer.Option(min=1, max=10000)] = 50,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
    database_url: DbOpt = None,
) -> None:
    """Dead letters, newest first."""
    from taskyard.web.views import letter_json

    if status not in ("open", "replayed", "all"):
        raise _fail("--status must be open, replayed or all", 2)
    letters = _store(config, database_url).list_dead_letters(
        None if status == "all" else status, limit
    )
    if as_json:
        _print_json([letter_json(d) for d in letters])
        return
    table = Table("id", "failed", "job", "event", "attempts", "status", "error")
    for d in letters:
        table.add_row(
            d.id, iso(d.failed_at), d.job, d.ref, str(d.attempts), str(d.status), d.error[:80]
        )
    out.print(table)


@dlq_app.command("replay")
def dlq_replay(
    letter_id: str, as_json: JsonOpt = False, config: ConfigOpt = None, database_url: DbOpt = None
) -> None:
    """Run a dead letter's job again, once."""
    from taskyard.queue.replay import replay_dead_letter

    try:
        workflow = replay_dead_letter(_store(config, database_url), letter_id, time.time())
    except NotFound as exc:
        raise _fail(str(exc)) from exc
    if workflow is None:
        raise _fail(f"dead letter {letter_id} was already replayed")
    if as_json:
        _print_json({"id": letter_id, "workflow_id": workflow, "queued": True})
    else:
        out.print(f"dead letter {letter_id} queued again as {workflow}")


# --- dev tools ----------------------------------------------------------------------------


# --- budget -------------------------------------------------------------------------------


@app.command()
def budget(
    month: Annotated[
        str | None, typer.Option(help="The month (YYYY-MM, UTC) to show; default: this one.")
    ] = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
    database_url: DbOpt = None,
) -> None:
    """What agents spent this month against `budget.monthly_usd`: by route, by day, and the
    tasks waiting for the budget."""
    from taskyard.run.budget import money, parse_month, report

    try:
        when = parse_month(month) if month else time.time()
    except ValueError as exc:
        raise _fail(str(exc), 2) from exc
    settings = settings_from(config, database_url=database_url)
    data: dict[str, Any] = report(settings.budget, _store(config, database_url), when)
    if as_json:
        _print_json(data)
        return
    limit = data["limit_usd"]
    used = f" ({data['used_ratio']:.0%}, {data['state']})" if limit is not None else ""
    out.print(f"{data['month']}: {money(data['spent_usd'])} spent", end="", highlight=False)
    out.print(f" of {money(limit)}{used}" if limit is not None else " (no budget)", highlight=False)
    out.print(f"tasks waiting for the budget: {data['waiting']}", highlight=False)
    for title, key in (("route", "by_route"), ("day", "by_day")):
        table = Table(title, "cost", "tasks")
        for row in data[key]:
            table.add_row(str(row[title]), money(row["cost_usd"]), str(row["tasks"]))
        out.print(table)


@dev_app.command("model-server")
def dev_model_server(
    script: Annotated[Path, typer.Option("--script", help="Model script (YAML or JSON).")],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0: any free port).")] = 0,
) -> None:
    """A scripted model server for the codex and claude CLIs: prints its URL, then serves
    until SIGTERM or Ctrl-C. The script format: `taskyard.devtools.model_script`."""
    from taskyard.devtools.model_script import load_script
    from taskyard.devtools.model_server import serve_until_signalled
    from taskyard.observe.metrics import setup_logging

    setup_logging("INFO", "text")
    loaded = load_script(script)

    def ready(url: str) -> None:
        sys.stdout.write(url + "\n")
        sys.stdout.flush()

    serve_until_signalled(loaded, host, port, ready)


def _groups() -> None:
    """The `tasks` and `approvals` groups live in their own modules (they import this one's
    helpers)."""
    from taskyard.cli.approvals import approvals_app
    from taskyard.cli.audit import audit_app
    from taskyard.cli.fixes import fixes_app
    from taskyard.cli.ideas import ideas_app
    from taskyard.cli.policy import policy_app
    from taskyard.cli.review_hash import review_hash_app
    from taskyard.cli.tasks import tasks_app

    app.add_typer(tasks_app, name="tasks")
    app.add_typer(approvals_app, name="approvals")
    app.add_typer(audit_app, name="audit")
    app.add_typer(fixes_app, name="fixes")
    app.add_typer(ideas_app, name="ideas")
    app.add_typer(review_hash_app, name="review-hash")
    app.add_typer(policy_app, name="policy")


_groups()


def main() -> None:
    try:
        app()
    except TaskyardError as exc:
        err.print(f"[red]error:[/red] {exc}")
        sys.exit(1)
