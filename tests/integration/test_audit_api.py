"""`GET /api/tasks/{id}/audit` on MemoryStore, SQLite and PostgreSQL: a task's audit entries,
and whether the whole chain verifies, as the OpenAPI document describes them; an entry edited
or deleted in the database (raw SQL) is named, whichever task it belongs to."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from taskyard.audit import GENESIS
from taskyard.records import iso
from taskyard.store import SQLStore, Store
from taskyard.web import views
from tests.integration.api_harness import BEARER, Seeded, app_for, conforms, doc_path, seed

LOOPBACK = ("127.0.0.1", 50000)


@pytest.fixture
def seeded(store: Store, tmp_path: Path) -> Seeded:
    return seed(store, tmp_path / "workspaces", time.time())


@pytest.fixture
def client(store: Store, seeded: Seeded, tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(app_for(store, tmp_path), client=LOOPBACK, headers=BEARER) as c:
        yield c


def audit_of(client: TestClient, task_id: str, status: int = 200) -> Any:
    url = f"/api/tasks/{task_id}/audit"
    answer = client.get(url)
    assert answer.status_code == status, answer.text
    conforms(doc_path(url), "GET", status, answer.json())
    return answer.json()


def tamper(store: Store, *statements: str) -> None:
    """Change the audit log behind the store's back, as someone with the database could."""
    if not isinstance(store, SQLStore):
        pytest.skip("a raw SQL edit needs a SQL store")
    with store.backend.transaction() as tx:
        for sql in statements:
            tx.execute(sql)


def test_a_tasks_entries_oldest_first_and_the_chain_intact(
    client: TestClient, store: Store, seeded: Seeded
) -> None:
    task_id = seeded.tasks["succeeded"]
    answer = audit_of(client, task_id)
    everything = store.audit_entries()
    assert answer["task_id"] == task_id
    assert answer["chain"] == {"intact": True, "entries": 4, "problems": []}
    assert [e["seq"] for e in answer["entries"]] == [1, 3]
    first, third = answer["entries"]
    assert first == {
        "seq": 1,
        "at": iso(everything[0].at),
        "kind": "gate",
        "actor": "taskyard",
        "data": {"gate": "tests", "ok": True},
        "prev_hash": GENESIS,
        "hash": everything[0].hash,
        "hash_ok": True,
    }
    assert (third["kind"], third["actor"]) == ("verdict", "reviewer:codex")
    assert third["prev_hash"] == everything[1].hash  # the entry of no task between them
    assert third["hash_ok"] is True


def test_a_task_without_entries_has_none(client: TestClient, seeded: Seeded) -> None:
    answer = audit_of(client, seeded.tasks["queued"])
    assert answer["entries"] == []
    assert answer["chain"]["intact"] is True


def test_an_unknown_task_is_404(client: TestClient) -> None:
    answer = audit_of(client, "no-such-task", 404)
    assert "no-such-task" in answer["error"]


def test_an_entry_edited_in_the_database_is_named(
    client: TestClient, store: Store, seeded: Seeded
) -> None:
    tamper(store, 'UPDATE audit_log SET data = \'{"verdict":"fail"}\' WHERE seq = 3')
    answer = audit_of(client, seeded.tasks["succeeded"])
    assert answer["chain"]["intact"] is False
    [problem] = answer["chain"]["problems"]
    assert (problem["seq"], problem["kind"]) == (3, "edited")
    assert problem["message"].startswith("entry 3 was edited")
    assert [e["hash_ok"] for e in answer["entries"]] == [True, False]
    assert answer["entries"][1]["data"] == {"verdict": "fail"}  # what is stored, shown as is


def test_another_tasks_entry_deleted_breaks_every_tasks_chain(
    client: TestClient, store: Store, seeded: Seeded
) -> None:
    tamper(store, "DELETE FROM audit_log WHERE seq = 2")
    for name in ("succeeded", "queued"):
        chain = audit_of(client, seeded.tasks[name])["chain"]
        assert chain["intact"] is False
        assert chain["entries"] == 3
        assert [p["message"] for p in chain["problems"]] == [
            "entry 2 was deleted: the chain goes from entry 1 to entry 3"
        ]
    assert all(e["hash_ok"] for e in audit_of(client, seeded.tasks["succeeded"])["entries"])


def test_the_whole_log_is_read_a_page_at_a_time(
    client: TestClient, store: Store, seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    done = seeded.tasks["succeeded"]
    for i in range(5):
        store.append_audit("transition", done, "taskyard", {"i": i}, seeded.now + i)
    whole = audit_of(client, done)
    monkeypatch.setattr(views, "AUDIT_PAGE", 2)
    assert audit_of(client, done) == whole
    assert [e["seq"] for e in whole["entries"]] == [1, 3, 5, 6, 7, 8, 9]
    assert whole["chain"] == {"intact": True, "entries": 9, "problems": []}
