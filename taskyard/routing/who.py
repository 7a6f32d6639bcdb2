"""Who may start a matched route: `may_trigger` (async: GitHub may need an API lookup).

In order:
  1. Bots are refused unless the route has `allow_bots: true` or lists the bot in `users`.
     A bot let in that way needs no GitHub permission (apps have no collaborator role).
  2. An allowlist (`users`, `teams`), when set, must list the actor: by name, or (GitHub)
     by team membership, which needs the lookup.
  3. GitHub only: the actor needs the route's permission on the repository (default
     `write`; `none` when an allowlist is set and no `min_permission` is given). The
     payload's author_association answers first (OWNER counts as admin, MEMBER and
     COLLABORATOR as write); the lookup is asked only when that is not enough. Without a
     lookup, an insufficient association is refused.
Other sources have no permissions: after steps 1 and 2 their actors are allowed.
Errors a lookup raises are the caller's (a transient API failure should retry the job).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from taskyard.config.routes import Permission, WhoConfig
from taskyard.routing.facts import Actor
from taskyard.routing.select import RouteMatch

_ASSOCIATIONS = {
    "OWNER": Permission.ADMIN,
    "MEMBER": Permission.WRITE,
    "COLLABORATOR": Permission.WRITE,
}
# GitHub's older names for the same roles, as some API responses still give them.
_PERMISSION_ALIASES = {"push": Permission.WRITE, "pull": Permission.READ}


class PermissionLookup(Protocol):
    async def permission(self, repo_full_name: str, login: str) -> str | None:
        """GitHub collaborator permission: admin|maintain|write|triage|read|none, or None."""
        ...

    async def in_team(self, org: str, team_slug: str, login: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    reason: str


def _allow(reason: str) -> Verdict:
    return Verdict(True, reason)


def _refuse(reason: str) -> Verdict:
    return Verdict(False, reason)


async def may_trigger(match: RouteMatch, lookup: PermissionLookup | None) -> Verdict:
    who, actor, route = match.route.who, match.actor, match.route.name
    name = actor.login or "an unknown actor"
    bot_admitted = actor.bot and (who.allow_bots or actor.known_as(who.users))
    if actor.bot and not bot_admitted:
        return _refuse(f"{name} is a bot; route {route} does not allow bots")
    if who.allowlist:
        listed = await _listed(match, lookup)
        if not listed.allowed:
            return listed
        if who.min_permission is None or bot_admitted:
            return listed
    elif bot_admitted:
        return _allow(f"{name} is a bot and route {route} allows bots")
    if match.subject.source != "github":
        return _allow(f"{match.subject.source} events need no repository permission")
    return await _github_permission(match, lookup, who.required_permission)


async def _listed(match: RouteMatch, lookup: PermissionLookup | None) -> Verdict:
    who, actor, route = match.route.who, match.actor, match.route.name
    name = actor.login or "an unknown actor"
    if actor.known_as(who.users):
        return _allow(f"{name} is listed in the users of route {route}")
    if not who.teams or actor.login is None:
        return _refuse(f"{name} is not in the allowlist of route {route}")
    if match.subject.source != "github":
        return _refuse(f"{name} is not in the users of route {route} (teams are GitHub teams)")
    if lookup is None:
        return _refuse(
            f"{name} is not in the users of route {route}, and team membership cannot be "
            "checked without a GitHub lookup"
        )
    return await _in_teams(who, actor.login, lookup, route)


async def _in_teams(who: WhoConfig, login: str, lookup: PermissionLookup, route: str) -> Verdict:
    for team in who.teams:
        org, _, slug = team.partition("/")
        if await lookup.in_team(org, slug, login):
            return _allow(f"{login} is in team {team}")
    return _refuse(f"{login} is in none of the teams of route {route} ({', '.join(who.teams)})")


async def _github_permission(
    match: RouteMatch, lookup: PermissionLookup | None, required: Permission
) -> Verdict:
    actor, repo = match.actor, match.subject.repo
    if required is Permission.NONE:
        return _allow(f"route {match.route.name} needs no repository permission")
    if actor.login is None:
        return _refuse("the event names no sender to check permission for")
    if repo is None:
        return _refuse(f"the event names no repository to check {actor.login}'s permission on")
    by_association = _association_verdict(actor, repo, required)
    if by_association is not None:
        return by_association
    if lookup is None:
        shown = actor.association or "association unknown"
        return _refuse(f"{actor.login} ({shown}) lacks {required.label} permission on {repo}")
    have = parse_permission(await lookup.permission(repo, actor.login))
    if have >= required:
        return _allow(f"{actor.login} has {have.label} permission on {repo}")
    return _refuse(
        f"{actor.login} has {have.label} permission on {repo}; "
        f"route {match.route.name} needs {required.label}"
    )


def _association_verdict(actor: Actor, repo: str, required: Permission) -> Verdict | None:
    granted = _ASSOCIATIONS.get(actor.association or "")
    if granted is not None and granted >= required:
        return _allow(f"{actor.login} is {actor.association} of {repo}")
    return None


def parse_permission(value: str | None) -> Permission:
    """A lookup's answer as a Permission; no answer or an unknown word is `none`."""
    if not value:
        return Permission.NONE
    word = value.strip().lower()
    if word in _PERMISSION_ALIASES:
        return _PERMISSION_ALIASES[word]
    return Permission.__members__.get(word.upper(), Permission.NONE)
