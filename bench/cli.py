"""How long read-only `taskyard` commands take, start to exit (the user waits for all of it).

    python -m bench.cli [--runs 5] [--events 20]

A fresh TASKYARD_HOME (SQLite) gets `--events` stored events (through the store, no server),
then each command runs `--runs` times as a subprocess of the venv's `taskyard` script; the
table shows the median and the slowest wall-clock time, and the median CPU time (steadier
when the machine is busy). Target: under 0.5 s each.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

COMMANDS = [
    ["--version"],
    ["--help"],
    ["events", "list"],
    ["tasks", "list"],
    ["dlq", "list"],
    ["approvals", "list-pending"],
]
TARGET_SECONDS = 0.5


@dataclass(frozen=True)
class Took:
    wall: float  # what the user waits
    cpu: float  # user + system time of the process: steadier on a busy machine


def _seed(home: Path, count: int) -> None:
    """`count` events in the home's SQLite store, written as intake writes them."""
    from taskyard.config import load_settings
    from taskyard.models import Event, Priority, new_id
    from taskyard.store import NewEvent
    from taskyard.store.migrated import open_migrated_store

    store = open_migrated_store(load_settings(None, {"TASKYARD_HOME": str(home)}, {}))
    now = time.time()
    batch = [
        NewEvent(
            Event(
                id=new_id(),
                source="github",
                type="github:ping",
                delivery_id=f"bench-{n}",
                subject=None,
                actor=None,
                received_at=now,
                priority=Priority.P2,
                headers={},
                body=b'{"zen": "bench"}',
                content_hash=f"{n:064x}",
            ),
            f"id:bench-{n}",
            now + 3600,
        )
        for n in range(count)
    ]
    store.insert_events(batch, now)
    store.close()


def _time(taskyard: str, argv: list[str], env: dict[str, str], runs: int) -> list[Took]:
    took = []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run([taskyard, *argv], env=env, capture_output=True, check=True)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        took.append(Took(wall, cpu))
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--events", type=int, default=20)
    args = parser.parse_args()
    taskyard = str(Path(sys.executable).with_name("taskyard"))
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        _seed(home, args.events)
        env = {**os.environ, "TASKYARD_HOME": str(home)}
        print(f"{'command':28} {'median s':>9} {'max s':>7} {'median cpu s':>13}")
        for argv in COMMANDS:
            took = _time(taskyard, argv, env, args.runs)
            wall = statistics.median(t.wall for t in took)
            cpu = statistics.median(t.cpu for t in took)
            slowest = max(t.wall for t in took)
            mark = "" if wall < TARGET_SECONDS else "  (over the target)"
            print(f"{' '.join(argv):28} {wall:9.3f} {slowest:7.3f} {cpu:13.3f}{mark}")


if __name__ == "__main__":
    main()
