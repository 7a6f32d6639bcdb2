"""Checks on a verified delivery before it is stored, and the one way refusals quote input.

A payload nested deeper than `intake.max_json_depth` is refused (400 `too_deep`): later steps
walk payloads recursively. An event whose normalised fields the database cannot hold (a NUL,
an unpaired surrogate, a delivery id longer than a key may be) is refused alone (400
`unstorable`), before it joins a batch, so it can never fail the deliveries stored with it.
"""

from __future__ import annotations

from typing import Any

from taskyard.exceptions import MalformedPayload
from taskyard.intake.base import Normalised

# Bytes (UTF-8) each normalised field may take. Delivery ids are dedup keys: PostgreSQL's
# b-tree refuses keys over about 2.7 kB; every platform's ids are under 100.
FIELD_LIMITS = {"type": 256, "delivery_id": 256, "subject": 1024, "actor": 1024}
EXCERPT_CHARS = 64


class TooDeep(MalformedPayload):
    reason = "too_deep"


class Unstorable(MalformedPayload):
    reason = "unstorable"


def check_depth(payload: Any, limit: int, body: bytes = b"") -> None:
    """Refuse a payload with objects or arrays nested more than `limit` levels. `body`, the
    JSON it was parsed from, allows a shortcut: no deeper than it has brackets. The walk goes
    level by level (it must not recurse itself)."""
    if body[:1] == b"{" and body.count(b"{") + body.count(b"[") <= limit:
        return
    level = [payload]
    for _ in range(limit):
        below: list[Any] = []
        for value in level:
            children = value.values() if type(value) is dict else value
            below += [c for c in children if type(c) in _CONTAINERS]
        if not below:
            return
        level = below
    raise TooDeep(f"payload is nested deeper than {limit} levels")


_CONTAINERS = (dict, list)


def check_storable(norm: Normalised) -> None:
    for name, limit in FIELD_LIMITS.items():
        value = getattr(norm, name)
        if value is not None:
            _check_field(name, value, limit)


def _check_field(name: str, value: str, limit: int) -> None:
    if "\x00" in value:
        raise Unstorable(f"the event's {name} contains a NUL character")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise Unstorable(f"the event's {name} is not valid Unicode") from None
    if size > limit:
        raise Unstorable(f"the event's {name} is {size} bytes long (at most {limit})")


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """Caller input as it may appear in a reply or a log: escaped, and cut short."""
    cut = text[:limit]
    escaped = cut.encode("unicode_escape").decode("ascii").replace('"', '\\"')
    return escaped + ("…" if len(text) > limit else "")
