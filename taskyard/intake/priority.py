"""An event's priority: the first matching `PriorityRule` wins, else the default.

A rule matches when its `source` (None = any) equals the event's, its `type` glob matches the
normalised type, and its condition on `dig(payload, rule.path)` holds:
  map       str(value) looked up (strings lower-cased); no entry, no match; gives the priority
  equals    value == equals
  in        value is one of the list
  contains  a list holds the element, or a string holds the substring (strings compared
            case-insensitively, so label "Bug" matches "bug")
  (none)    the value is present
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fnmatch import fnmatchcase
from typing import Any

from taskyard.config import PriorityRule
from taskyard.intake.base import dig
from taskyard.models import Priority


def assign_priority(
    rules: Sequence[PriorityRule],
    default: Priority,
    source: str,
    event_type: str,
    payload: Mapping[str, Any],
) -> Priority:
    values: dict[str, Any] = {}  # several rules often read the same path (labels)
    for rule in rules:
        if rule.source is not None and rule.source != source:
            continue
        if rule.type != "*" and not fnmatchcase(event_type, rule.type):
            continue
        if rule.path not in values:
            values[rule.path] = _folded(dig(payload, rule.path))
        found = _rule_priority(rule, values[rule.path])
        if found is not None:
            return found
    return default


def _folded(value: Any) -> Any:
    """Lists are compared case-insensitively by `contains`: fold them once per event."""
    return [_fold(item) for item in value] if isinstance(value, list) else value


def _rule_priority(rule: PriorityRule, value: Any) -> Priority | None:
    if rule.map is not None:
        return _mapped(rule.map, value)
    if rule.equals is not None and value != rule.equals:
        return None
    if rule.one_of is not None and not _is_one_of(value, rule.one_of):
        return None
    if rule.contains is not None and not _contains(value, rule.contains):
        return None
    if value is None or value == []:
        return None
    return rule.priority


def _mapped(table: Mapping[str, Priority], value: Any) -> Priority | None:
    if value is None or isinstance(value, list | dict):
        return None
    key = value.lower() if isinstance(value, str) else str(value)
    found = table.get(key)
    if found is None:
        found = {k.lower(): v for k, v in table.items()}.get(key)
    return found


def _is_one_of(value: Any, options: Sequence[Any]) -> bool:
    return not isinstance(value, list | dict) and value in options


def _fold(item: Any) -> Any:
    return item.casefold() if isinstance(item, str) else item


def _contains(value: Any, wanted: Any) -> bool:
    if isinstance(value, list):
        return _fold(wanted) in value  # already folded by _folded
    if isinstance(value, str) and isinstance(wanted, str):
        return wanted.casefold() in value.casefold()
    return False
