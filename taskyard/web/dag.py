"""Where the idea page draws each task of a plan (`taskyard.ideas.overview.task_rows`): laid
out on the server, so the page is plain SVG and needs no script.

A task's column is its dependency depth (the plan's waves: a task without dependencies is in
the first, a task in the column after its deepest dependency). Within a column, tasks are
ordered by the mean row of their dependencies (fewer crossing edges), then by plan order,
and each column is centred on the tallest. Edges run from the right side of a dependency's
box to the left side of its dependent's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from taskyard.ideas.overview import BLOCKED

BOX_W, BOX_H = 220, 84
GAP_X, GAP_Y, PAD = 72, 24, 12
TITLE_MAX = 26  # characters of a title shown in its box (all of it in the box's <title>)
BRANCH_MAX = 30  # and of a branch: its end, which names the task


@dataclass(frozen=True, slots=True)
class Box:
    task: Mapping[str, Any]  # a row of `task_rows`
    column: int
    x: float
    y: float
    short_title: str
    short_branch: str
    tip: str  # everything about the task, for its <title> (shown on hover, read aloud)


@dataclass(frozen=True, slots=True)
class Edge:
    source: str  # the dependency's key
    target: str  # the dependent's key
    path: str  # SVG path data


@dataclass(frozen=True, slots=True)
class Layout:
    boxes: list[Box]
    edges: list[Edge]
    width: float
    height: float


def layout(tasks: Sequence[Mapping[str, Any]]) -> Layout:
    """The boxes and edges of `tasks` (each with `key` and `depends_on`)."""
    columns = _columns(tasks)
    tallest = max((len(c) for c in columns), default=0)
    boxes: dict[str, Box] = {}
    for n, column in enumerate(columns):
        top = (tallest - len(column)) * (BOX_H + GAP_Y) / 2
        for row, task in enumerate(column):
            x, y = PAD + n * (BOX_W + GAP_X), PAD + top + row * (BOX_H + GAP_Y)
            title, branch = str(task.get("title") or ""), str(task.get("branch") or "")
            boxes[task["key"]] = Box(task, n, x, y, _head(title), _tail(branch), _tip(task))
    edges = [
        Edge(dep, t["key"], _curve(boxes[dep], boxes[t["key"]]))
        for t in tasks
        for dep in t["depends_on"]
        if dep in boxes
    ]
    width = PAD * 2 + len(columns) * BOX_W + max(len(columns) - 1, 0) * GAP_X
    height = PAD * 2 + tallest * BOX_H + max(tallest - 1, 0) * GAP_Y
    return Layout(list(boxes.values()), edges, width, height)


def _columns(tasks: Sequence[Mapping[str, Any]]) -> list[list[Mapping[str, Any]]]:
    depth = _depths(tasks)
    rows: dict[str, float] = {}  # each placed task's row
    columns: list[list[Mapping[str, Any]]] = []
    for n in range(max(depth.values(), default=-1) + 1):
        members = [t for t in tasks if depth[t["key"]] == n]
        column = sorted(members, key=partial(_mean_row, rows))  # stable: ties keep plan order
        rows.update({t["key"]: float(i) for i, t in enumerate(column)})
        columns.append(column)
    return columns


def _mean_row(rows: Mapping[str, float], task: Mapping[str, Any]) -> float:
    """Where a task goes in its column: level with its dependencies (first, with none)."""
    above = [rows[d] for d in task["depends_on"] if d in rows]
    return sum(above) / len(above) if above else -1.0


def _depths(tasks: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Each task's longest chain of dependencies; an unknown dependency or a cycle (a plan
    is checked for both before it is accepted) adds nothing."""
    deps = {t["key"]: list(t["depends_on"]) for t in tasks}
    depth: dict[str, int] = {}

    def of(key: str, seen: frozenset[str]) -> int:
        if key not in depth:
            below = [of(d, seen | {key}) for d in deps[key] if d in deps and d not in seen]
            depth[key] = 1 + max(below) if below else 0
        return depth[key]

    for key in deps:
        of(key, frozenset())
    return depth


def _curve(source: Box, target: Box) -> str:
    x1, y1 = source.x + BOX_W, source.y + BOX_H / 2
    x2, y2 = target.x, target.y + BOX_H / 2
    mid = (x1 + x2) / 2
    return f"M{x1:g},{y1:g} C{mid:g},{y1:g} {mid:g},{y2:g} {x2:g},{y2:g}"


def _head(title: str) -> str:
    return title if len(title) <= TITLE_MAX else title[: TITLE_MAX - 1].rstrip() + "…"


def _tail(branch: str) -> str:
    return branch if len(branch) <= BRANCH_MAX else "…" + branch[-(BRANCH_MAX - 1) :]


def _tip(task: Mapping[str, Any]) -> str:
    lines = [f"{task['key']}: {task.get('title') or ''}", f"state: {task['status']}"]
    if task.get("branch"):
        lines.append(f"branch: {task['branch']}")
    if task.get("cost_usd") is not None:
        lines.append(f"cost: ${task['cost_usd']:.4f}")
    if task["status"] == BLOCKED:
        lines.append("blocked: a task it depends on ended without succeeding")
    if task["waits_on"]:
        lines.append(f"waits on: {', '.join(task['waits_on'])}")
    elif task["depends_on"]:
        lines.append("waits on nothing: its dependencies have succeeded")
    return "\n".join(lines)
