"""What the SQL store's parts share: the named queries, and one guarded UPDATE of a task."""

from __future__ import annotations

import re
from collections.abc import Mapping
from importlib import resources
from typing import Any

from taskyard.models import TaskStatus
from taskyard.store import rows as rowmap
from taskyard.store.base import TASK_COLUMNS


def load_queries() -> dict[str, str]:
    text = resources.files("taskyard.store").joinpath("queries.sql").read_text("utf-8")
    queries: dict[str, str] = {}
    for block in re.split(r"^-- name: ", text, flags=re.M)[1:]:
        name, _, body = block.partition("\n")
        lines = [ln for ln in body.splitlines() if not ln.lstrip().startswith("--")]
        queries[name.strip()] = "\n".join(lines).strip()
    return queries


Q = load_queries()


NONE_PENDING = "NOT EXISTS (SELECT 1 FROM approvals WHERE task_id = :id AND status = 'pending')"


def task_update(
    task_id: str, changes: Mapping[str, Any], sources: frozenset[TaskStatus]
) -> tuple[str, dict[str, Any]]:
    """One guarded UPDATE of a task's row: its `changes`, while its status is one of
    `sources` (a transition's from-states, `taskyard.lifecycle`)."""
    unknown = set(changes) - TASK_COLUMNS
    if unknown:
        raise ValueError(f"not a task column: {sorted(unknown)}")
    params = {f"c_{k}": rowmap.task_value(k, v) for k, v in changes.items()}
    params["id"] = task_id
    names = [f":s{i}" for i in range(len(sources))]
    params.update({f"s{i}": str(s) for i, s in enumerate(sorted(sources))})
    sql = "UPDATE tasks SET " + ", ".join(f"{k} = :c_{k}" for k in changes)
    sql += f" WHERE id = :id AND status IN ({', '.join(names)})"
    return sql, params
