from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
PG_SERVER = "postgresql://postgres@127.0.0.1:5432"
pytest_plugins = ["tests.model_server_fixture"]


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not (SHARED / "webhooks").is_dir():
        pytest.fail(f"shared test data not found at {SHARED}")
    return SHARED


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Any test that uses a PostgreSQL database carries the `postgres` mark."""
    for item in items:
        if {"pg_url", "make_pg_url", "pg_databases"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.postgres)


class PgDatabases:
    """Creates empty databases on the test server and drops them again."""

    def __init__(self) -> None:
        self.live: set[str] = set()

    def _admin(self, sql: str) -> None:
        try:
            conn = psycopg.connect(f"{PG_SERVER}/test", autocommit=True, connect_timeout=5)
        except psycopg.OperationalError as exc:
            pytest.fail(
                f"PostgreSQL is not reachable at {PG_SERVER}/test ({exc}); start it, "
                "or set TASKYARD_TEST_NO_PG=1 to skip the PostgreSQL tests"
            )
        with conn:
            conn.execute(sql)

    def create(self) -> str:
        name = f"ty_{secrets.token_hex(6)}"
        self._admin(f"CREATE DATABASE {name}")
        self.live.add(name)
        return f"{PG_SERVER}/{name}"

    def drop(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        self._admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        self.live.discard(name)


@pytest.fixture(scope="session")
def pg_databases() -> Iterator[PgDatabases]:
    if os.environ.get("TASKYARD_TEST_NO_PG") == "1":
        pytest.skip("PostgreSQL tests disabled by TASKYARD_TEST_NO_PG=1")
    databases = PgDatabases()
    yield databases
    for name in list(databases.live):
        databases.drop(f"{PG_SERVER}/{name}")


@pytest.fixture
def make_pg_url(pg_databases: PgDatabases) -> Iterator[Callable[[], str]]:
    """A factory of fresh, empty PostgreSQL databases, all dropped after the test."""
    created: list[str] = []

    def make() -> str:
        created.append(pg_databases.create())
        return created[-1]

    yield make
    for url in created:
        pg_databases.drop(url)


@pytest.fixture
def pg_url(make_pg_url: Callable[[], str]) -> str:
    """A fresh PostgreSQL database for this test (needs the server on 127.0.0.1:5432)."""
    return make_pg_url()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database for a `SQLStore`: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 't.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


_EXIT_STATUS: list[int] = []


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _EXIT_STATUS.append(int(exitstatus))


def pytest_unconfigure(config: pytest.Config) -> None:
    """Say what could keep the test process from ending (a thread that is not a daemon, a
    child process still running), then end the process at once with the run's status: CI
    waits for the run to end, and a leftover must show up named, not as a run that hangs."""
    import multiprocessing
    import sys
    import threading

    threads = [
        t.name
        for t in threading.enumerate()
        if t is not threading.main_thread() and not t.daemon and t.is_alive()
    ]
    children = [f"{p.name} (pid {p.pid})" for p in multiprocessing.active_children()]
    if threads or children:
        print(
            f"\nstill alive after the tests: threads {threads}, child processes {children}",
            file=sys.stderr,
        )
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_EXIT_STATUS[-1] if _EXIT_STATUS else 1)
