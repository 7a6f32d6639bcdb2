"""Migration 7 gives the tasks that ended before it an `ending`, read once from their status
and reason, so a retry of an old task whose actions failed still re-applies them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from taskyard.lifecycle import EndingKind
from taskyard.models import Priority, Task, TaskStatus
from taskyard.records import SkipKind
from taskyard.store import SQLStore
from taskyard.store import sql as sqlstore
from taskyard.store.rows import task_row

T0 = 1_700_000_000.0
BEFORE_ENDING = 6
# name: (status, reason) as a version-6 database kept them
OLD_TASKS = {
    "actions": (TaskStatus.FAILED, "actions: 1 of 2 failed"),
    "agent": (TaskStatus.FAILED, "agent exited 1"),
    "done": (TaskStatus.SUCCEEDED, None),
    "late": (TaskStatus.EXPIRED, "approval expired"),
    "waiting": (TaskStatus.QUEUED, None),
}


# A task as a version-6 database takes it (`parent_id` came with version 11).
OLD_INSERT = (
    "INSERT INTO tasks (id, event_id, route, agent, status, priority, created_at, updated_at, "
    "workflow_id, spec, attempts, cancel_requested, dispatched) VALUES (:id, :event_id, :route, "
    ":agent, :status, :priority, :created_at, :updated_at, :workflow_id, :spec, 0, 0, 0)"
)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def old_store(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SQLStore]:
    """A store whose database is at schema version 6, holding `OLD_TASKS`."""
    url = (
        f"sqlite:///{tmp_path / 'old.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("make_pg_url")()
    )
    store = SQLStore.open(url)
    every = sqlstore.migrations()
    with monkeypatch.context() as patch:
        patch.setattr(sqlstore, "migrations", lambda: [m for m in every if m[0] <= BEFORE_ENDING])
        assert store.migrate() == list(range(1, BEFORE_ENDING + 1))
    with store.backend.transaction() as tx:
        for name, (status, reason) in OLD_TASKS.items():
            old = Task(name, f"e-{name}", "r", "a", TaskStatus.QUEUED, Priority.P2, T0, T0, "wf")
            row = {k: v for k, v in task_row(old).items() if k != "parent_id"}  # version 11's
            tx.execute(OLD_INSERT, row)
            tx.execute(
                "UPDATE tasks SET status = :status, reason = :reason WHERE id = :id",
                {"status": str(status), "reason": reason, "id": name},
            )
    yield store
    store.close()


def test_a_task_whose_actions_failed_ends_as_actions_failed(old_store: SQLStore) -> None:
    assert old_store.migrate() == [v for v, _, _ in sqlstore.migrations() if v > BEFORE_ENDING]
    endings = {name: old_store.get_task(name).ending for name in OLD_TASKS}
    assert endings == {
        "actions": EndingKind.ACTIONS_FAILED,
        "agent": EndingKind.FAILED,
        "done": EndingKind.SUCCEEDED,
        "late": EndingKind.APPROVAL_EXPIRED,
        "waiting": None,
    }


# key: (status, reason) of actions as a version-7 database kept them → their kind after 8
OLD_ACTIONS = {
    "tool": ("skipped", "already applied through the comment tool (k0)", SkipKind.ALREADY_APPLIED),
    "bad": ("skipped", "invalid params for comment: body: required", SkipKind.INVALID),
    "typo": ("skipped", "unknown action type 'comentt'", SkipKind.INVALID),
    "no": ("skipped", "denied by alice via slack: not now", SkipKind.DENIED),
    "list": ("skipped", "comment is not allowed by route r's allow-list", SkipKind.NOT_ALLOWED),
    "sent": ("applied", None, None),
}


@pytest.mark.parametrize("db", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_skipped_actions_get_the_kind_their_reason_gave(
    db: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = (
        f"sqlite:///{tmp_path / 'old.db'}"
        if db == "sqlite"
        else request.getfixturevalue("make_pg_url")()
    )
    store = SQLStore.open(url)
    every = sqlstore.migrations()
    try:
        with monkeypatch.context() as patch:
            patch.setattr(sqlstore, "migrations", lambda: [m for m in every if m[0] <= 7])
            store.migrate()
        with store.backend.transaction() as tx:
            for key, (status, reason, _) in OLD_ACTIONS.items():
                tx.execute(
                    "INSERT INTO actions (key, task_id, idx, route, type, params, reasoning,"
                    " status, reason, requests, created_at, updated_at) VALUES (:key, 't', 0,"
                    " 'r', 'comment', '{}', '', :status, :reason, '[]', 1, 1)",
                    {"key": key, "status": status, "reason": reason},
                )
        with monkeypatch.context() as patch:
            patch.setattr(sqlstore, "migrations", lambda: [m for m in every if m[0] <= 8])
            assert store.migrate() == [8]
        kinds = {key: store.get_action_by_key(key).skipped_as for key in OLD_ACTIONS}  # type: ignore[union-attr]
        assert kinds == {key: kind for key, (_, _, kind) in OLD_ACTIONS.items()}
    finally:
        store.close()
