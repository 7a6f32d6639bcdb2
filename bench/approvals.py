"""Approvals benchmark: request creation, and a decision webhook → the action applied.

    python -m bench.approvals [--only sqlite|postgres] [--requests 40]

For each database, a real `taskyard serve` with one route (`github:issues.opened`) whose
`command` agent proposes `close_issue` (medium risk by the shipped rules: it needs a person),
the GitHub channel on, and the recording GitHub test server (tests/platform_servers.py,
without its OpenAPI checks) as GitHub:
1. `--requests` deliveries, one issue each, `--pace` seconds apart (default 0.1: a steady
   10 a second, which measures creating a request rather than 40 agents finishing at once
   on two cores; `--pace 0` sends them all at once): every task stops `awaiting_approval`.
   Request creation is the server's own measure (the `approval requested` log line: storing the
   request, `created_ms`; posting it on the pull request, `announced_ms`).
2. For each request in turn, a signed `issue_comment` delivery `/approve <id>` by a lead is
   posted; decision → applied is from posting it to the GitHub test server receiving the
   `PATCH …/issues/N` that closes the issue.
Targets (the approvals issue): request creation p95 ≤ 50 ms, decision webhook → action
applied p95 ≤ 50 ms. Prints numbers; never fails on a miss.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from bench.pipeline import pct
from bench.servers import Databases, free_port, running_server
from taskyard.intake.app import make_adapter
from taskyard.models import TaskStatus
from taskyard.records import ApprovalStatus
from taskyard.store import SQLStore
from taskyard.store.base import TaskFilter
from tests.platform_servers import Recorded, github_server

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "webhooks" / "github"
SECRET = "bench-secret"
LEAD = "bench-lead"
RESULT = {
    "success": True,
    "actions": [{"type": "close_issue", "params": {"reason": "completed"}, "reasoning": "done"}],
    "analysis": "",
    "summary": "closed",
}
CONFIG = """
log_level: INFO
queue: {{max_in_flight: 512, concurrency: 16}}
sources: {{github: {{rate_limit_per_hour: 0}}}}
runs: {{concurrency: 8}}
agents:
  closer: {{kind: command, argv: ["/bin/sh", "-c", {agent}]}}
routes:
  - name: bench
    on: ["github:issues.opened"]
    agent: closer
    prompt: default
    who: {{min_permission: none}}
platforms:
  github: {{base_url: "{github}"}}
actions:
  allow: {{bench: [close_issue, comment, react]}}
reporting: {{start: {{github: false}}, summary: false}}
approvals:
  policies: {policies}
  channels: {{github: true}}
"""
POLICIES = f"""
levels:
  low: {{approval: false}}
  medium: {{roles: [lead], timeout_minutes: 30}}
  high: {{roles: [lead], timeout_minutes: 60}}
  critical: {{roles: [lead], timeout_minutes: 120}}
roles:
  lead: {{github: [{LEAD}]}}
"""


def _signed(event: str, payload: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    headers = {"x-github-event": event, "x-github-delivery": str(uuid.uuid4())}
    signed = make_adapter("github").sign(SECRET, body, time.time(), headers)
    return signed.body, dict(signed.headers)


def opened(n: int) -> tuple[bytes, dict[str, str]]:
    payload = json.loads((SHARED / "issues.opened.json").read_text())
    payload["issue"]["number"] = n
    payload["issue"]["title"] = f"bench issue {n}"
    return _signed("issues", payload)


def approve(n: int, approval_id: str) -> tuple[bytes, dict[str, str]]:
    payload = json.loads((SHARED / "issue_comment.created.json").read_text())
    payload["issue"]["number"] = n
    payload["issue"].pop("pull_request", None)
    payload["comment"]["body"] = f"/approve {approval_id} bench"
    payload["comment"]["id"] = 10_000 + n
    payload["comment"]["user"] = {**payload["comment"]["user"], "login": LEAD, "type": "User"}
    payload["sender"] = {**payload["sender"], "login": LEAD, "type": "User"}
    return _signed("issue_comment", payload)


def wait_awaiting(url: str, count: int, seconds: float) -> dict[int, str]:
    """Issue number → its pending approval id, once every task waits."""
    store = SQLStore.open(url)
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            tasks = store.list_tasks(TaskFilter(status=TaskStatus.AWAITING_APPROVAL, limit=1000))
            if len(tasks) >= count:
                found = {}
                for approval in store.list_approvals(ApprovalStatus.PENDING, limit=1000):
                    number = approval.details.get("target", {}).get("number")
                    found[int(number)] = approval.id
                return found
            failed = store.list_tasks(TaskFilter(status=TaskStatus.FAILED, limit=1))
            if failed:
                raise SystemExit(f"a task failed: {failed[0].reason}")
            time.sleep(0.2)
        raise SystemExit(f"fewer than {count} tasks awaiting approval within {seconds} s")
    finally:
        store.close()


def closing(n: int) -> Callable[[Recorded], bool]:
    path = f"/repos/Codertocat/Hello-World/issues/{n}"
    return lambda request: request.method == "PATCH" and request.path == path


def run(db_url: str | None, home: Path, count: int, pace: float) -> dict[str, list[float]]:
    home.mkdir(parents=True)
    (home / "policies.yaml").write_text(POLICIES)
    agent = f"printf '%s' '{json.dumps(RESULT)}' > \"$OUTPUT_DIR/result.json\""
    port = free_port()
    env = {
        **os.environ,
        "TASKYARD_HOME": str(home),
        "TASKYARD_GITHUB_SECRET": SECRET,
        "TASKYARD_GITHUB_TOKEN": "ghp_bench_token_000000000000000000000000",
    }
    cmd = [sys.executable, "-m", "taskyard", "serve", "--port", str(port),
           "--config", str(home / "taskyard.yaml"),
           *(["--database-url", db_url] if db_url else [])]  # fmt: skip
    url = db_url or f"sqlite:///{home / 'taskyard.db'}"
    applied: list[float] = []
    with contextlib.ExitStack() as stack:
        # No OpenAPI check of each request here (the tests make it): it would cost tens of ms
        # of CPU per request in this process, which stamps the arrivals measured.
        gh = stack.enter_context(github_server(check=False))
        (home / "taskyard.yaml").write_text(
            CONFIG.format(
                agent=json.dumps(agent),
                github=gh.base_url,
                policies=json.dumps(str(home / "policies.yaml")),
            )
        )
        server = stack.enter_context(running_server(cmd, env, port, home / "serve.log", REPO))
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for n in range(1, count + 1):
                body, headers = opened(n)
                r = client.post("/webhooks/github", content=body, headers=headers)
                assert r.status_code == 202, r.text
                time.sleep(pace)
            pending = wait_awaiting(url, count, 120)
            for n, approval_id in sorted(pending.items()):
                body, headers = approve(n, approval_id)
                mark = gh.mark()
                sent = time.monotonic()  # the test server stamps arrivals with it too
                r = client.post("/webhooks/github", content=body, headers=headers)
                assert r.status_code == 202, r.text
                # Waits on the server's notice of each request (no polling in this process,
                # which would take the CPU from the server thread stamping the arrival).
                close = gh.wait_for(closing(n), mark, seconds=30)
                if close is None:
                    raise SystemExit(f"issue {n} was not closed within 30 s")
                applied.append((close.at - sent) * 1000)
    created, announced = [], []
    for line in (home / "serve.log").read_text().splitlines():
        if line.startswith("{") and '"approval requested"' in line:
            rec = json.loads(line)
            created.append(float(rec["created_ms"]))
            announced.append(float(rec["announced_ms"]))
    return {"created": created, "announced": announced, "applied": applied}


def _line(name: str, values: list[float]) -> str:
    if not values:
        return f"  {name}: no samples"
    return (
        f"  {name}: p50 {pct(values, 0.5):.1f} ms, p95 {pct(values, 0.95):.1f} ms, "
        f"max {max(values):.1f} ms (n={len(values)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["sqlite", "postgres"])
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--pace", type=float, default=0.1, help="seconds between deliveries")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    dbs = Databases(args.pg)
    try:
        for kind in ("sqlite", "postgres"):
            if args.only and args.only != kind:
                continue
            with tempfile.TemporaryDirectory(prefix=f"bench-approvals-{kind}-") as tmp:
                url = (
                    dbs.create(f"bench_approvals_{uuid.uuid4().hex[:8]}")
                    if kind == "postgres"
                    else None
                )
                found = run(url, Path(tmp) / "home", args.requests, args.pace)
            print(f"{kind}:")
            print(_line("request created (stored)", found["created"]))
            print(_line("request posted on the pull request", found["announced"]))
            created_total = [
                c + a for c, a in zip(found["created"], found["announced"], strict=True)
            ]
            print(_line("request created and posted", created_total))
            print(_line("decision webhook → action applied", found["applied"]))
    finally:
        dbs.drop_all()


if __name__ == "__main__":
    main()
