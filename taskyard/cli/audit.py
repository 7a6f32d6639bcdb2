"""`taskyard audit …`: the audit log (`taskyard.audit`) verified, exported and shown.

`verify` reads the whole chain and names each place it is broken (an entry edited, deleted or
moved in the database); it exits 1 then, so a cron job or CI step notices.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator
from typing import Annotated, Any

import typer
from rich.table import Table

from taskyard.audit import AuditEntry, canonical_json, verify_chain
from taskyard.cli.main import ConfigOpt, DbOpt, JsonOpt, _print_json, _store, out
from taskyard.records import iso
from taskyard.store.base import Store

audit_app = typer.Typer(
    no_args_is_help=True, help="The audit log: append-only, hash-chained, verifiable."
)
PAGE = 1000


def _entries(store: Store, task_id: str | None = None) -> Iterator[AuditEntry]:
    """Every entry (of the task), oldest first, read a page at a time."""
    after = 0
    while True:
        page = store.audit_entries(task_id=task_id, after_seq=after, limit=PAGE)
        yield from page
        if len(page) < PAGE:
            return
        after = page[-1].seq


def _plain(entry: AuditEntry) -> dict[str, Any]:
    return dataclasses.asdict(entry)


@audit_app.command("verify")
def audit_verify(
    as_json: JsonOpt = False, config: ConfigOpt = None, database_url: DbOpt = None
) -> None:
    """Check the whole chain; exit 1 naming each entry edited, deleted or reordered."""
    entries = list(_entries(_store(config, database_url)))
    problems = verify_chain(entries)
    if as_json:
        _print_json(
            {
                "intact": not problems,
                "entries": len(entries),
                "problems": [dataclasses.asdict(p) for p in problems],
            }
        )
    elif problems:
        for problem in problems:
            sys.stdout.write(f"{problem}\n")
        sys.stdout.write(
            f"audit chain broken: {len(problems)} problem(s) in {len(entries)} entries\n"
        )
    else:
        sys.stdout.write(f"audit chain intact: {len(entries)} entries\n")
    raise typer.Exit(1 if problems else 0)


@audit_app.command("export")
def audit_export(
    jsonl: Annotated[
        bool, typer.Option("--jsonl", help="One JSON object per line (the only format).")
    ] = True,
    task: Annotated[str | None, typer.Option("--task", help="Only this task's entries.")] = None,
    config: ConfigOpt = None,
    database_url: DbOpt = None,
) -> None:
    """Write the entries, oldest first, to stdout: keep a copy where the database's writers
    cannot reach, and the newest entries' deletion shows against it."""
    for entry in _entries(_store(config, database_url), task):
        sys.stdout.write(canonical_json(_plain(entry)) + "\n")


@audit_app.command("show")
def audit_show(
    task_id: str, as_json: JsonOpt = False, config: ConfigOpt = None, database_url: DbOpt = None
) -> None:
    """One task's entries, oldest first."""
    entries = list(_entries(_store(config, database_url), task_id))
    if as_json:
        _print_json([_plain(e) for e in entries])
        return
    if not entries:
        out.print(f"no audit entries for task {task_id}", highlight=False)
        return
    table = Table("seq", "at", "kind", "actor", "data")
    for e in entries:
        table.add_row(str(e.seq), iso(e.at), e.kind, e.actor, canonical_json(e.data))
    out.print(table)
