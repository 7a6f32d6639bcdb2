"""The GitHub approval channel over real HTTP against the GitHub test server (every request
checked against GitHub's OpenAPI description), and a whole decision through `ApprovalChannels`
on each store: a real `issue_comment.created` delivery approves, a stranger is refused and
told why, a second `/approve` hears that it is already approved."""

from __future__ import annotations

import copy
import datetime
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from taskyard.approvals.channels import ApprovalChannels
from taskyard.approvals.channels.github import GitHubChannel
from taskyard.approvals.gate import Decisions
from taskyard.approvals.policies import ApprovalPolicies
from taskyard.models import Event, Priority, Task, TaskStatus, new_id
from taskyard.platforms.github_write import GitHubWriter
from taskyard.records import Approval, ApprovalStatus, DecisionOutcome
from taskyard.store import Store
from tests.lifecycle_paths import drive
from tests.platform_servers import PlatformServer, Recorded, github_server

SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "webhooks" / "github"
TOKEN = "ghp_CHANNELtokenTHATmustNEVERleak0123456789"
REPO, NUMBER = "Codertocat/Hello-World", 1  # the sample delivery's repository and issue
COMMENTS = f"/repos/{REPO}/issues/{NUMBER}/comments"
T0 = 1_700_000_000.0
POLICIES = ApprovalPolicies.from_mapping(
    {
        "levels": {
            "low": {"approval": False},
            "medium": {"roles": ["maintainer"], "timeout_minutes": 60},
            "high": {"roles": ["maintainer"], "timeout_minutes": 60, "checklist": ["CI green"]},
            "critical": {"roles": ["maintainer"], "timeout_minutes": 60},
        },
        "roles": {"maintainer": {"github": ["octocat"]}},
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


def request(task_id: str = "t1") -> Approval:
    return Approval(
        id=new_id(),
        task_id=task_id,
        action_key=f"{task_id}.0.aa",
        route="pr-review",
        action_type="close_issue",
        risk="high",
        rule="close-anything",
        summary=f"close_issue: close {REPO}#{NUMBER} (completed)",
        details={
            "params": {"reason": "completed"},
            "reasoning": "The fix landed.",
            "requests": [
                {
                    "platform": "github",
                    "method": "PATCH",
                    "path": f"/repos/{REPO}/issues/{NUMBER}",
                    "body": {"state": "closed", "state_reason": "completed"},
                    "description": f"close {REPO}#{NUMBER} (completed)",
                }
            ],
            "target": {"platform": "github", "repo": REPO, "number": NUMBER},
            "roles": ["maintainer"],
            "checklist": ["CI green"],
            "justification_required": False,
        },
        status=ApprovalStatus.PENDING,
        created_at=T0,
        expires_at=T0 + 3600,
    )


def waiting_task(store: Store, tid: str = "t1") -> None:
    """A task stopped on its approval (as the executor leaves it)."""
    task = Task(tid, f"e-{tid}", "pr-review", "codex", TaskStatus.QUEUED, Priority.P2, T0, T0,
                workflow_id=f"task-{tid}")  # fmt: skip
    store.record_routing([], [task])
    store.mark_task_dispatched(tid, f"task-{tid}")
    assert drive(store, tid, TaskStatus.AWAITING_APPROVAL)


def comment(body: str, login: str, at: float = T0 + 60) -> tuple[Event, dict[str, Any]]:
    """The sample `issue_comment.created` delivery, said by `login` at `at`."""
    payload: dict[str, Any] = copy.deepcopy(
        json.loads((SAMPLE / "issue_comment.created.json").read_text())
    )
    payload["comment"]["body"] = body
    written = datetime.datetime.fromtimestamp(at, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    payload["comment"]["created_at"] = payload["comment"]["updated_at"] = written
    payload["comment"]["user"]["login"] = payload["sender"]["login"] = login
    raw = json.dumps(payload).encode()
    eid = new_id()
    event = Event(eid, "github", "github:issue_comment.created", eid, f"{REPO}#{NUMBER}", login,
                  T0 + 60, Priority.P2, {}, raw, eid)  # fmt: skip
    return event, payload


def posted(gh: PlatformServer, since: int = 0) -> list[str]:
    return [str(r.json()["body"]) for r in gh.since(since) if r.method == "POST"]


def channels(store: Store, writer: GitHubWriter) -> ApprovalChannels:
    decisions = Decisions(store, POLICIES, clock=lambda: T0 + 60)
    github = GitHubChannel(writer, POLICIES, bot_login="taskyard[bot]")
    return ApprovalChannels(store, decisions, [github])


def no_secret_outside_auth(requests: list[Recorded]) -> None:
    assert all(TOKEN not in r.everything_but_auth() for r in requests)
    assert all(r.headers.get("authorization", "").endswith(TOKEN) for r in requests)


async def test_announce_posts_one_documented_comment(
    gh: PlatformServer, writer: GitHubWriter
) -> None:
    asked = request()
    ref = await GitHubChannel(writer, POLICIES).announce(asked)
    assert [(r.method, r.path) for r in gh.requests] == [("POST", COMMENTS)]
    assert gh.problems == []
    [body] = posted(gh)
    assert body.endswith(f"<!-- taskyard:approval:{asked.id} -->")
    assert "**Who may decide:** maintainer (@octocat)" in body
    assert f"`PATCH /repos/{REPO}/issues/{NUMBER}`" in body
    # GitHub's documented answer (its example comment) identifies the post.
    assert ref == {
        "repo": REPO,
        "number": NUMBER,
        "thread": "codertocat/hello-world#1",
        "comment_id": 1,
        "url": "https://github.com/octocat/Hello-World/issues/1347#issuecomment-1",
    }
    no_secret_outside_auth(gh.requests)


async def test_decided_posts_the_result(gh: PlatformServer, writer: GitHubWriter) -> None:
    ref = {"repo": REPO, "number": NUMBER, "thread": "codertocat/hello-world#1"}
    done = replace(
        request(),
        status=ApprovalStatus.DENIED,
        decided_by="slack:U123",
        decided_via="slack",
        reason="not today",
        channels={"github": ref},
    )
    await GitHubChannel(writer, POLICIES).decided(done, DecisionOutcome(True, done), None)
    assert [(r.method, r.path) for r in gh.requests] == [("POST", COMMENTS)]
    assert gh.problems == []
    [body] = posted(gh)
    assert body.startswith("❌ denied by `slack:U123`: not today — the action will not be applied")


async def test_a_decision_through_the_channels(
    store: Store, gh: PlatformServer, writer: GitHubWriter
) -> None:
    waiting_task(store)
    yard = channels(store, writer)
    asked = await yard.announce(store.create_approval(request()))
    assert asked.channels["github"]["thread"] == "codertocat/hello-world#1"
    assert store.get_approval(asked.id).channels == asked.channels

    # Someone without the role: refused, recorded, and told why.
    mark = gh.mark()
    said = await yard.intercept(*comment("/approve ship it", "mallory"))
    assert said is not None and "refused (not authorised" in said
    assert store.get_approval(asked.id).status is ApprovalStatus.PENDING
    [attempt] = store.decision_attempts(asked.id)
    assert (attempt.actor, attempt.accepted) == ("github:mallory", False)
    assert attempt.why is not None and attempt.why.startswith("not authorised")
    [reply] = posted(gh, mark)
    assert reply.startswith(f"@mallory your `/approve` on approval `{asked.id}` did not count")

    # A maintainer, without naming the request: found by the thread, approved, told.
    mark = gh.mark()
    said = await yard.intercept(*comment("/approve looks fine", "octocat"))
    assert said == f"approval {asked.id}: approve by github:octocat accepted"
    stored = store.get_approval(asked.id)
    assert (stored.status, stored.decided_by, stored.decided_via, stored.reason) == (
        ApprovalStatus.APPROVED,
        "github:octocat",
        "github",
        "looks fine",
    )
    assert store.get_task("t1").status is TaskStatus.APPLYING
    [result] = posted(gh, mark)
    assert result.startswith("✅ approved by @octocat: looks fine — the action is being applied")

    # Again, naming it: already decided.
    mark = gh.mark()
    said = await yard.intercept(*comment(f"/APPROVE {asked.id} again", "octocat"))
    assert said is not None and "refused (already approved by github:octocat" in said
    [again] = posted(gh, mark)
    assert again.startswith("@octocat your `/approve`")
    assert "did not count: already approved by github:octocat (github)" in again

    assert [r.path for r in gh.requests] == [COMMENTS] * 4
    assert gh.problems == []
    no_secret_outside_auth(gh.requests)


async def test_comments_that_decide_nothing(
    store: Store, gh: PlatformServer, writer: GitHubWriter
) -> None:
    yard = channels(store, writer)
    event, payload = comment("Thanks! /approve from me", "octocat")
    assert await yard.intercept(event, payload) is None  # routed as usual
    event, payload = comment("/approve", "taskyard[bot]")
    assert await yard.intercept(event, payload) is None
    said = await yard.intercept(*comment("/approve", "octocat"))  # no request on this thread
    assert said == "github: a decision on no known approval request"
    assert gh.requests == []


async def test_a_decision_naming_nothing_never_decides_a_request_made_after_it(
    store: Store, gh: PlatformServer, writer: GitHubWriter
) -> None:
    """octocat read request A and wrote `/approve`; meanwhile A was decided and B, made after
    the comment, is now the only one pending. Before, the comment approved B unseen."""
    waiting_task(store, "t2")
    yard = channels(store, writer)
    later = replace(request("t2"), created_at=T0 + 120)
    unseen = await yard.announce(store.create_approval(later))
    mark = gh.mark()
    said = await yard.intercept(*comment("/approve ship it", "octocat", at=T0 + 60))
    assert said is not None and "was made after your comment" in said
    assert store.get_approval(unseen.id).status is ApprovalStatus.PENDING
    [reply] = posted(gh, mark)
    assert f"`{unseen.id}`" in reply and "name it to decide it" in reply
    # written after the request: it is the one pending there, and decided
    said = await yard.intercept(*comment("/approve ship it", "octocat", at=T0 + 180))
    assert said == f"approval {unseen.id}: approve by github:octocat accepted"


async def test_several_pending_on_one_thread_must_be_named(
    store: Store, gh: PlatformServer, writer: GitHubWriter
) -> None:
    waiting_task(store, "t1")
    waiting_task(store, "t2")
    yard = channels(store, writer)
    first = await yard.announce(store.create_approval(request("t1")))
    second = await yard.announce(store.create_approval(request("t2")))

    # `/approve` without an id where two are pending decides neither, and says which exist.
    mark = gh.mark()
    said = await yard.intercept(*comment("/approve ship it", "octocat"))
    assert said is not None and "2 requests are pending here" in said
    assert {store.get_approval(a.id).status for a in (first, second)} == {ApprovalStatus.PENDING}
    [reply] = posted(gh, mark)
    assert reply.startswith("@octocat your `/approve` on approval")
    assert f"`{first.id}`" in reply and f"`{second.id}`" in reply
    assert store.decision_attempts(first.id) == store.decision_attempts(second.id) == []

    # `/question` asks for more information: the request stays open and the question is shown.
    mark = gh.mark()
    said = await yard.intercept(*comment(f"/question {first.id} which tests ran?", "octocat"))
    assert said == f"approval {first.id}: more_info by github:octocat accepted"
    asked = store.get_approval(first.id)
    assert (asked.status, asked.question) == (ApprovalStatus.PENDING, "which tests ran?")
    assert [p for p in posted(gh, mark) if "asks for more information" in p] != []

    # Naming one decides that one; then the other is the only one pending and needs no id.
    assert "accepted" in str(await yard.intercept(*comment(f"/deny {first.id} no", "octocat")))
    said = await yard.intercept(*comment("/approve fine", "octocat"))
    assert said == f"approval {second.id}: approve by github:octocat accepted"
    assert store.get_approval(first.id).status is ApprovalStatus.DENIED
    assert store.get_approval(second.id).status is ApprovalStatus.APPROVED
    assert gh.problems == []


async def test_an_accepted_decision_starts_its_task_at_once(
    store: Store, gh: PlatformServer, writer: GitHubWriter
) -> None:
    waiting_task(store)
    yard = channels(store, writer)
    started: list[str] = []
    woken: list[bool] = []

    def resume() -> None:  # what the dispatcher's dispatch_tasks does with the handed-back task
        [task] = store.tasks_to_dispatch(10)
        started.append(task.id)

    yard.decisions.resume = resume
    yard.decisions.wake = lambda: woken.append(True)
    asked = await yard.announce(store.create_approval(request()))
    await yard.intercept(*comment(f"/approve {asked.id} fine", "octocat"))
    assert started == ["t1"] and woken == []  # started, no need to wait for a dispatcher look


async def test_a_failed_start_leaves_the_task_to_the_dispatcher(
    store: Store, gh: PlatformServer, writer: GitHubWriter
) -> None:
    waiting_task(store)
    yard = channels(store, writer)
    woken: list[bool] = []

    def resume() -> None:
        raise RuntimeError("queue down")

    yard.decisions.resume = resume
    yard.decisions.wake = lambda: woken.append(True)
    asked = await yard.announce(store.create_approval(request()))
    said = await yard.intercept(*comment(f"/approve {asked.id} fine", "octocat"))
    assert said == f"approval {asked.id}: approve by github:octocat accepted"
    assert woken == [True]
    assert store.get_task("t1").status is TaskStatus.APPLYING  # the dispatcher will find it
