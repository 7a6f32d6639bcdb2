"""The task half of the Store contract, on MemoryStore, SQLite and PostgreSQL."""

from __future__ import annotations

import threading

import pytest

from taskyard.exceptions import NotFound
from taskyard.lifecycle import TRANSITIONS, Kind
from taskyard.models import Decision, Priority, RouteDecision, Task, TaskStatus
from taskyard.store import Store
from taskyard.store.base import TaskFilter
from tests.lifecycle_paths import drive

T0 = 1_700_000_000.0


def task(tid: str, event_id: str = "e1", route: str = "pr-review", **kw: object) -> Task:
    fields: dict[str, object] = {
        "id": tid,
        "event_id": event_id,
        "route": route,
        "agent": "codex",
        "status": TaskStatus.QUEUED,
        "priority": Priority.P2,
        "created_at": T0,
        "updated_at": T0,
        "workflow_id": f"task-{tid}",
        "spec": {"route": route, "agent": "codex", "prompt": "pr-review", "context": []},
    }
    fields.update(kw)
    return Task(**fields)  # type: ignore[arg-type]


def started(t: Task) -> RouteDecision:
    return RouteDecision(t.event_id, t.route, Decision.STARTED, None, t.id, T0)


def test_routing_is_stored_once_per_event_and_route(store: Store) -> None:
    first = task("t1")
    assert [t.id for t in store.record_routing([started(first)], [first])] == ["t1"]
    again = task("t2")  # the routing job ran again after a crash: a new id, same route
    found = store.record_routing([started(again)], [again])
    assert [t.id for t in found] == ["t1"]
    assert [d.task_id for d in store.decisions_for("e1")] == ["t1"]
    assert store.get_task("t1").spec["prompt"] == "pr-review"
    with pytest.raises(NotFound):
        store.get_task("t2")


def test_decisions_without_tasks_record_the_reason(store: Store) -> None:
    ignored = RouteDecision("e9", "*", Decision.IGNORED, "no route matches x:y.z", None, T0)
    assert store.record_routing([ignored], []) == []
    [d] = store.decisions_for("e9")
    assert (d.decision, d.reason) == (Decision.IGNORED, "no route matches x:y.z")


def test_dispatch_order_and_marking(store: Store) -> None:
    low, high = task("t1", route="a"), task("t2", route="b", priority=Priority.P0)
    store.record_routing([], [low, high])
    assert [t.id for t in store.tasks_to_dispatch(10)] == ["t2", "t1"]
    store.mark_task_dispatched("t2", "task-t2")
    store.mark_task_dispatched("t1", "some-other-workflow")  # stale hand-off: no effect
    assert [t.id for t in store.tasks_to_dispatch(10)] == ["t1"]


def test_a_transition_is_guarded_and_writes_json_columns(store: Store) -> None:
    store.record_routing([], [task("t1")])
    assert store.transition("t1", Kind.START_ATTEMPT, attempts=1)
    process = {"pid": 10, "pgid": 10, "start_time": 5}
    assert store.transition("t1", Kind.AGENT_STARTED, process=process)
    assert not store.transition("t1", Kind.AGENT_STARTED)  # running: not `preparing` any more
    store.transition(
        "t1",
        Kind.SUCCEED,
        usage={"input_tokens": 5, "output_tokens": 2},
        cost_usd=0.25,
        result={"success": True, "actions": []},
    )
    t = store.get_task("t1")
    assert t.status is TaskStatus.SUCCEEDED and t.attempts == 1
    assert t.process == {"pid": 10, "pgid": 10, "start_time": 5}
    assert t.usage["input_tokens"] == 5 and t.cost_usd == 0.25
    assert t.result == {"success": True, "actions": []}
    with pytest.raises(ValueError, match="may not set"):
        store.transition("t1", Kind.RETRY, route="x")


def test_cancel_and_retry(store: Store) -> None:
    store.record_routing([], [task("t1")])
    assert store.transition("t1", Kind.REQUEST_CANCEL, updated_at=T0 + 1)
    assert store.get_task("t1").cancel_requested
    assert not store.transition(  # not ended yet
        "t1", Kind.RETRY, workflow_id="task-t1-r1", updated_at=T0 + 2
    )
    store.transition("t1", Kind.CANCEL, finished_at=T0 + 3)
    assert not store.transition("t1", Kind.REQUEST_CANCEL, updated_at=T0 + 4)  # already ended
    assert store.transition("t1", Kind.RETRY, workflow_id="task-t1-r1", updated_at=T0 + 5)
    t = store.get_task("t1")
    assert (t.status, t.workflow_id, t.dispatched, t.cancel_requested) == (
        TaskStatus.QUEUED,
        "task-t1-r1",
        False,
        False,
    )
    assert [x.id for x in store.tasks_to_dispatch(5)] == ["t1"]
    with pytest.raises(NotFound):
        store.transition("nope", Kind.REQUEST_CANCEL, updated_at=T0)
    with pytest.raises(NotFound):
        store.transition("nope", Kind.RETRY, workflow_id="w", updated_at=T0)


def test_list_and_count(store: Store) -> None:
    store.record_routing(
        [],
        [
            task("t1", created_at=T0),
            task("t2", route="b", created_at=T0 + 1),
            task("t3", event_id="e2", created_at=T0 + 2),
        ],
    )
    assert drive(store, "t2", TaskStatus.FAILED)
    assert [t.id for t in store.list_tasks(TaskFilter())] == ["t3", "t2", "t1"]
    assert [t.id for t in store.list_tasks(TaskFilter(status=TaskStatus.FAILED))] == ["t2"]
    assert [t.id for t in store.list_tasks(TaskFilter(event_id="e2"))] == ["t3"]
    assert [t.id for t in store.list_tasks(TaskFilter(route="b"))] == ["t2"]
    assert store.count_tasks() == {"queued": 2, "failed": 1}


def test_one_winner_when_two_workers_route_the_same_event(store: Store) -> None:
    winners: list[list[str]] = []

    def route(n: int) -> None:
        t = task(f"t{n}")
        winners.append([x.id for x in store.record_routing([started(t)], [t])])

    threads = [threading.Thread(target=route, args=(n,)) for n in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len({tuple(w) for w in winners}) == 1
    assert len(store.list_tasks(TaskFilter(event_id="e1"))) == 1


# --- the lifecycle table, on every store --------------------------------------------------


@pytest.mark.parametrize("kind", list(Kind))
def test_a_transition_changes_a_task_only_from_its_states(store: Store, kind: Kind) -> None:
    step = TRANSITIONS[kind]
    for status in TaskStatus:
        tid = f"t-{status}"
        store.record_routing([], [task(tid, event_id=f"e-{status}")])
        assert drive(store, tid, status)
        before = store.get_task(tid)
        minted = {"workflow_id": f"{tid}-{kind}"} if step.mints_workflow else {}
        changed = store.transition(tid, kind, updated_at=T0 + 9, **minted)
        after = store.get_task(tid)
        assert changed is (status in step.sources), status
        if not changed:
            assert after == before, status
            continue
        assert after.status is (step.target or status)
        assert {c: getattr(after, c) for c in step.fixed} == dict(step.fixed)
        assert after.workflow_id == minted.get("workflow_id", before.workflow_id)
        assert after.updated_at == T0 + 9
