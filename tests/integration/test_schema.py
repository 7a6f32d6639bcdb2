"""schema.sql is exactly every migration applied, and migrating is idempotent and race-free."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from taskyard.store import SQLStore
from taskyard.store.sql import migrations

TABLES = {
    "events",
    "dedup_keys",
    "dead_letters",
    "workers",
    "schema_migrations",
    "tasks",
    "route_decisions",
    "actions",
    "approvals",
    "approval_decisions",
    "audit_log",
    "pr_fixes",
    "ideas",
    "idea_plans",
    "idea_tasks",
    "idea_events",
    "pr_pushes",
    "ci_failures",
}
ALL_VERSIONS = [version for version, _, _ in migrations()]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def new_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], SQLStore]]:
    """A factory of stores, each on its own empty database of the parametrized kind."""
    opened: list[SQLStore] = []

    def make() -> SQLStore:
        if request.param == "sqlite":
            url = f"sqlite:///{tmp_path / f'db{len(opened)}.db'}"
        else:
            url = request.getfixturevalue("make_pg_url")()
        opened.append(SQLStore.open(url))
        return opened[-1]

    yield make
    for store in opened:
        store.close()


def test_schema_sql_equals_all_migrations(new_store: Callable[[], SQLStore]) -> None:
    fresh, migrated = new_store(), new_store()
    fresh.create_fresh()
    assert migrated.migrate() == ALL_VERSIONS

    columns = migrated.backend.table_columns()
    assert set(columns) == TABLES
    assert ("body", "BYTEA" if migrated.backend.dialect == "postgresql" else "BLOB", False) in (
        columns["events"]
    )
    assert fresh.backend.table_columns() == columns
    assert "events_by_status" in migrated.backend.index_names()
    assert fresh.backend.index_names() == migrated.backend.index_names()
    assert fresh.migrate() == []  # schema.sql records every migration as applied


def test_migrate_twice_applies_nothing_the_second_time(new_store: Callable[[], SQLStore]) -> None:
    store = new_store()
    assert store.migrate() == ALL_VERSIONS
    before = store.backend.table_columns()
    assert store.migrate() == []
    assert store.backend.table_columns() == before
    with store.backend.transaction() as tx:
        rows = tx.fetchall("SELECT version FROM schema_migrations ORDER BY version")
    assert [r["version"] for r in rows] == ALL_VERSIONS


def test_concurrent_migrations_on_postgresql_apply_once(pg_url: str) -> None:
    stores = [SQLStore.open(pg_url) for _ in range(2)]
    barrier = threading.Barrier(len(stores))
    results: list[list[int] | BaseException] = [[] for _ in stores]

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = stores[i].migrate()
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    try:
        assert results.count(ALL_VERSIONS) == 1, results  # one migrates, the other waits
        assert results.count([]) == 1, results
        with stores[0].backend.transaction() as tx:
            rows = tx.fetchall("SELECT version FROM schema_migrations")
        assert sorted(r["version"] for r in rows) == ALL_VERSIONS
        assert set(stores[0].backend.table_columns()) == TABLES
    finally:
        for store in stores:
            store.close()
