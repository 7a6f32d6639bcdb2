"""Dotted paths into a parsed payload: the one reader priority rules and route filters share.

`a.b.c` reads nested mappings; `a.b[].c` collects `c` from every item of the list `b` (the
result is then always a list, empty when nothing was found). Anything missing reads as None.
This module imports nothing from taskyard, so config, intake and routing can all use it.
"""

from __future__ import annotations

from typing import Any


def dig(payload: Any, path: str) -> Any:
    """Value at a dotted path, or None. `a.b[].c` collects `c` from every item of list `b`."""
    current: list[Any] = [payload]
    for part in path.split("."):
        flatten = part.endswith("[]")
        key = part[:-2] if flatten else part
        found: list[Any] = []
        for item in current:
            value = item.get(key) if isinstance(item, dict) else None
            if value is None:
                continue
            if flatten:
                found.extend(value if isinstance(value, list) else [])
            else:
                found.append(value)
        current = found
    if "[]" in path:
        return current
    return current[0] if current else None
