"""The approval half of the Store contract, on MemoryStore, SQLite and PostgreSQL: requests,
decisions (one winner of a race), the task they hold and resume, expiry, reminders, archive."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from taskyard.exceptions import NotFound
from taskyard.models import Priority, Task, TaskStatus
from taskyard.records import (
    Approval,
    ApprovalStatus,
    Decision,
    DecisionAttempt,
    DecisionOutcome,
)
from taskyard.store import SQLStore, Store
from taskyard.store.backends import SqliteBackend
from taskyard.store.base import TaskFilter
from tests.lifecycle_paths import drive

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z
DAY = 86_400.0


def approval(aid: str, action_key: str = "t1.0.aa", task_id: str = "t1", **kw: Any) -> Approval:
    fields: dict[str, Any] = {
        "id": aid,
        "task_id": task_id,
        "action_key": action_key,
        "route": "pr-review",
        "action_type": "merge_pr",
        "risk": "high",
        "rule": "merge-main",
        "summary": "merge acme/api#7 into main",
        "details": {"params": {"number": 7}, "checklist": ["CI green"], "roles": ["lead"]},
        "status": ApprovalStatus.PENDING,
        "created_at": T0,
        "expires_at": T0 + DAY,
    }
    fields.update(kw)
    return Approval(**fields)


def waiting_task(store: Store, tid: str = "t1") -> Task:
    """A task stopped on its approvals, already handed to the queue once."""
    t = Task(
        id=tid,
        event_id=f"e-{tid}",
        route="pr-review",
        agent="codex",
        status=TaskStatus.QUEUED,
        priority=Priority.P2,
        created_at=T0,
        updated_at=T0,
        workflow_id=f"task-{tid}",
    )
    store.record_routing([], [t])
    store.mark_task_dispatched(tid, f"task-{tid}")
    assert drive(store, tid, TaskStatus.AWAITING_APPROVAL)
    return store.get_task(tid)


def decide(
    store: Store,
    aid: str,
    decision: Decision = Decision.APPROVE,
    actor: str = "github:octocat",
    via: str = "github",
    reason: str | None = "looks right",
    now: float = T0 + 60,
    workflow_id: str = "task-t1-a1",
) -> DecisionOutcome:
    return store.decide_approval(aid, decision, actor, via, reason, now, workflow_id)


def test_a_request_round_trips_every_field(store: Store) -> None:
    full = approval(
        "a1",
        status=ApprovalStatus.DENIED,
        details={"requests": [{"method": "PUT", "path": "/merge"}], "note": "héllo"},
        channels={"slack": {"channel": "C1", "ts": "1700000000.000100"}},
        remind_at=T0 + 3600,
        reminded_at=T0 + 3601,
        question="which branch?",
        decided_at=T0 + 4000,
        decided_by="slack:U123",
        decided_via="slack",
        reason="not on a Friday",
        archived=True,
    )
    assert store.create_approval(full) == full
    assert store.get_approval("a1") == full
    with pytest.raises(NotFound, match="no approval nope"):
        store.get_approval("nope")


def test_one_pending_request_per_action(store: Store) -> None:
    first = store.create_approval(approval("a1"))
    again = store.create_approval(approval("a2", created_at=T0 + 5))
    assert again == first  # nothing new stored
    with pytest.raises(NotFound):
        store.get_approval("a2")
    other = store.create_approval(approval("a3", action_key="t1.1.bb"))
    assert other.id == "a3"
    assert decide(store, "a1").accepted
    renewed = store.create_approval(approval("a2", created_at=T0 + 5))  # decided: a new one
    assert renewed.id == "a2" and renewed.status is ApprovalStatus.PENDING
    latest = store.latest_approval_for("t1.0.aa")
    assert latest is not None and latest.id == "a2"
    assert store.latest_approval_for("t9.0.zz") is None


def test_racing_requests_for_one_action_store_one(store: Store) -> None:
    got = race(4, lambda n: store.create_approval(approval(f"a{n}")).id)
    assert len(set(got)) == 1
    assert len(store.list_approvals()) == 1


def test_list_newest_first_with_filters(store: Store) -> None:
    store.create_approval(approval("a1", created_at=T0))
    store.create_approval(approval("a2", action_key="t1.1.bb", created_at=T0 + 1))
    store.create_approval(approval("a3", "t2.0.aa", task_id="t2", created_at=T0 + 2))
    store.create_approval(
        approval(
            "a4",
            "t2.1.bb",
            task_id="t2",
            created_at=T0 + 3,
            status=ApprovalStatus.EXPIRED,
            decided_at=T0 + 4,
            archived=True,
        )
    )
    decide(store, "a2", Decision.DENY)
    assert ids(store.list_approvals()) == ["a3", "a2", "a1"]
    assert ids(store.list_approvals(include_archived=True)) == ["a4", "a3", "a2", "a1"]
    assert ids(store.list_approvals(ApprovalStatus.PENDING)) == ["a3", "a1"]
    assert ids(store.list_approvals(ApprovalStatus.DENIED)) == ["a2"]
    assert ids(store.list_approvals(task_id="t2", include_archived=True)) == ["a4", "a3"]
    assert ids(store.list_approvals(ApprovalStatus.PENDING, task_id="t1")) == ["a1"]
    assert ids(store.list_approvals(limit=2)) == ["a3", "a2"]


def test_channels_merge_by_platform_and_find_the_request(store: Store) -> None:
    store.create_approval(approval("a1"))
    store.set_approval_channels("a1", {"linear": {"issue_id": "LIN-1", "url": "https://l/1"}})
    github = {"repo": "acme/api", "number": 7, "comment_id": 123, "url": "https://g/7"}
    merged = store.set_approval_channels("a1", {"github": github})
    assert merged.channels == {
        "linear": {"issue_id": "LIN-1", "url": "https://l/1"},
        "github": github,
    }
    slack = {"channel": "C1", "ts": "1700000000.000100"}
    replaced = store.set_approval_channels("a1", {"github": {"comment_id": "456"}, "slack": slack})
    assert replaced.channels["github"] == {"comment_id": "456"}  # a platform's entry whole
    assert store.get_approval("a1") == replaced

    assert found(store, "github", "comment_id", "456") == "a1"
    assert found(store, "slack", "ts", "1700000000.000100") == "a1"
    assert found(store, "linear", "issue_id", "LIN-1") == "a1"
    assert found(store, "github", "comment_id", "123") is None  # replaced
    assert found(store, "slack", "channel", "LIN-1") is None  # another platform's value
    assert found(store, "linear", "issue_id", "LIN-%") is None  # no pattern matching
    with pytest.raises(NotFound):
        store.set_approval_channels("nope", {"slack": slack})


def test_find_by_channel_takes_the_newest_and_numbers_match_their_text(store: Store) -> None:
    store.create_approval(approval("a1", channels={"github": {"comment_id": 123}}))
    decide(store, "a1", Decision.DENY)
    store.create_approval(
        approval("a2", created_at=T0 + 10, channels={"github": {"comment_id": 123}})
    )
    store.create_approval(approval("a3", "t1.1.bb", channels={"slack": {"ts": 'a_b%c\\"d"é'}}))
    assert found(store, "github", "comment_id", "123") == "a2"
    assert found(store, "slack", "ts", 'a_b%c\\"d"é') == "a3"
    assert found(store, "slack", "ts", "aXb%c") is None


def test_racing_channel_updates_keep_both_platforms(
    store: Store, other_store: Callable[[], Store]
) -> None:
    store.create_approval(approval("a1"))
    stores = [store, other_store()]
    race(2, lambda n: stores[n].set_approval_channels("a1", {f"p{n}": {"id": str(n)}}))
    assert store.get_approval("a1").channels == {"p0": {"id": "0"}, "p1": {"id": "1"}}


def test_approve_resumes_the_waiting_task(store: Store) -> None:
    waiting_task(store)
    store.create_approval(approval("a1"))
    assert store.tasks_to_dispatch(10) == []
    out = decide(store, "a1", reason="CI is green", workflow_id="task-t1-a1")
    assert (out.accepted, out.why, out.resumed) == (True, None, True)
    a = out.approval
    assert (a.status, a.decided_at, a.decided_by, a.decided_via, a.reason) == (
        ApprovalStatus.APPROVED,
        T0 + 60,
        "github:octocat",
        "github",
        "CI is green",
    )
    assert store.get_approval("a1") == a
    t = store.get_task("t1")
    assert (t.status, t.workflow_id, t.dispatched, t.updated_at) == (
        TaskStatus.APPLYING,
        "task-t1-a1",
        False,
        T0 + 60,
    )
    assert ids(store.tasks_to_dispatch(10)) == ["t1"]  # the dispatcher hands it out again
    assert store.decision_attempts("a1") == [
        DecisionAttempt(
            "a1", T0 + 60, "github", "github:octocat", Decision.APPROVE, True, "CI is green"
        )
    ]


def test_a_second_decision_is_refused_and_says_who_decided(store: Store) -> None:
    waiting_task(store)
    store.create_approval(approval("a1"))
    denied = decide(store, "a1", Decision.DENY, reason="not on a Friday")
    assert denied.accepted and denied.resumed
    assert denied.approval.status is ApprovalStatus.DENIED
    late = decide(store, "a1", Decision.APPROVE, "slack:U1", "slack", None, T0 + 70)
    assert (late.accepted, late.resumed) == (False, False)
    assert late.why == "already denied by github:octocat (github)"
    assert late.approval == denied.approval  # unchanged
    assert [(x.actor, x.decision, x.accepted, x.why) for x in store.decision_attempts("a1")] == [
        ("github:octocat", Decision.DENY, True, "not on a Friday"),
        ("slack:U1", Decision.APPROVE, False, "already denied by github:octocat (github)"),
    ]


def test_more_info_keeps_the_request_pending(store: Store) -> None:
    waiting_task(store)
    store.create_approval(approval("a1"))
    out = decide(store, "a1", Decision.MORE_INFO, reason="which migration runs?")
    assert (out.accepted, out.resumed, out.approval.status) == (
        True,
        False,
        ApprovalStatus.PENDING,
    )
    assert store.get_approval("a1").question == "which migration runs?"
    assert store.get_task("t1").status is TaskStatus.AWAITING_APPROVAL
    assert decide(store, "a1", now=T0 + 120).resumed
    assert [x.decision for x in store.decision_attempts("a1")] == [
        Decision.MORE_INFO,
        Decision.APPROVE,
    ]


def test_the_task_waits_for_all_its_pending_requests(store: Store) -> None:
    waiting_task(store)
    store.create_approval(approval("a1"))
    store.create_approval(approval("a2", action_key="t1.1.bb"))
    first = decide(store, "a1")
    assert first.accepted and not first.resumed
    assert store.get_task("t1").status is TaskStatus.AWAITING_APPROVAL
    assert decide(store, "a2", Decision.DENY, now=T0 + 90).resumed
    assert store.get_task("t1").status is TaskStatus.APPLYING


def test_a_task_not_waiting_is_left_alone(store: Store) -> None:
    waiting_task(store)
    drive(store, "t1", TaskStatus.CANCELLED)
    store.create_approval(approval("a1"))
    out = decide(store, "a1")
    assert out.accepted and not out.resumed
    assert store.get_task("t1").status is TaskStatus.CANCELLED
    # a request whose task the store does not know is decided all the same
    store.create_approval(approval("a2", "t9.0.aa", task_id="t9"))
    assert decide(store, "a2").accepted


def test_a_decision_after_expiry_is_refused(store: Store) -> None:
    waiting_task(store)
    store.create_approval(approval("a1", expires_at=T0 + 600))
    out = decide(store, "a1", now=T0 + 600)
    assert (out.accepted, out.resumed) == (False, False)
    assert out.why == "expired at 2023-11-14T22:23:20Z"
    assert out.approval.status is ApprovalStatus.PENDING  # the sweep expires it
    asked = decide(store, "a1", Decision.MORE_INFO, reason="?", now=T0 + 700)
    assert not asked.accepted and asked.approval.question is None
    assert [x.accepted for x in store.decision_attempts("a1")] == [False, False]
    assert store.get_task("t1").status is TaskStatus.AWAITING_APPROVAL


def test_decide_checks_its_arguments(store: Store) -> None:
    store.create_approval(approval("a1"))
    with pytest.raises(NotFound):
        decide(store, "nope")
    with pytest.raises(ValueError, match="expiry"):
        decide(store, "a1", Decision.EXPIRE)
    assert store.decision_attempts("a1") == []


def test_expiry_sweep_expires_and_resumes(store: Store) -> None:
    waiting_task(store)
    waiting_task(store, "t2")
    store.create_approval(approval("a1", expires_at=T0 + 100))
    store.create_approval(approval("a2", "t1.1.bb", expires_at=T0 + 500))
    store.create_approval(approval("a3", "t2.0.aa", task_id="t2", expires_at=T0 + 50))
    store.create_approval(approval("a4", "t2.1.bb", task_id="t2", expires_at=T0 + 50))
    decide(store, "a4", Decision.DENY, now=T0 + 10)

    expired = store.expire_approvals(T0 + 100, lambda tid: f"task-{tid}-x")
    assert sorted(ids(expired)) == ["a1", "a3"]
    a1 = store.get_approval("a1")
    assert (a1.status, a1.decided_at, a1.decided_by, a1.decided_via) == (
        ApprovalStatus.EXPIRED,
        T0 + 100,
        "taskyard",
        "expiry",
    )
    assert store.decision_attempts("a1") == [
        DecisionAttempt("a1", T0 + 100, "expiry", "taskyard", Decision.EXPIRE, True)
    ]
    assert store.get_task("t1").status is TaskStatus.AWAITING_APPROVAL  # a2 still pending
    t2 = store.get_task("t2")
    assert (t2.status, t2.workflow_id, t2.dispatched) == (TaskStatus.APPLYING, "task-t2-x", False)
    assert store.get_approval("a4").status is ApprovalStatus.DENIED  # decided: not expired

    assert decide(store, "a1", now=T0 + 101).why == "expired at 2023-11-14T22:15:00Z"
    assert store.expire_approvals(T0 + 101, lambda tid: "unused") == []
    [a2] = store.expire_approvals(T0 + 500, lambda tid: f"task-{tid}-y")
    assert a2.id == "a2"
    assert store.get_task("t1").workflow_id == "task-t1-y"
    assert sorted(ids(store.tasks_to_dispatch(10))) == ["t1", "t2"]


def _waits_for(aid: str) -> str:
    return f"waiting for approval {aid} (resubmitted)"


def test_a_resubmit_makes_the_task_wait_again_with_the_new_request(store: Store) -> None:
    waiting_task(store)
    store.create_approval(approval("a1", expires_at=T0 + 100))
    store.expire_approvals(T0 + 100, lambda tid: f"task-{tid}-x")
    drive(store, "t1", TaskStatus.EXPIRED)
    again = approval("a2", created_at=T0 + 200, expires_at=T0 + 200 + DAY)
    stored = store.resubmit_approval(again, _waits_for, T0 + 200)
    assert stored == again
    task = store.get_task("t1")
    assert (task.status, task.reason, task.finished_at, task.updated_at) == (
        TaskStatus.AWAITING_APPROVAL,
        "waiting for approval a2 (resubmitted)",
        None,
        T0 + 200,
    )
    # asked again while a2 is pending: a2 stands for it, and nothing new is stored
    assert store.resubmit_approval(approval("a3"), _waits_for, T0 + 300) == stored
    assert ids(store.list_approvals(ApprovalStatus.PENDING)) == ["a2"]
    assert store.get_task("t1").reason == "waiting for approval a2 (resubmitted)"


def test_a_resubmit_for_a_task_no_longer_waiting_stores_no_request(store: Store) -> None:
    waiting_task(store)
    store.create_approval(approval("a1", expires_at=T0 + 100))
    store.expire_approvals(T0 + 100, lambda tid: f"task-{tid}-x")  # t1 applies again
    before = store.get_task("t1")
    assert store.resubmit_approval(approval("a2"), _waits_for, T0 + 200) is None
    assert ids(store.list_approvals(include_archived=True)) == ["a1"]
    assert store.get_task("t1") == before


def test_tasks_are_found_by_the_workflow_id_they_run_under(store: Store) -> None:
    waiting_task(store)
    waiting_task(store, "t2")
    assert ids(store.list_tasks(TaskFilter(workflow_id="task-t2"))) == ["t2"]
    assert store.list_tasks(TaskFilter(workflow_id="task-t9")) == []


def test_reminders_are_due_once(store: Store) -> None:
    store.create_approval(approval("a1", remind_at=T0 + 3600))
    store.create_approval(approval("a2", "t1.1.bb", remind_at=T0 + 7200))
    store.create_approval(approval("a3", "t1.2.cc"))  # no reminder
    store.create_approval(approval("a4", "t1.3.dd", remind_at=T0 + 60))
    decide(store, "a4", now=T0 + 30)
    assert store.due_reminders(T0 + 3599) == []
    assert ids(store.due_reminders(T0 + 3600)) == ["a1"]
    store.mark_reminded("a1", T0 + 3601)
    assert store.get_approval("a1").reminded_at == T0 + 3601
    assert ids(store.due_reminders(T0 + 9000)) == ["a2"]
    with pytest.raises(NotFound):
        store.mark_reminded("nope", T0)


def test_archive_takes_only_old_expired_requests(store: Store) -> None:
    store.create_approval(approval("a1", expires_at=T0 + 10))
    store.create_approval(approval("a2", "t1.1.bb", expires_at=T0 + 10))
    store.create_approval(approval("a3", "t1.2.cc", expires_at=T0 + DAY))
    store.create_approval(approval("a4", "t1.3.dd", expires_at=T0 + DAY))
    decide(store, "a2", Decision.DENY, now=T0 + 5)
    store.expire_approvals(T0 + 20, lambda tid: "w")  # a1
    store.expire_approvals(T0 + DAY, lambda tid: "w")  # a3, a4
    assert store.archive_approvals(T0 + 21) == 1
    assert store.get_approval("a1").archived
    assert ids(store.list_approvals()) == ["a4", "a3", "a2"]
    assert store.archive_approvals(T0 + 21) == 0
    assert store.archive_approvals(T0 + 2 * DAY) == 2
    assert ids(store.list_approvals()) == ["a2"]  # a denial is kept in view
    assert len(store.list_approvals(include_archived=True)) == 4


def test_stats_count_pending_requests_by_risk(store: Store) -> None:
    assert store.approval_stats(T0) == {}
    store.create_approval(approval("a1", risk="high", created_at=T0))
    store.create_approval(approval("a2", "t1.1.bb", risk="high", created_at=T0 + 100))
    store.create_approval(approval("a3", "t1.2.cc", risk="critical", created_at=T0 + 200))
    store.create_approval(approval("a4", "t1.3.dd", risk="low", created_at=T0))
    decide(store, "a4", now=T0 + 1)
    assert store.approval_stats(T0 + 300) == {"high": (2, 300.0), "critical": (1, 100.0)}


def test_attempts_refused_outside_the_store_are_kept_in_order(store: Store) -> None:
    store.create_approval(approval("a1"))
    forged = DecisionAttempt("a1", T0 + 5, "slack", "slack:U9", Decision.APPROVE, False, "forged")
    store.record_decision_attempt(forged)
    decide(store, "a1", now=T0 + 9)
    denied = DecisionAttempt("a1", T0 + 7, "github", "github:x", Decision.DENY, False, "not a lead")
    store.record_decision_attempt(denied)
    assert [x.at for x in store.decision_attempts("a1")] == [T0 + 5, T0 + 7, T0 + 9]
    assert store.decision_attempts("a1")[1] == denied
    assert store.decision_attempts("a2") == []


def test_racing_decisions_one_wins(store: Store) -> None:
    waiting_task(store)
    store.create_approval(approval("a1"))
    choices = [Decision.APPROVE, Decision.DENY] * 2
    outcomes = race(4, lambda n: decide(store, "a1", choices[n], f"cli:u{n}", "cli", None))
    assert_one_winner(store, outcomes)


def test_racing_decisions_on_separate_connections_one_wins(
    store_url: str, store_pair: Callable[[str], tuple[Store, Store]]
) -> None:
    stores = store_pair(store_url)
    for round_ in range(5):
        one_racing_decision(stores, f"t{round_}")


def one_racing_decision(stores: tuple[Store, Store], tid: str) -> None:
    waiting_task(stores[0], tid)
    stores[0].create_approval(approval(f"{tid}-a", f"{tid}.0.aa", task_id=tid))
    choices = [Decision.APPROVE, Decision.DENY]
    outcomes = race(
        2, lambda n: decide(stores[n], f"{tid}-a", choices[n], f"cli:u{n}", "cli", None)
    )
    assert_one_winner(stores[1], outcomes)


def test_racing_decisions_on_two_requests_of_a_task_resume_it_once(
    store_url: str, store_pair: Callable[[str], tuple[Store, Store]]
) -> None:
    stores = store_pair(store_url)
    for round_ in range(5):
        one_race_of_two_requests(stores, f"t{round_}")


def one_race_of_two_requests(stores: tuple[Store, Store], tid: str) -> None:
    waiting_task(stores[0], tid)
    for n in range(2):
        stores[0].create_approval(approval(f"{tid}-a{n}", f"{tid}.{n}.aa", task_id=tid))
    outcomes = race(2, lambda n: decide(stores[n], f"{tid}-a{n}"))
    assert all(o.accepted for o in outcomes)
    assert sum(o.resumed for o in outcomes) == 1  # the later one, seeing the other's
    assert stores[1].get_task(tid).status is TaskStatus.APPLYING


def test_the_sweep_racing_a_decision_resumes_the_task_once(
    store_url: str, store_pair: Callable[[str], tuple[Store, Store]]
) -> None:
    stores = store_pair(store_url)
    for round_ in range(5):
        one_race_of_sweep_and_decision(stores, f"t{round_}")


def one_race_of_sweep_and_decision(stores: tuple[Store, Store], tid: str) -> None:
    waiting_task(stores[0], tid)
    stores[0].create_approval(approval(f"{tid}-a0", f"{tid}.0.aa", task_id=tid, expires_at=T0))
    stores[0].create_approval(approval(f"{tid}-a1", f"{tid}.1.aa", task_id=tid))
    jobs: list[Callable[[], object]] = [
        lambda: stores[0].expire_approvals(T0 + 60, lambda t: f"task-{t}-x"),
        lambda: decide(stores[1], f"{tid}-a1"),
    ]
    race(2, lambda n: jobs[n]())
    assert stores[1].get_task(tid).status is TaskStatus.APPLYING
    statuses = {a.status for a in stores[1].list_approvals(task_id=tid)}
    assert statuses == {ApprovalStatus.EXPIRED, ApprovalStatus.APPROVED}


# --- helpers ------------------------------------------------------------------------------


@pytest.fixture
def store_pair() -> Iterator[Callable[[str], tuple[Store, Store]]]:
    """Two `SQLStore`s on one database (two connections, as two processes would have)."""
    opened: list[SQLStore] = []

    def make(url: str) -> tuple[Store, Store]:
        opened.extend([SQLStore.open(url), SQLStore.open(url)])
        opened[-2].migrate()
        return opened[-2], opened[-1]

    yield make
    for s in opened:
        s.close()


@pytest.fixture
def other_store(store: Store, request: pytest.FixtureRequest) -> Iterator[Callable[[], Store]]:
    """Another handle on the `store` fixture's data: a second SQLStore on the same database
    (the same MemoryStore for memory)."""
    opened: list[SQLStore] = []

    def make() -> Store:
        if not isinstance(store, SQLStore):
            return store
        backend = store.backend
        if isinstance(backend, SqliteBackend):
            url = f"sqlite:///{backend.path}"
        else:
            url = request.getfixturevalue("pg_url")  # the one the `store` fixture opened
        opened.append(SQLStore.open(url))
        return opened[-1]

    yield make
    for s in opened:
        s.close()


def race(n: int, job: Callable[[int], Any]) -> list[Any]:
    """Run `job(0)` … `job(n-1)` in threads released together; re-raise the first error."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = job(i)
        except Exception as exc:  # noqa: BLE001 - re-raised below
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for r in results:
        if isinstance(r, BaseException):
            raise r
    return results


def assert_one_winner(store: Store, outcomes: list[DecisionOutcome]) -> None:
    winners = [o for o in outcomes if o.accepted]
    assert len(winners) == 1, outcomes
    won = winners[0].approval
    assert [o.resumed for o in outcomes].count(True) == 1
    for o in outcomes:
        if not o.accepted:
            assert o.why == f"already {won.status} by {won.decided_by} (cli)"
    stored = store.get_approval(won.id)
    assert stored == won
    attempts = store.decision_attempts(won.id)
    assert sorted(a.accepted for a in attempts) == [False] * (len(outcomes) - 1) + [True]
    assert store.get_task(stored.task_id).status is TaskStatus.APPLYING


def ids(items: list[Any]) -> list[str]:
    return [x.id for x in items]


def found(store: Store, platform: str, key: str, value: str) -> str | None:
    a = store.find_approval_by_channel(platform, key, value)
    return a.id if a is not None else None
