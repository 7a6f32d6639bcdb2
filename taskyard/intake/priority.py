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
from taskyard.models import Priority
from taskyard.util.paths import dig


class PriorityRules:
    """Rules compiled for the hot path: which rules apply is worked out once per (source,
    type) and remembered; a payload path read by several rules is read once per event."""

    def __init__(self, rules: Sequence[PriorityRule], default: Priority) -> None:
        self.rules = tuple(rules)
        self.default = default
        self._applicable: dict[tuple[str, str], tuple[PriorityRule, ...]] = {}

    def applicable(self, source: str, event_type: str) -> tuple[PriorityRule, ...]:
        key = (source, event_type)
        found = self._applicable.get(key)
        if found is None:
            found = tuple(
                rule
                for rule in self.rules
                if (rule.source is None or rule.source == source)
                and (rule.type == "*" or fnmatchcase(event_type, rule.type))
            )
            if len(self._applicable) < _MAX_REMEMBERED:  # types come from payloads: bounded
                self._applicable[key] = found
        return found

    def assign(self, source: str, event_type: str, payload: Mapping[str, Any]) -> Priority:
        values: dict[str, Any] = {}  # several rules often read the same path (labels)
        for rule in self.applicable(source, event_type):
            value = values.get(rule.path, _UNREAD)
            if value is _UNREAD:
                value = values[rule.path] = _folded(dig(payload, rule.path))
            if value is None or value == []:
                continue
            found = _rule_priority(rule, value)
            if found is not None:
                return found
        return self.default


_UNREAD = object()
_MAX_REMEMBERED = 4096


def assign_priority(
    rules: Sequence[PriorityRule],
    default: Priority,
    source: str,
    event_type: str,
    payload: Mapping[str, Any],
) -> Priority:
    return PriorityRules(rules, default).assign(source, event_type, payload)


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
