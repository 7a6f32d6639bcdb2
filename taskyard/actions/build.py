"""Building the actions side of a worker from its settings: writers, the Linear directory,
the in-doubt lookup and the `ActionService`. A task's MCP tools over its `TaskActions` are
built in `taskyard.tools.actions` (`tools_for`)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from taskyard.actions.apply import ApprovalGate, Planner
from taskyard.actions.directory import LinearDirectory, TeamDirectory, planner_for
from taskyard.actions.lookup import PlatformLookup
from taskyard.actions.models import Target
from taskyard.actions.policy import ActionPolicy
from taskyard.actions.service import ActionService
from taskyard.config import Settings
from taskyard.exceptions import PlatformError
from taskyard.platforms.clients import Platforms
from taskyard.platforms.writes import PlatformWriter
from taskyard.records import ActionRecord
from taskyard.store.base import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DirectoryPlanners:
    """Plans with the target's Linear team directory (names → ids), loaded when the target
    names a team and Linear has credentials; otherwise Linear actions take ids only (a dry
    run plans names it cannot resolve as placeholders)."""

    directory: LinearDirectory | None

    async def planner(self, target: Target, *, dry_run: bool = False) -> Planner:
        team: TeamDirectory | None = None
        # GitHub targets never write to Linear (their create_issue opens a GitHub issue).
        linear_bound = target.platform != "github"
        if self.directory is not None and target.team_id is not None and linear_bound:
            try:
                team = await self.directory.load(target.team_id)
            except PlatformError as exc:
                log.warning(
                    "Linear team directory unavailable",
                    extra={"team_id": target.team_id, "error": str(exc)},
                )
        return planner_for(team, dry_run=dry_run)


def action_service(
    settings: Settings,
    store: Store,
    platforms: Platforms,
    writers: Mapping[str, PlatformWriter],
    risk_policy: ActionPolicy | None = None,
    gate: ApprovalGate | None = None,
    on_outcome: Sequence[Callable[[ActionRecord], None]] = (),
) -> ActionService:
    linear = platforms.linear
    directory = (
        LinearDirectory(linear, settings.platforms.linear.team_cache_seconds)
        if linear is not None
        else None
    )
    return ActionService(
        settings,
        store,
        writers,
        DirectoryPlanners(directory),
        lookup=PlatformLookup(platforms.github, platforms.linear),
        secrets=settings.secrets(),
        risk_policy=risk_policy,
        gate=gate,
        on_outcome=list(on_outcome),
    )
