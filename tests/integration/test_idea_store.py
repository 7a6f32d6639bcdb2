"""The ideas half of the Store contract (`taskyard.idea`), on MemoryStore, SQLite and
PostgreSQL: the state machine's guarded steps, each written with its event; the event log's
gapless per-idea order, under concurrent writers too; the outbox; plan versions; the tasks a
plan became, and what a re-plan keeps."""

from __future__ import annotations

import threading

import pytest

from taskyard.exceptions import NotFound
from taskyard.idea import EXECUTION, INTENT, PLAN, Idea, IdeaStatus, IdeaStep, IdeaTask
from taskyard.store import Store

T0 = 1_700_000_000.0


def an_idea(store: Store, idea_id: str = "i1") -> Idea:
    idea = Idea(idea_id, IdeaStatus.REGISTERED, {"goal": "faster search"},
                {"platform": "cli"}, "e1", T0, T0)  # fmt: skip
    return store.create_idea(idea, {"goal": "faster search"})


def test_an_idea_steps_through_its_states_each_with_its_event(store: Store) -> None:
    idea = an_idea(store)
    assert idea.status is IdeaStatus.REGISTERED and idea.last_seq == 1
    planning = store.idea_transition("i1", IdeaStep.PLAN, "planning", {"task": "t1"}, T0 + 1)
    assert planning is not None and planning.status is IdeaStatus.PLANNING
    assert store.idea_transition("i1", IdeaStep.RUN, "running", {}, T0 + 2) is None  # not yet
    ready = store.idea_transition(
        "i1", IdeaStep.PLAN_READY, "plan_ready", {"tasks": 4}, T0 + 3, plan_version=1
    )
    assert ready is not None and ready.plan_version == 1
    assert store.idea_transition("i1", IdeaStep.RUN, "running", {}, T0 + 4) is not None
    paused = store.idea_transition("i1", IdeaStep.PAUSE, "paused", {"why": "budget"}, T0 + 5)
    assert paused is not None and paused.paused_from == "running"
    back = store.idea_transition("i1", IdeaStep.RESUME, "resumed", {}, T0 + 6)
    assert back is not None and back.status is IdeaStatus.RUNNING and back.paused_from is None
    ended = store.idea_transition("i1", IdeaStep.CANCEL, "cancelled", {}, T0 + 7, reason="no")
    assert ended is not None and ended.status is IdeaStatus.CANCELLED and ended.reason == "no"
    assert store.idea_transition("i1", IdeaStep.RESUME, "resumed", {}, T0 + 8) is None
    events = store.idea_events("i1")
    assert [e.seq for e in events] == list(range(1, 8))
    assert [e.kind for e in events] == [
        "registered", "planning", "plan_ready", "running", "paused", "resumed", "cancelled"
    ]  # fmt: skip
    assert [e.subject for e in events][:4] == [INTENT, PLAN, PLAN, EXECUTION]
    assert store.get_idea("i1").last_seq == 7
    with pytest.raises(ValueError, match="may not set"):
        store.idea_transition("i1", IdeaStep.FAIL, "failed", {}, T0, status="completed")
    with pytest.raises(NotFound):
        store.get_idea("nope")


def test_the_outbox_gives_each_idea_s_events_in_order_until_published(store: Store) -> None:
    an_idea(store, "i1")
    an_idea(store, "i2")
    store.note_idea("i1", EXECUTION, "task_started", {"key": "A"}, T0 + 1)
    store.note_idea("i2", PLAN, "planning", {}, T0 + 2)
    waiting = store.unpublished_idea_events()
    assert [(e.idea_id, e.seq) for e in waiting] == [("i1", 1), ("i1", 2), ("i2", 1), ("i2", 2)]
    assert waiting[1].msg_id == "i1-2"
    store.mark_idea_events_published([("i1", 1), ("i1", 2)], T0 + 3)
    assert [(e.idea_id, e.seq) for e in store.unpublished_idea_events()] == [("i2", 1), ("i2", 2)]
    assert store.idea_events("i1")[0].published_at == T0 + 3
    assert store.idea_events("i1", after_seq=1)[0].kind == "task_started"


def test_concurrent_events_of_one_idea_are_numbered_without_gaps(store: Store) -> None:
    an_idea(store)

    def note(n: int) -> None:
        for k in range(10):
            store.note_idea("i1", EXECUTION, "tick", {"writer": n, "k": k}, T0 + k)

    threads = [threading.Thread(target=note, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [e.seq for e in store.idea_events("i1")] == list(range(1, 42))


def test_plans_are_versioned_and_a_replan_keeps_what_ran(store: Store) -> None:
    an_idea(store)
    store.add_idea_plan("i1", 1, {"tasks": []}, ["task B depends on missing X"], T0)
    store.add_idea_plan("i1", 2, {"tasks": [{"id": "A"}]}, [], T0 + 1)
    plans = store.idea_plans("i1")
    assert [(p["version"], p["errors"]) for p in plans] == [
        (1, ["task B depends on missing X"]),
        (2, []),
    ]
    first = [
        IdeaTask("i1", "A", "schema", (), 2, {"id": "A"}),
        IdeaTask("i1", "B", "api", ("A",), 2, {"id": "B"}),
        IdeaTask("i1", "C", "ui", ("A",), 2, {"id": "C"}),
    ]
    assert [t.key for t in store.set_idea_tasks("i1", first)] == ["A", "B", "C"]
    assert store.update_idea_task("i1", "A", task_id="t-A", branch="taskyard/idea-i1/A")
    assert not store.update_idea_task("i1", "A", task_id="t-A2")  # set once
    assert store.update_idea_task("i1", "A", integrated="c0ffee")
    replan = [
        IdeaTask("i1", "B", "api v2", ("A",), 3, {"id": "B"}),
        IdeaTask("i1", "D", "docs", ("B",), 3, {"id": "D"}),
    ]
    kept = {t.key: t for t in store.set_idea_tasks("i1", replan)}
    assert sorted(kept) == ["A", "B", "D"]  # C dropped (never ran); A ran: it stays
    assert (kept["A"].task_id, kept["A"].integrated) == ("t-A", "c0ffee")
    assert kept["B"].title == "api v2" and kept["B"].plan_version == 3


def test_an_idea_submitted_twice_is_stored_once(store: Store) -> None:
    first = an_idea(store)
    again = store.create_idea(
        Idea("i1", IdeaStatus.REGISTERED, {"goal": "other"}, {}, "e2", T0 + 9, T0 + 9), {}
    )
    assert again.shape == first.shape and len(store.idea_events("i1")) == 1
