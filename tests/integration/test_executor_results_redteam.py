"""A result an agent nests past what JSON storage takes (orjson stops at 255 levels; the
file parser at 1,024) ends its task `failed` with a reason, on every store, instead of
breaking the step that stores it."""

from __future__ import annotations

from pathlib import Path

from taskyard.models import TaskStatus
from taskyard.run.results import MAX_RESULT_DEPTH
from taskyard.store.base import Store
from tests.executor_harness import build_executor
from tests.integration.test_executor import agent, queue_task

DEEP = """
import os, pathlib
deep = "[" * 600 + "]" * 600
result = '{"success": true, "actions": [], "summary": "s", "analysis": {"x": %s}}' % deep
pathlib.Path(os.environ["OUTPUT_DIR"], "result.json").write_text(result)
"""


async def test_a_result_nested_600_levels_fails_its_task(tmp_path: Path, store: Store) -> None:
    ex, _, _ = build_executor(tmp_path, agent(DEEP), store=store)
    task = queue_task(store)  # type: ignore[arg-type]
    assert await ex.run(task.id) == "failed"
    done = store.get_task(task.id)
    assert done.status is TaskStatus.FAILED and done.result is None
    assert f"nested deeper than {MAX_RESULT_DEPTH} levels" in (done.reason or "")
