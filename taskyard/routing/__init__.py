"""Routing: which routes an event starts, and whether its actor may start them.

    decision = select_routes(event, payload, settings.routes, settings.routing)  # pure
    for match in decision.matched:
        verdict = await may_trigger(match, lookup)  # GitHub may need an API lookup

`payload_of(event)` parses a stored event's body as intake did.
"""

from taskyard.config.default_routes import default_routes
from taskyard.config.routes import (
    FilterConfig,
    Permission,
    RouteConfig,
    Routes,
    RoutingSettings,
    WhoConfig,
    unknown_agents,
)
from taskyard.routing.facts import Actor, Subject
from taskyard.routing.payload import payload_of
from taskyard.routing.select import DRAFT, RouteMatch, RoutingDecision, Skip, select_routes
from taskyard.routing.who import PermissionLookup, Verdict, may_trigger

__all__ = [
    "DRAFT",
    "Actor",
    "FilterConfig",
    "Permission",
    "PermissionLookup",
    "RouteConfig",
    "RouteMatch",
    "Routes",
    "RoutingDecision",
    "RoutingSettings",
    "Skip",
    "Subject",
    "Verdict",
    "WhoConfig",
    "default_routes",
    "may_trigger",
    "payload_of",
    "select_routes",
    "unknown_agents",
]
