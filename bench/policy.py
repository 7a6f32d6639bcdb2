"""Policy benchmark: one evaluation of 100 compiled rules against one input.

    python -m bench.policy [--runs 2000]

100 rules at the pre-deploy point, built from the shipped examples' shapes (label lists,
path scans over 50 changed paths, churn sums, a freeze window in a time zone, a deploy
budget), compiled once; each run is one `evaluate` (the input merged over the defaults, the
CEL context built, every rule run, the decision made). Target (issue 17): p50 ≤ 1 ms.
Prints numbers; never fails on a miss.
"""

from __future__ import annotations

import argparse
import statistics
import time

from taskyard.policy.engine import evaluate
from taskyard.policy.rules import Point, parse_policy

SHAPES = (
    'labels.exists(l, l in ["security", "auth", "billing", "label-{n}"])',
    'paths.exists(p, p.startsWith("dir{n}/")) && !tests.commands.exists(c, c.contains("t{n}"))',
    "diff.lines_added + diff.lines_removed > {n}00",
    'environment == "production" && in_window(time, "Fri 18:00", "Mon 06:00", "Europe/Berlin")',
    'environment == "production" && service in deploys_today && deploys_today[service] >= {n}',
)

INPUT = {
    "idea": {"id": "idea-1", "labels": ["feature"], "risk": "medium", "repo": "acme/api"},
    "task": {"key": "T-1", "title": "add the export", "labels": ["feature"]},
    "diff": {"files": 50, "lines_added": 420, "lines_removed": 80},
    "paths": [f"src/module_{i}/file.py" for i in range(50)],
    "labels": ["feature", "backend"],
    "tests": {"passed": True, "commands": ["pytest tests/unit", "ruff check ."]},
    "time": "2026-03-25T10:00:00+01:00",
    "environment": "production",
    "service": "api",
    "deploys_today": {"api": 2, "web": 1},
}


def policy_text(count: int) -> str:
    rows = ["rules:"]
    for n in range(count):
        when = SHAPES[n % len(SHAPES)].format(n=n + 10).replace("'", "''")
        rows += [
            f"  - id: rule-{n}",
            "    point: pre_deploy",
            f"    when: '{when}'",
            "    outcome: deny",
            f"    reason: rule {n}",
        ]
    return "\n".join(rows) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=2000)
    args = parser.parse_args()
    policy = parse_policy(policy_text(100), "bench")
    evaluate(policy, Point.PRE_DEPLOY, INPUT)  # warm up
    times = []
    for _ in range(args.runs):
        start = time.perf_counter()
        decision = evaluate(policy, Point.PRE_DEPLOY, INPUT)
        times.append((time.perf_counter() - start) * 1000)
    cuts = statistics.quantiles(times, n=10)
    print(f"policy: {len(policy.rules)} rules, {args.runs} evaluations, {decision.outcome}")
    print(f"  p50 {statistics.median(times):.3f} ms  p90 {cuts[8]:.3f} ms  (target p50 <= 1 ms)")


if __name__ == "__main__":
    main()
