"""Linear names to ids, for planning: a team's labels, workflow states and members, read in
one request (`LinearReader.team_directory`) and kept `ttl_seconds` per team.

`LinearDirectory.load(team_id)` gives a `TeamDirectory`, whose `labels`, `states` and `users`
are the planner's `IdLookup`s (synchronous, as planning is); `planner_for` builds the
planner with them, or without any when there is no directory (no Linear API key): then
Linear actions take ids only.

Names match case-insensitively, surrounding spaces ignored:
- labels: the team's first, then the workspace's (a team label wins over a workspace label
  of the same name); group labels, which cannot be put on an issue, are left out;
- states: by name;
- users: by email, else display name, else full name, with or without a leading `@`; only
  active members. A name two members share is refused (`ActionError`), never guessed.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from taskyard.actions.planner import PlatformPlanner
from taskyard.exceptions import ActionError
from taskyard.platforms.base import Clock, LinearReader
from taskyard.platforms.cache import TTLCache

_USER_FIELDS = ("email", "displayName", "name")  # most specific first


def _norm(name: str) -> str:
    return name.strip().casefold()


def _items(raw: Any) -> list[Mapping[str, Any]]:
    return [i for i in raw if isinstance(i, Mapping)] if isinstance(raw, list) else []


def _by_name(items: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Normalised name → id; the first of a name wins."""
    found: dict[str, str] = {}
    for item in items:
        name, item_id = item.get("name"), item.get("id")
        if isinstance(name, str) and isinstance(item_id, str):
            found.setdefault(_norm(name), item_id)
    return found


def _user_index(members: Iterable[Mapping[str, Any]]) -> tuple[Mapping[str, tuple[str, ...]], ...]:
    """One index per field of `_USER_FIELDS`: normalised value → the ids having it."""
    tiers: list[dict[str, tuple[str, ...]]] = [{} for _ in _USER_FIELDS]
    for member in members:
        user_id = member.get("id")
        if not isinstance(user_id, str) or member.get("active") is False:
            continue
        for tier, field in zip(tiers, _USER_FIELDS, strict=True):
            value = member.get(field)
            if isinstance(value, str) and value and user_id not in tier.get(_norm(value), ()):
                tier[_norm(value)] = (*tier.get(_norm(value), ()), user_id)
    return tuple(tiers)


@dataclass(frozen=True, slots=True)
class TeamDirectory:
    """One Linear team's names and their ids (see the module docstring)."""

    team_id: str
    label_ids: Mapping[str, str]  # normalised name → id
    state_ids: Mapping[str, str]
    user_ids: tuple[Mapping[str, tuple[str, ...]], ...]  # by email, display name, name

    @classmethod
    def from_json(cls, team_id: str, raw: Mapping[str, Any]) -> TeamDirectory:
        """From `LinearReader.team_directory`'s answer."""
        labels = [i for i in _items(raw.get("labels")) if not i.get("isGroup")]
        return cls(
            team_id=team_id,
            label_ids=_by_name(labels),
            state_ids=_by_name(_items(raw.get("states"))),
            user_ids=_user_index(_items(raw.get("members"))),
        )

    def labels(self, team_id: str, names: Sequence[str]) -> Mapping[str, str]:
        self._check(team_id)
        return _known(names, self.label_ids)

    def states(self, team_id: str, names: Sequence[str]) -> Mapping[str, str]:
        self._check(team_id)
        return _known(names, self.state_ids)

    def users(self, team_id: str, names: Sequence[str]) -> Mapping[str, str]:
        self._check(team_id)
        found: dict[str, str] = {}
        for name in names:
            user = self._user(name)
            if user is not None:
                found[name] = user
        return found

    def _user(self, name: str) -> str | None:
        wanted = _norm(name.strip().removeprefix("@"))
        for tier in self.user_ids:
            ids = tier.get(wanted, ())
            if len(ids) > 1:
                raise ActionError(
                    f"Linear team {self.team_id} has {len(ids)} members called {name!r}; "
                    "name one by email or id"
                )
            if ids:
                return ids[0]
        return None

    def _check(self, team_id: str) -> None:
        if team_id != self.team_id:
            raise ActionError(
                f"the Linear directory loaded is team {self.team_id}'s, not team {team_id}'s"
            )


def _known(names: Sequence[str], index: Mapping[str, str]) -> dict[str, str]:
    return {name: index[_norm(name)] for name in names if _norm(name) in index}


class LinearDirectory:
    """`TeamDirectory`s loaded from Linear, cached per team for `ttl_seconds` (0: never
    cached). A failed load raises the reader's PlatformError and is not cached."""

    def __init__(
        self, linear: LinearReader, ttl_seconds: float, clock: Clock = time.monotonic
    ) -> None:
        self._linear = linear
        self._teams: TTLCache[str, TeamDirectory] = TTLCache(ttl_seconds, clock=clock)

    async def load(self, team_id: str) -> TeamDirectory:
        return await self._teams.get_or_load(team_id, lambda: self._load(team_id))

    async def _load(self, team_id: str) -> TeamDirectory:
        return TeamDirectory.from_json(team_id, await self._linear.team_directory(team_id))


def planner_for(directory: TeamDirectory | None, *, dry_run: bool = False) -> PlatformPlanner:
    """The planner that resolves Linear names with `directory` (ids only without one; in a
    dry run, names it cannot resolve are planned as placeholders instead)."""
    if directory is None:
        return PlatformPlanner(unresolved=dry_run)
    return PlatformPlanner(
        label_ids=directory.labels,
        state_ids=directory.states,
        user_ids=directory.users,
        unresolved=dry_run,
    )
