"""Idempotency keys and the hidden marker that carries one in a posted body.

A key is `{task id}.{action index}.{content hash}`: the same action of the same task at the
same place keeps its key across retries; any change of type or params makes a new one. The
key is also written, invisibly, into the bodies taskyard posts (`<!-- taskyard:KEY -->`, an
HTML comment that GitHub's markdown does not render), so a retry can look for it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

_MARKER = re.compile(r"<!-- taskyard:([A-Za-z0-9._-]+) -->")
_HASH_CHARS = 16


def content_hash(action_type: str, params: Mapping[str, Any]) -> str:
    """A short hash of the type and the params (key order does not matter)."""
    canonical = orjson.dumps(
        {"type": action_type, "params": params},
        option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS,
        default=str,
    )
    return hashlib.sha256(canonical).hexdigest()[:_HASH_CHARS]


def action_key(task_id: str, index: int, action_type: str, params: Mapping[str, Any]) -> str:
    return f"{task_id}.{index}.{content_hash(action_type, params)}"


def marker(key: str) -> str:
    return f"<!-- taskyard:{key} -->"


def with_marker(body: str, key: str) -> str:
    """`body` with the key's hidden marker appended (once)."""
    if marker(key) in body:
        return body
    return f"{body}\n\n{marker(key)}" if body else marker(key)


def markers_in(text: str) -> list[str]:
    """Every key marked in `text`, in order."""
    return _MARKER.findall(text)


def find_marked(key: str, bodies: Iterable[tuple[str, str]]) -> str | None:
    """The id of the first (id, body) pair whose body carries `key`'s marker, else None."""
    for item_id, body in bodies:
        if key in markers_in(body):
            return item_id
    return None
