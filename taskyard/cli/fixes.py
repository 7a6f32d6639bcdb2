"""`taskyard fixes stats [--repo OWNER/NAME] [--json]`: whether each repository's
pull-request fixes are good enough to push on their own (`taskyard.routing.fixstats`)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from taskyard.cli.main import ConfigOpt, DbOpt, JsonOpt, _print_json, _store, out
from taskyard.routing.fixstats import FixStats, all_fix_stats

fixes_app = typer.Typer(no_args_is_help=True, help="Pull-request fixes: how well they go.")


@fixes_app.command("stats")
def fixes_stats(
    repo: Annotated[
        str | None, typer.Option("--repo", help="Only this repository (owner/name).")
    ] = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
    database_url: DbOpt = None,
) -> None:
    """Success rate of the last 50 fixes, reverted (unknown), incidents and cost per fix,
    per repository: the criteria for letting a repository's fixes push on their own."""
    found = all_fix_stats(_store(config, database_url), repo)
    if as_json:
        _print_json({"repos": [s.to_json() for s in found]})
        return
    if not found:
        out.print("no fixes yet", highlight=False)
        return
    table = Table("repo", "fixes", "success", "reverted", "incidents", "cost/fix", "ci")
    for s in found:
        table.add_row(*_row(s))
    out.print(table)


def _row(s: FixStats) -> tuple[str, ...]:
    rate = "-" if s.success_rate is None else f"{s.success_rate:.0%}"
    cost = "-" if s.cost_per_fix_usd is None else f"${s.cost_per_fix_usd:.2f}"
    ci = ", ".join(f"{n} {k}" for k, n in s.ci.items())
    return (s.repo, str(s.fixes), rate, "unknown", str(s.incidents), cost, ci)
