"""The idea page's reading of a plan, without a store: each task's state (a failure blocks
everything after it, not only its direct dependents) and where the graph draws it."""

from __future__ import annotations

from taskyard.idea import IdeaTask
from taskyard.ideas.overview import task_rows
from taskyard.models import Priority, Task, TaskStatus
from taskyard.web.dag import BOX_W, GAP_X, PAD, layout


def _planned(deps: dict[str, tuple[str, ...]]) -> list[IdeaTask]:
    """The tasks of a plan; A is scheduled (as t-A)."""
    return [
        IdeaTask("i", k, f"task {k}", d, 1, {}, task_id="t-A" if k == "A" else None)
        for k, d in deps.items()
    ]


def _run(status: TaskStatus) -> Task:
    return Task("t-A", "e", "r", "codex", status, Priority.P2, 0.0, 0.0, "w", {}, cost_usd=0.1)


def test_a_failure_blocks_every_task_after_it() -> None:
    chain = _planned({"A": (), "B": ("A",), "C": ("B",), "X": ()})
    rows = {r["key"]: r for r in task_rows(chain, {"t-A": _run(TaskStatus.TIMED_OUT)})}
    assert [rows[k]["status"] for k in "ABCX"] == ["timed_out", "blocked", "blocked", "pending"]
    assert rows["C"]["waits_on"] == ["B"] and rows["A"]["cost_usd"] == 0.1
    going = {r["key"]: r["status"] for r in task_rows(chain, {"t-A": _run(TaskStatus.RUNNING)})}
    assert going == {"A": "running", "B": "pending", "C": "pending", "X": "pending"}


def test_columns_are_waves_and_rows_follow_dependencies() -> None:
    deps = {"A": (), "Z": (), "B": ("Z",), "C": ("A",), "D": ("B", "C")}
    rows = task_rows(_planned(deps), {"t-A": _run(TaskStatus.SUCCEEDED)})
    drawn = {b.task["key"]: b for b in layout(rows).boxes}
    assert {k: b.column for k, b in drawn.items()} == {"A": 0, "Z": 0, "B": 1, "C": 1, "D": 2}
    assert drawn["C"].y < drawn["B"].y  # level with A, drawn above Z
    assert drawn["D"].x == PAD + 2 * (BOX_W + GAP_X)
    assert len(layout(rows).edges) == 4


def test_a_cycle_or_a_missing_dependency_still_draws() -> None:
    rows = task_rows(_planned({"A": ("B",), "B": ("A",), "C": ("nope",)}), {})
    drawn = layout(rows)
    assert sorted(b.task["key"] for b in drawn.boxes) == ["A", "B", "C"]
    assert len(drawn.edges) == 2  # A ↔ B; the missing one is not drawn
