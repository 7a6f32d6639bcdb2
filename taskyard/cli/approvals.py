"""`taskyard approvals …`: the operator's side of approval requests (seed 004's commands).

The CLI decides as `cli:<name>` (`--as`, else the login name): whoever can run it against the
database holds the operator's role. A decision here resumes the task through the database;
a running worker picks it up within its dispatch poll.
"""

from __future__ import annotations

import asyncio
import dataclasses
import getpass
import time
from typing import Annotated, Any

import typer

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
from taskyard.exceptions import NotFound, TaskyardError
from taskyard.records import Approval, ApprovalStatus, Decision, approval_json, decided_json, iso
from taskyard.store.base import Store, TaskFilter

approvals_app = typer.Typer(
    no_args_is_help=True, help="Approvals: risky actions waiting for a person's decision."
)
AsOpt = Annotated[str | None, typer.Option("--as", help="Who decides (default: your login name).")]


def _decide(
    approval_id: str,
    decision: Decision,
    who: str | None,
    reason: str | None,
    config: Any,
    database_url: str | None,
) -> Any:
    from taskyard.approvals.policies import Identity
    from taskyard.approvals.service import Approvals

    store = _store(config, database_url)
    settings = settings_from(config, database_url=database_url)
    try:
        approvals = Approvals.from_settings(settings, store)
        identity = Identity("cli", who or getpass.getuser())
        return asyncio.run(approvals.decide_and_tell(approval_id, decision, identity, reason))
    except NotFound as exc:
        raise _fail(str(exc)) from exc
    except TaskyardError as exc:
        raise _fail(str(exc)) from exc


def _report(outcome: Any, verb: str, as_json: bool) -> None:
    data = decided_json(outcome)
    if as_json:
        _print_json(data)
    elif outcome.accepted:
        resumed = "; its task resumes" if outcome.resumed else ""
        out.print(f"approval {outcome.approval.id} {verb}{resumed}", highlight=False)
    if not outcome.accepted:
        raise _fail(f"approval {outcome.approval.id} not {verb}: {outcome.why}")


@approvals_app.command("init-db")
def approvals_init_db(config: ConfigOpt = None, database_url: DbOpt = None) -> None:
    """Create the approval tables (applies every pending migration)."""
    _store(config, database_url)
    out.print("approval tables ready")


@approvals_app.command("list-pending")
def approvals_list_pending(
    as_json: JsonOpt = False, config: ConfigOpt = None, database_url: DbOpt = None
) -> None:
    """Requests waiting for a decision, newest first."""
    found = _store(config, database_url).list_approvals(ApprovalStatus.PENDING)
    if as_json:
        _print_json([approval_json(a) for a in found])
        return
    if not found:
        out.print("no pending approvals")
    now = time.time()
    for a in found:
        left = max(0, int((a.expires_at - now) / 60))
        out.print(
            f"{a.id}  {a.risk:<8}  {a.action_type:<12}  task {a.task_id}  "
            f"expires in {left} min  {a.summary}",
            highlight=False,
        )


@approvals_app.command("approve")
def approvals_approve(
    approval_id: str,
    reason: Annotated[str | None, typer.Option(help="Why (required at high risk).")] = None,
    who: AsOpt = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
    database_url: DbOpt = None,
) -> None:
    """Approve a pending request: its action is applied."""
    outcome = _decide(approval_id, Decision.APPROVE, who, reason, config, database_url)
    _report(outcome, "approved", as_json)


@approvals_app.command("reject")
def approvals_reject(
    approval_id: str,
    reason: Annotated[str, typer.Option(help="Why it is denied (posted back).")],
    who: AsOpt = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
    database_url: DbOpt = None,
) -> None:
    """Deny a pending request: its action is skipped, and the denial reported."""
    outcome = _decide(approval_id, Decision.DENY, who, reason, config, database_url)
    _report(outcome, "denied", as_json)


@approvals_app.command("status")
def approvals_status(
    ref: Annotated[str, typer.Argument(help="An approval id, a task id or a workflow id.")],
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
    database_url: DbOpt = None,
) -> None:
    """The requests of a task (or one request), with their decisions."""
    store = _store(config, database_url)
    found = _approvals_of(store, ref)
    if not found:
        raise _fail(f"no approval, task or workflow {ref} with approval requests")
    data = [
        {
            **approval_json(a),
            "attempts": [
                {**dataclasses.asdict(t), "at": iso(t.at), "decision": str(t.decision)}
                for t in store.decision_attempts(a.id)
            ],
        }
        for a in found
    ]
    if as_json:
        _print_json(data)
        return
    for a in data:
        decided = f" by {a['decided_by']} ({a['decided_via']})" if a["decided_by"] else ""
        out.print(
            f"{a['id']}  {a['status']}{decided}  {a['risk']}  {a['summary']}", highlight=False
        )
        for t in a["attempts"]:
            verdict = "accepted" if t["accepted"] else f"refused: {t['why']}"
            out.print(f"    {t['at']} {t['actor']} {t['decision']}: {verdict}", highlight=False)


def _approvals_of(store: Store, ref: str) -> list[Approval]:
    """The request `ref` names; else the requests of the task it names, by its id or by the
    workflow id it runs under."""
    try:
        return [store.get_approval(ref)]
    except NotFound:
        pass
    found = store.list_approvals(task_id=ref, include_archived=True)
    if found:
        return found
    for task in store.list_tasks(TaskFilter(workflow_id=ref, limit=1)):
        return store.list_approvals(task_id=task.id, include_archived=True)
    return []


@approvals_app.command("clean-expired")
def approvals_clean_expired(
    older_than_hours: Annotated[float, typer.Option(min=0)] = 24.0,
    config: ConfigOpt = None,
    database_url: DbOpt = None,
) -> None:
    """Archive expired requests older than this (kept in the database, out of the lists)."""
    store = _store(config, database_url)
    count = store.archive_approvals(time.time() - older_than_hours * 3600)
    out.print(f"{count} expired approval request(s) archived")


@approvals_app.command("resubmit")
def approvals_resubmit(
    approval_id: str, as_json: JsonOpt = False, config: ConfigOpt = None, database_url: DbOpt = None
) -> None:
    """Ask again for an expired request: a new request, with a new expiry, for the same
    action; its task waits again."""
    from taskyard.approvals.service import resubmit

    store = _store(config, database_url)
    try:
        stored = resubmit(store, approval_id, time.time())
    except TaskyardError as exc:
        raise _fail(str(exc)) from exc
    if as_json:
        _print_json(approval_json(stored))
    else:
        out.print(f"approval {approval_id} resubmitted as {stored.id}", highlight=False)
