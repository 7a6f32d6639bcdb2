"""Whoever triggered a task cannot approve its risky actions: refused on GitHub (told why in
a reply, over real HTTP to the GitHub test server) and on the API (a real server), recorded
on every store; someone else then approves."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from taskyard.approvals.channels import ApprovalChannels
from taskyard.approvals.channels.github import GitHubChannel
from taskyard.approvals.duties import SELF_APPROVAL, Trigger
from taskyard.approvals.gate import Decisions
from taskyard.approvals.policies import ApprovalPolicies
from taskyard.models import Event, Priority, Task, TaskStatus
from taskyard.platforms.github_write import GitHubWriter
from taskyard.records import ApprovalStatus
from taskyard.store import Store
from taskyard.store.base import FOREVER, NewEvent
from tests.integration.api_harness import BEARER, app_for, serving
from tests.integration.test_github_channel import (
    T0,
    TOKEN,
    comment,
    posted,
    request,
)
from tests.lifecycle_paths import drive
from tests.platform_servers import PlatformServer, github_server

POLICIES = ApprovalPolicies.from_mapping(
    {
        "levels": {
            "low": {"approval": False},
            "medium": {"roles": ["maintainer"], "timeout_minutes": 60},
            "high": {"roles": ["maintainer"], "timeout_minutes": 60},
            "critical": {"roles": ["maintainer"], "timeout_minutes": 60},
        },
        "roles": {"maintainer": {"github": ["octocat", "hubot"]}},
    }
)


@pytest.fixture
def gh() -> Iterator[PlatformServer]:
    with github_server() as server:
        yield server


@pytest.fixture
async def writer(gh: PlatformServer) -> AsyncIterator[GitHubWriter]:
    made = GitHubWriter(token=TOKEN, base_url=gh.base_url)
    yield made
    await made.aclose()


def task_triggered_by(store: Store, login: str, tid: str = "t1", recorded: bool = True) -> None:
    """A task stopped on its approval, started by `login`'s event (recorded in its spec as
    routing does, or only as the event's actor, as tasks routed before this rule are)."""
    event = Event(f"e-{tid}", "github", "github:issues.opened", f"d-{tid}", "acme/api#1",
                  login, T0, Priority.P2, {}, b"{}", f"h-{tid}")  # fmt: skip
    store.insert_events([NewEvent(event, event.id, FOREVER)], T0)
    spec = {"trigger": Trigger("github", (login, "583231")).to_json()} if recorded else {}
    task = Task(tid, event.id, "pr-review", "codex", TaskStatus.QUEUED, Priority.P2, T0, T0,
                f"task-{tid}", spec)  # fmt: skip
    store.record_routing([], [task])
    store.mark_task_dispatched(tid, f"task-{tid}")
    assert drive(store, tid, TaskStatus.AWAITING_APPROVAL)


async def test_the_trigger_is_refused_on_github_and_told_why(
    store: Store, gh: PlatformServer, writer: GitHubWriter
) -> None:
    task_triggered_by(store, "octocat")
    decisions = Decisions(store, POLICIES, clock=lambda: T0 + 60)
    yard = ApprovalChannels(store, decisions, [GitHubChannel(writer, POLICIES)])
    asked = await yard.announce(store.create_approval(request()))

    mark = gh.mark()
    said = await yard.intercept(*comment("/approve my own change", "octocat"))
    assert said is not None and f"refused ({SELF_APPROVAL}" in said
    [reply] = posted(gh, mark)
    assert reply.startswith(f"@octocat your `/approve` on approval `{asked.id}` did not count")
    assert SELF_APPROVAL in reply
    [attempt] = store.decision_attempts(asked.id)
    assert (attempt.actor, attempt.accepted) == ("github:octocat", False)
    assert attempt.why == f"{SELF_APPROVAL} (github:octocat started it; high risk)"
    assert store.get_approval(asked.id).status is ApprovalStatus.PENDING
    assert store.get_task("t1").status is TaskStatus.AWAITING_APPROVAL

    said = await yard.intercept(*comment("/approve looks fine", "hubot"))
    assert said == f"approval {asked.id}: approve by github:hubot accepted"
    assert store.get_approval(asked.id).decided_by == "github:hubot"
    assert gh.problems == []


@pytest.mark.parametrize("recorded", [True, False])
def test_the_trigger_is_refused_on_the_api(store: Store, tmp_path: Path, recorded: bool) -> None:
    task_triggered_by(store, "octocat", recorded=recorded)
    approval = store.create_approval(replace(request(), expires_at=time.time() + 3600))
    url = f"/api/approvals/{approval.id}/approve"
    with serving(app_for(store, tmp_path)) as base, httpx.Client(base_url=base) as client:
        refused = client.post(url, headers=BEARER, json={"as": "OctoCat", "reason": "mine"})
        assert refused.status_code == 409
        assert refused.json()["why"] == f"{SELF_APPROVAL} (web:OctoCat started it; high risk)"
        assert refused.json()["accepted"] is False
        shown = client.get(f"/api/approvals/{approval.id}", headers=BEARER).json()
        assert [(a["actor"], a["accepted"], a["why"]) for a in shown["attempts"]] == [
            ("web:OctoCat", False, refused.json()["why"])
        ]
        done = client.post(url, headers=BEARER, json={"as": "alice", "reason": "ok"})
        assert done.status_code == 200 and done.json()["accepted"] is True
