"""Whether a repository's fixes are good enough to push on their own (issue 15's graduation
criteria for auto-push): `fix_stats` reads the store, nothing else.

Of a repository's newest `WINDOW` fixes that ran (`FixStatus.DONE`):
  success_rate      succeeded: the fix ran and its task succeeded
  incidents         its task ended refused by a safety check (`change_refused`: a secret in
                    the diff, a diff too large, a protected branch) or by a bug of taskyard's
                    (`internal_error`)
  cost_per_fix_usd  the mean cost of those that reported one
  reverted          None, meaning unknown: taskyard records the commits it pushes but never
                    sees what later commits do, so a revert cannot be told from its data
Counted apart: fixes refused before they ran (attempts, fixes per hour, cost ceiling), and
failing checks by outcome (fixed, flaky rerun, refused).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from taskyard.exceptions import NotFound
from taskyard.lifecycle import EndingKind
from taskyard.models import Task, TaskStatus
from taskyard.records import CiOutcome, Fix, FixStatus
from taskyard.store.base import Store

WINDOW = 50  # the fixes that ran that the rates are over
SCAN = 500  # the newest fixes read to find them (refused and waiting ones among them)
INCIDENTS = frozenset({EndingKind.CHANGE_REFUSED.value, EndingKind.INTERNAL_ERROR.value})


@dataclass(frozen=True, slots=True)
class FixStats:
    repo: str  # "owner/name"
    fixes: int  # fixes that ran, of the newest WINDOW
    succeeded: int
    incidents: int
    cost_per_fix_usd: float | None
    refused: int  # refused before they ran, of the newest SCAN fixes
    waiting: int  # queued or running now
    ci: dict[str, int]  # failing checks by outcome: fix, rerun, refused
    reverted: int | None = None  # unknown (see the module's docstring)

    @property
    def success_rate(self) -> float | None:
        return round(self.succeeded / self.fixes, 4) if self.fixes else None

    def to_json(self) -> dict[str, Any]:
        return {
            "repo": self.repo,
            "window": WINDOW,
            "fixes": self.fixes,
            "succeeded": self.succeeded,
            "success_rate": self.success_rate,
            "reverted": self.reverted,
            "incidents": self.incidents,
            "cost_per_fix_usd": self.cost_per_fix_usd,
            "refused": self.refused,
            "waiting": self.waiting,
            "ci": self.ci,
        }


def fix_stats(store: Store, repo: str) -> FixStats:
    """The graduation numbers of `repo` ("owner/name")."""
    key = f"github:{repo}"
    recent = store.repo_fixes(key, SCAN)
    ran = [f for f in recent if f.status is FixStatus.DONE][:WINDOW]
    tasks = [_task(store, f) for f in ran]
    costs = [f.cost_usd for f in ran if f.cost_usd is not None]
    outcomes = store.ci_outcomes(key)
    return FixStats(
        repo=repo,
        fixes=len(ran),
        succeeded=sum(1 for t in tasks if t is not None and t.status is TaskStatus.SUCCEEDED),
        incidents=sum(1 for t in tasks if t is not None and t.ending in INCIDENTS),
        cost_per_fix_usd=round(sum(costs) / len(costs), 6) if costs else None,
        refused=sum(1 for f in recent if f.status is FixStatus.REFUSED),
        waiting=sum(1 for f in recent if f.status in (FixStatus.QUEUED, FixStatus.RUNNING)),
        ci={str(o): outcomes.get(o, 0) for o in CiOutcome},
    )


def fixed_repos(store: Store) -> list[str]:
    """Every repository ("owner/name") one of whose pull requests was asked for a fix."""
    repos = {pr.removeprefix("github:").rpartition("#")[0] for pr in store.fixed_prs()}
    return sorted(r for r in repos if r)


def all_fix_stats(store: Store, repo: str | None = None) -> list[FixStats]:
    """The numbers of `repo`, or of every repository with fixes."""
    return [fix_stats(store, r) for r in ([repo] if repo else fixed_repos(store))]


def _task(store: Store, fix: Fix) -> Task | None:
    try:
        return store.get_task(fix.task_id)
    except NotFound:  # not stored (yet): counted as neither
        return None
