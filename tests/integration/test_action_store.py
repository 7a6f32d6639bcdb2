"""The action half of the Store contract, on MemoryStore, SQLite and PostgreSQL, and the apply
step's crash recovery through a real database."""

from __future__ import annotations

import pytest

from taskyard.actions.apply import apply_actions
from taskyard.actions.fakes import Crash, FakePlanner, FakeWriter, WriterLookup
from taskyard.actions.models import Target, parse_actions
from taskyard.actions.policy import AllowListPolicy
from taskyard.records import ActionRecord, ActionStatus
from taskyard.store import Store

T0 = 1_700_000_000.0


def record(key: str, index: int = 0, task_id: str = "t1", **kw: object) -> ActionRecord:
    fields: dict[str, object] = {
        "key": key,
        "task_id": task_id,
        "index": index,
        "route": "pr-review",
        "type": "comment",
        "params": {"body": "héllo", "n": [1, 2]},
        "status": ActionStatus.PROPOSED,
        "created_at": T0,
        "updated_at": T0,
        "reasoning": "why",
    }
    fields.update(kw)
    return ActionRecord(**fields)  # type: ignore[arg-type]


def test_record_round_trips_every_field(store: Store) -> None:
    full = record(
        "t1.0.aa",
        status=ActionStatus.APPLIED,
        reason=None,
        requests=[{"platform": "github", "method": "POST", "path": "/x", "body": {"a": 1}}],
        sent=1,
        in_doubt=False,
        attempts=2,
        external_id="123",
        url="https://github.com/acme/api/issues/7#issuecomment-123",
    )
    assert store.record_action(full) == full
    assert store.get_action_by_key("t1.0.aa") == full
    assert store.get_action_by_key("nope") is None


def test_upsert_by_key_updates_the_outcome_and_keeps_the_first_fields(store: Store) -> None:
    store.record_action(record("t1.0.aa", in_doubt=True))
    later = record(
        "t1.0.aa",
        status=ActionStatus.FAILED,
        reason="github: 403",
        in_doubt=False,
        attempts=1,
        created_at=T0 + 50,
        updated_at=T0 + 60,
        params={"body": "changed?"},
    )
    stored = store.record_action(later)
    assert (stored.status, stored.reason, stored.in_doubt, stored.attempts) == (
        ActionStatus.FAILED,
        "github: 403",
        False,
        1,
    )
    assert (stored.created_at, stored.updated_at) == (T0, T0 + 60)
    assert stored.params == {"body": "héllo", "n": [1, 2]}  # the key fixes the content


def test_actions_of_a_task_in_index_order(store: Store) -> None:
    store.record_action(record("t1.1.bb", index=1))
    store.record_action(record("t1.0.aa", index=0))
    store.record_action(record("t1.0.cc", index=0, created_at=T0 + 1))  # a retry's new content
    store.record_action(record("t2.0.dd", task_id="t2"))
    assert [a.key for a in store.actions_of("t1")] == ["t1.0.aa", "t1.0.cc", "t1.1.bb"]
    assert store.actions_of("t3") == []


async def test_a_crash_mid_apply_is_recovered_from_the_database(store: Store) -> None:
    writer = FakeWriter("github").succeed().fail(Crash(), took_effect=True)
    raw = [
        {"type": "add_labels", "params": {"labels": ["bug"]}},
        {"type": "comment", "params": {"body": "Found it."}},
        {"type": "create_issue", "params": {"title": "Follow up"}},
    ]

    async def run() -> list[ActionRecord]:
        return await apply_actions(
            "t1",
            "pr-review",
            parse_actions("t1", raw),
            Target(platform="github", repo="acme/api", number=7),
            planner=FakePlanner(),
            writers={"github": writer},
            policy=AllowListPolicy({"pr-review": ["add_labels", "comment", "create_issue"]}),
            store=store,
            dry_run=False,
            lookup=WriterLookup(writer),
        )

    with pytest.raises(Crash):
        await run()  # the comment is posted, then the process dies
    in_flight = store.actions_of("t1")[1]
    assert (in_flight.status, in_flight.in_doubt) == (ActionStatus.PROPOSED, True)
    records = await run()
    assert [r.status for r in records] == [ActionStatus.APPLIED] * 3
    assert [r.path for r in writer.applied] == ["/add_labels", "/comment", "/create_issue"]
    assert records[1].external_id == "found-2"
    assert store.actions_of("t1") == records
