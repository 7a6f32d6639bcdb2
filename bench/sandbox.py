"""The agent sandbox's cost per task: one trivial `command` agent supervised with
`runs.sandbox: none` and with bwrap (without and with egress ports), N runs each, in turns.

    python -m bench.sandbox [--runs 40]

Measured: the whole `supervise()` call (box made, agent spawned, its first and only line
read, box and cgroup torn down); the overhead is the median (and p95) of bwrap minus none.
Target (issue 13): ≤ 20 ms median. `bench.pipeline` prints the same line at its end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from taskyard.agents.base import AgentRequest
from taskyard.agents.command import CommandAdapter
from taskyard.agents.sandbox import SandboxMode, SandboxSettings
from taskyard.agents.supervisor import Limits, build_env, supervise
from taskyard.config import AgentConfig

SCRIPT = 'echo "{}" > "$OUTPUT_DIR/result.json"; echo started'


def _request(root: Path, n: int) -> AgentRequest:
    task = root / f"task-{n}"
    for name in ("workspace", "context", "prompts", "outputs"):
        (task / name).mkdir(parents=True, exist_ok=True)
    (task / "prompts" / "p.md").write_text("x")
    request = AgentRequest(
        str(n), task, task / "workspace", task / "context", task / "outputs",
        task / "prompts" / "p.md", {},
    )  # fmt: skip
    return replace(request, base_env=build_env(("PATH",), os.environ, request))


_MODES = {  # name → (mode, base_url: with one, the box serves an egress port)
    "none": (SandboxMode.NONE, None),
    "bwrap": (SandboxMode.BWRAP, None),
    "egress": (SandboxMode.BWRAP, "http://127.0.0.1:18123/v1"),
}


async def _times(root: Path, runs: int) -> dict[str, list[float]]:
    """Per mode, the time of each run. The modes take turns run by run, so a machine whose
    load changes during the measurement weighs on all of them alike."""
    limits = {
        name: Limits(timeout_seconds=30, sandbox=SandboxSettings(mode=mode))
        for name, (mode, _) in _MODES.items()
    }
    adapters = {
        name: CommandAdapter(AgentConfig(kind="command", argv=("sh", "-c", SCRIPT), base_url=url))
        for name, (_, url) in _MODES.items()
    }
    took: dict[str, list[float]] = {name: [] for name in _MODES}
    for n in range(runs + 2):
        for name in _MODES:
            request = _request(root / name, n)
            began = time.perf_counter()
            report = await supervise(adapters[name], request, limits[name])
            if not report.succeeded:
                raise SystemExit(f"{name}: {report.reason}")
            if n >= 2:  # the first runs warm caches (and bwrap's one-time usability check)
                took[name].append((time.perf_counter() - began) * 1000)
    return took


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(runs: int = 40) -> str:
    """One line: per-task time with none, bwrap, bwrap + egress ports, and the overheads."""
    with tempfile.TemporaryDirectory(prefix="bench-sandbox-") as tmp:
        took = asyncio.run(_times(Path(tmp), runs))
    base = statistics.median(took["none"])
    parts = [f"sandbox ({runs} runs): none median {base:5.1f} ms"]
    for name, label in (("bwrap", "bwrap"), ("egress", "bwrap+egress")):
        median = statistics.median(took[name])
        parts.append(
            f"{label} median {median:5.1f} ms p95 {_pct(took[name], 0.95):5.1f} ms → overhead "
            f"{median - base:+5.1f} ms"
        )
    return " | ".join(parts) + " (target ≤ 20 ms)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    print(measure(parser.parse_args().runs))


if __name__ == "__main__":
    main()
