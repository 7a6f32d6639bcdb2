"""The pipeline's metrics, spans and logs after real scenarios through a running taskyard.

Metrics scenario: three deliveries become tasks or fail routing: two issues are triaged by an
agent that succeeds (the first one's label request is rate limited once), one comment's agent
fails, and one issue from an actor whose permission lookup GitHub refuses is dead-lettered;
plus a duplicate and a forged delivery. `/metrics` must then show exactly what the test counts
from its own answers, the store, the recording GitHub server and the disk.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from taskyard.approvals.policies import Identity
from taskyard.models import EventStatus, TaskStatus
from taskyard.observe.metrics import (
    AGENT_FAILURE_REASONS,
    EVENT_STATES,
    PLATFORMS,
    ContextFilter,
    JsonFormatter,
)
from taskyard.observe.tracing import EVENT_ID, TASK_ID, Tracing
from taskyard.records import ApprovalStatus, Decision
from tests.integration.actions_harness import LABELS, result
from tests.integration.pipeline_harness import (
    MODEL_KEY,
    REPO,
    Samples,
    agent_script,
    closing,
    delivery,
    failing_agent,
    github,
    series,
    settings_for,
    value,
    yard,
)
from tests.platform_servers import PlatformServer, Reply

__all__ = ["github"]  # fixture

CLOSE = {"type": "close_issue", "params": {"reason": "completed"}, "reasoning": "fixed"}
USAGE = {"input_tokens": 100, "output_tokens": 20, "cost_usd": 0.0125}
LIMITED = f"/repos/{REPO}/issues/1/labels"  # its first request is answered 429
REFUSED = f"/repos/{REPO}/collaborators/mallory/permission"  # answered 403
RETRY_AFTER = 1.0
RUN_LOGGERS = (
    "taskyard.run.executor",
    "taskyard.run.slots",
    "taskyard.run.attempt",
    "taskyard.run.applying",
    "taskyard.run.finishing",
)
TASK_PATH_LOGGERS = (
    "taskyard.routing.job",
    *RUN_LOGGERS,
    "taskyard.actions",
    "taskyard.agents",
    "taskyard.platforms",
    "taskyard.run.workspace",
)
TASK_LOGGERS = (*RUN_LOGGERS, "taskyard.actions", "taskyard.agents")


@pytest.fixture
def log_lines() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """Every log record, as the JSON line `setup_logging` would write (secrets added by
    `running`)."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield lambda: [json.loads(line) for line in buffer.getvalue().splitlines()]
    root.removeHandler(handler)
    root.setLevel(level)


def issue(number: int, login: str = "Codertocat", association: str = "OWNER") -> dict[str, Any]:
    payload = delivery("issues.opened")
    payload["issue"]["number"] = number
    payload["issue"]["user"]["login"] = login
    payload["issue"]["author_association"] = association
    payload["sender"]["login"] = login
    return payload


def outcome_of(answer: httpx.Response) -> str:
    """The intake outcome an answer shows (accepted, duplicate, or the refusal's reason)."""
    if answer.status_code == 202:
        return "accepted"
    body = answer.json()
    return "duplicate" if body.get("duplicate") else str(body["reason"])


def disk_bytes(root: Path) -> int:
    """The files' sizes under `root`, counted here independently of taskyard."""
    total = 0
    for folder, _dirs, files in os.walk(root):
        for name in files:
            path = Path(folder) / name
            if not path.is_symlink():
                total += path.stat().st_size
    return total


def platform_calls(server: PlatformServer) -> Counter[tuple[str, str, str]]:
    """(platform, kind, outcome) of every request GitHub got, by what it was answered."""
    counted: Counter[tuple[str, str, str]] = Counter()
    limited = False
    for request in server.requests:
        path = unquote(request.path)
        kind = "read" if request.method == "GET" else "write"
        if path == LIMITED and request.method == "POST" and not limited:
            limited, outcome = True, "rate_limited"
        elif path == REFUSED:
            outcome = "error"
        else:
            outcome = "ok"
        counted["github", kind, outcome] += 1
    return counted


def durations(samples: Samples, route: str, agent: str) -> dict[str, float]:
    """count, sum and each bucket of `taskyard_task_duration_seconds{route,agent}`."""
    name = "taskyard_task_duration_seconds"
    found = {
        "count": value(samples, f"{name}_count", route=route, agent=agent),
        "sum": value(samples, f"{name}_sum", route=route, agent=agent),
    }
    for labels, count in series(samples, f"{name}_bucket").items():
        given = dict(labels)
        if (given["route"], given["agent"]) == (route, agent):
            found[given["le"]] = count
    return found


async def test_metrics_show_what_a_scenario_did(
    tmp_path: Path, github: PlatformServer, log_lines: Callable[[], list[dict[str, Any]]]
) -> None:
    flag = tmp_path / "flags" / "the-comment-agent-may-fail"
    flag.parent.mkdir()
    settings = settings_for(
        tmp_path / "home",
        github.base_url,
        # the boxed agent waits for the flag: the operator lets agents read its directory
        runs={
            "kill_grace_seconds": 0.5,
            "keep_workspaces": True,
            "sandbox_read_only": [str(flag.parent)],
        },
        agents={
            "good": {"kind": "command", "argv": agent_script(result(LABELS), USAGE)},
            "bad": {"kind": "command", "argv": failing_agent(flag), "api_key": MODEL_KEY},
        },
        routes=[
            {"name": "triage", "on": ["github:issues.opened"], "agent": "good"},
            {"name": "answer", "on": ["github:issue_comment.created"], "agent": "bad"},
        ],
        actions={"allow": {"triage": ["add_labels"]}},
    )
    github.queue("POST", LIMITED, closing(Reply(429, {"message": "slow"}, {"retry-after": "1"})))
    github.route("GET", REFUSED, closing(Reply(403, {"message": "Must have push access"})))

    async with yard(settings) as y:
        store = y.services.store
        first = issue(1)
        answers = [
            await y.send("issues", first, delivery_id="delivery-1"),
            await y.send("issues", issue(2)),
            await y.send("issues", issue(3, "mallory", "NONE")),
            await y.send("issues", first, delivery_id="delivery-1"),  # GitHub redelivers
            await y.send("issues", issue(4), secret="not-the-secret"),  # forged
        ]
        assert [a.status_code for a in answers] == [202, 202, 202, 200, 401]
        triaged = [answers[0].json()["event_id"], answers[1].json()["event_id"]]
        refused = answers[2].json()["event_id"]

        def ended(event_id: str) -> bool:
            found = y.tasks_of(event_id)
            return len(found) == 1 and found[0].status.terminal

        await y.until(lambda: all(ended(e) for e in triaged), "the triage tasks to end")
        await y.until(lambda: store.get_event(refused).status is EventStatus.DEAD, "dead letter")
        answers.append(await y.send("issue_comment", delivery("issue_comment.created")))
        commented = answers[-1].json()["event_id"]

        def running() -> bool:
            found = y.tasks_of(commented)
            return len(found) == 1 and found[0].status is TaskStatus.RUNNING

        await y.until(running, "the comment's agent to start")
        during = await y.scrape()
        flag.touch()
        await y.until(lambda: ended(commented), "the comment's task to end")
        await y.until(lambda: store.count_in_flight() == 0, "the events to settle")
        await asyncio.sleep(1.05)  # the store-read gauges are read at most once a second
        after = await y.scrape()

        tasks = [t for e in (*triaged, commented) for t in y.tasks_of(e)]
        events = store.count_events()
        letters = {s: len(store.list_dead_letters(s, 100)) for s in ("open", "replayed")}
        workspaces = settings.home / "workspaces"

    # What happened, as the test intended it:
    ended_as = Counter((t.route, t.agent, str(t.status)) for t in tasks)
    assert ended_as == {("triage", "good", "succeeded"): 2, ("answer", "bad", "failed"): 1}
    assert Counter(outcome_of(a) for a in answers) == {
        "accepted": 4,
        "duplicate": 1,
        "bad_signature": 1,
    }
    assert letters == {"open": 1, "replayed": 0}

    # webhook received, by outcome
    received = Counter(outcome_of(a) for a in answers)
    for outcome, count in received.items():
        assert (
            value(after, "taskyard_webhooks_received_total", source="github", outcome=outcome)
            == count
        )

    # success and failure: tasks_total by route, agent and status; the derived success rate
    for (route, agent, status), count in ended_as.items():
        assert (
            value(after, "taskyard_tasks_total", route=route, agent=agent, status=status) == count
        )
    finished = series(after, "taskyard_tasks_total")
    succeeded = sum(v for labels, v in finished.items() if ("status", "succeeded") in labels)
    assert succeeded / sum(finished.values()) == pytest.approx(2 / 3)

    # task duration: created → finished of each task
    for route, agent in {(t.route, t.agent) for t in tasks}:
        took = [
            t.finished_at - t.created_at
            for t in tasks
            if (t.route, t.agent) == (route, agent) and t.finished_at
        ]
        shown = durations(after, route, agent)
        assert shown["count"] == len(took)
        assert shown["sum"] == pytest.approx(sum(took), rel=1e-9)
        for le, count in shown.items():
            if le not in ("count", "sum"):
                assert count == sum(1 for s in took if s <= float(le)), le

    # agents: alive while the comment's agent ran, none after; its failure by reason
    assert value(during, "taskyard_agents_running", agent="bad") == 1
    assert value(during, "taskyard_agents_running", agent="good") == 0
    assert value(after, "taskyard_agents_running", agent="bad") == 0
    for reason in AGENT_FAILURE_REASONS:
        want = 1 if reason == "failed" else 0
        assert value(after, "taskyard_agent_failures_total", agent="bad", reason=reason) == want
        assert value(after, "taskyard_agent_failures_total", agent="good", reason=reason) == 0

    # cost and tokens of the finished tasks
    cost = sum(t.cost_usd or 0.0 for t in tasks if t.route == "triage")
    assert cost == pytest.approx(2 * USAGE["cost_usd"])
    assert value(
        after, "taskyard_task_cost_usd_total", route="triage", agent="good"
    ) == pytest.approx(cost)
    assert (
        value(after, "taskyard_task_tokens_total", agent="good", kind="input")
        == 2 * USAGE["input_tokens"]
    )

    # queue depth by state, jobs, dead letters
    assert {s: events.get(s, 0) for s in EVENT_STATES} == {
        **dict.fromkeys(EVENT_STATES, 0),
        "processed": 3,
        "dead": 1,
    }
    for state in EVENT_STATES:
        assert value(after, "taskyard_queue_depth", state=state) == events.get(state, 0)
    assert value(after, "taskyard_jobs_total", job="route", result="processed") == 3
    assert value(after, "taskyard_jobs_total", job="route", result="dead") == 1
    for status, count in letters.items():
        assert value(after, "taskyard_dead_letters", status=status) == count

    # platform API calls and the rate-limit wait
    calls = platform_calls(github)
    assert calls["github", "write", "rate_limited"] == 1 and calls["github", "read", "error"] == 1
    assert calls["github", "write", "ok"] >= 2  # the labels, at least
    for platform in PLATFORMS:
        for kind in ("read", "write"):
            for outcome in ("ok", "error", "rate_limited"):
                labels = {"platform": platform, "kind": kind, "outcome": outcome}
                shown = value(after, "taskyard_platform_requests_total", **labels)
                assert shown == calls[platform, kind, outcome], labels
    wait = value(after, "taskyard_platform_rate_limit_wait_seconds_total", platform="github")
    assert wait == pytest.approx(RETRY_AFTER)
    assert value(after, "taskyard_platform_rate_limit_wait_seconds_total", platform="linear") == 0

    # workspace disk use: the kept workspaces
    on_disk = disk_bytes(workspaces)
    assert on_disk > 0
    assert value(after, "taskyard_workspace_disk_bytes") == on_disk

    # low cardinality: no label value is an id
    ids = {*triaged, refused, commented, *(t.id for t in tasks)}
    assert not [k for k in after if any(v in ids for _, v in k[1])]

    _logs_carry_ids_and_no_secret(log_lines(), settings.secrets(), tasks, [*triaged, commented])


def _logs_carry_ids_and_no_secret(
    lines: list[dict[str, Any]], secrets: tuple[str, ...], tasks: list[Any], routed: list[str]
) -> None:
    text = "\n".join(json.dumps(line) for line in lines)
    assert MODEL_KEY in secrets
    assert not [s for s in secrets if s in text]
    path = [line for line in lines if line["logger"].startswith(TASK_PATH_LOGGERS)]
    assert [line for line in path if "event_id" not in line] == []
    by_task = [line for line in path if line["logger"].startswith(TASK_LOGGERS)]
    assert [line for line in by_task if "task_id" not in line] == []
    routed_lines = [line for line in path if line["message"] == "event routed"]
    assert sorted(line["event_id"] for line in routed_lines) == sorted(routed)
    finished = {line["task_id"]: line for line in path if line["message"] == "task finished"}
    assert set(finished) == {t.id for t in tasks}
    assert all(finished[t.id]["event_id"] == t.event_id for t in tasks)
    failed = next(line for line in finished.values() if line["status"] == "failed")
    assert "gave up; key [redacted]" in failed["reason"]  # the agent said its key
    [retried] = [line for line in path if line["message"] == "platform call retried"]
    assert retried["platform"] == "github" and retried["task_id"] in finished


async def test_spans_of_one_event_make_one_trace(tmp_path: Path, github: PlatformServer) -> None:
    exporter = InMemorySpanExporter()
    tracing = Tracing.exporting_to(exporter)
    settings = settings_for(
        tmp_path / "home",
        github.base_url,
        agents={"good": {"kind": "command", "argv": agent_script(result(LABELS, CLOSE))}},
        routes=[{"name": "triage", "on": ["github:issues.opened"], "agent": "good"}],
        actions={"allow": {"triage": ["add_labels", "close_issue"]}},
    )
    try:
        async with yard(settings, tracing) as y:
            store = y.services.store
            event_id = (await y.send("issues", issue(1))).json()["event_id"]

            def status() -> TaskStatus | None:
                found = y.tasks_of(event_id)
                return found[0].status if found else None

            await y.until(lambda: status() is TaskStatus.AWAITING_APPROVAL, "the approval wait")
            [task] = y.tasks_of(event_id)
            [approval] = store.list_approvals(ApprovalStatus.PENDING, task.id)
            assert y.services.approvals is not None
            decided = await y.services.approvals.decisions.decide(
                approval.id, Decision.APPROVE, Identity("cli", "alice"), "ok"
            )
            assert decided.accepted
            await y.until(lambda: status() is TaskStatus.SUCCEEDED, "the task to succeed")
            approval = store.get_approval(approval.id)
    finally:
        tracing.shutdown()

    spans = sorted(exporter.get_finished_spans(), key=lambda s: s.start_time or 0)
    names = [s.name for s in spans]
    assert sorted(names) == sorted(
        ["intake", "route", "context", "run", "apply", "apply", "approval_wait"]
    )
    assert {s.context.trace_id for s in spans} == {int(event_id, 16)}
    assert {s.attributes[EVENT_ID] for s in spans} == {event_id}
    assert {s.attributes.get(TASK_ID) for s in spans if s.name not in ("intake", "route")} == {
        task.id
    }
    roots = {s.parent.span_id for s in spans if s.parent is not None}
    assert len(roots) == 1 and all(s.parent is not None and s.parent.is_remote for s in spans)
    first = {name: next(s for s in spans if s.name == name) for name in names}
    assert (
        names.index("intake") < names.index("route") < names.index("context") < names.index("run")
    )
    wait = first["approval_wait"]
    assert approval.decided_at is not None
    assert wait.start_time == int(approval.created_at * 1e9)
    assert wait.end_time == int(approval.decided_at * 1e9)
    last_apply = [s for s in spans if s.name == "apply"][-1]
    assert (last_apply.start_time or 0) >= (wait.end_time or 0)
    assert all(s.status.is_ok for s in spans)
