"""Test job handlers, loaded by a real `taskyard serve` through `handlers:` in its config.

Each run appends `start|done|fail <event id> <attempt>` to $TASKYARD_TEST_LOG. The payload's
`behaviour` field picks what happens: `ok`, `flaky2` (transient failure on attempts 1 and 2),
`permanent`, `slow` (sleeps 3 s on attempt 1, so a test can kill the worker mid-job).
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from taskyard.exceptions import PermanentError, TransientError
from taskyard.queue.jobs import JobContext


def _log(line: str) -> None:
    path = Path(os.environ["TASKYARD_TEST_LOG"])
    with path.open("a", encoding="utf-8") as handle:
        handle.write(line + "\n")
        handle.flush()
        os.fsync(handle.fileno())


async def recording(ctx: JobContext) -> None:
    event = await asyncio.to_thread(ctx.store.get_event, ctx.ref)
    behaviour = json.loads(event.body).get("behaviour", "ok")
    _log(f"start {ctx.ref} {ctx.attempt}")
    if behaviour == "flaky2" and ctx.attempt <= 2:
        _log(f"fail {ctx.ref} {ctx.attempt}")
        raise TransientError(f"flaky on attempt {ctx.attempt}")
    if behaviour == "permanent":
        _log(f"fail {ctx.ref} {ctx.attempt}")
        raise PermanentError("this payload can never be processed")
    if behaviour == "slow" and ctx.attempt == 1 and not os.environ.get("TASKYARD_TEST_FAST"):
        await asyncio.sleep(3)
    _log(f"done {ctx.ref} {ctx.attempt}")
