"""The two SQL databases taskyard runs on. Library errors are translated here, at the edge.

SQLite lives here; PostgreSQL in `taskyard.store.postgres`, imported only when a
`postgresql://` URL is opened (psycopg takes a noticeable part of a CLI command's start)."""

from __future__ import annotations

import abc
import fcntl
import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from taskyard.exceptions import ConfigError, StoreError, StoreUnavailable
from taskyard.util.private import private_database

Row = Mapping[str, Any]
Params = Mapping[str, Any]


class Tx(abc.ABC):
    """One open transaction."""

    @abc.abstractmethod
    def execute(self, sql: str, params: Params | None = None) -> int:
        """Run a statement; return the number of rows it changed."""

    @abc.abstractmethod
    def fetchall(self, sql: str, params: Params | None = None) -> list[Row]: ...

    def fetchone(self, sql: str, params: Params | None = None) -> Row | None:
        rows = self.fetchall(sql, params)
        return rows[0] if rows else None

    @abc.abstractmethod
    def executemany(self, sql: str, params: Sequence[Params]) -> None: ...

    @abc.abstractmethod
    def executemany_returning(self, sql: str, params: Sequence[Params]) -> list[Row | None]:
        """Run one statement per parameter set; return the first row each one returned."""

    @abc.abstractmethod
    def executescript(self, sql: str) -> None: ...


class Backend(abc.ABC):
    dialect: str
    types: Mapping[str, str]

    @abc.abstractmethod
    def transaction(self) -> AbstractContextManager[Tx]:
        """Commit on normal exit, roll back on error."""

    def reading(self) -> AbstractContextManager[Tx]:
        """A transaction that only reads (a consistent snapshot); it takes no writer's turn."""
        return self.transaction()

    @abc.abstractmethod
    def table_columns(self) -> dict[str, list[tuple[str, str, bool]]]:
        """Every table with its (column, type, nullable), for schema comparisons."""

    @abc.abstractmethod
    def index_names(self) -> set[str]: ...

    def close(self) -> None:  # noqa: B027
        pass


# --- SQLite -------------------------------------------------------------------------------

_SQLITE_LOCK_SECONDS = 10.0  # as long as SQLite's own busy timeout


class _SqliteTx(Tx):
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Params | None = None) -> int:
        return self._conn.execute(sql, params or {}).rowcount

    def fetchall(self, sql: str, params: Params | None = None) -> list[Row]:
        return [dict(r) for r in self._conn.execute(sql, params or {}).fetchall()]

    def executemany(self, sql: str, params: Sequence[Params]) -> None:
        self._conn.executemany(sql, params)

    def executemany_returning(self, sql: str, params: Sequence[Params]) -> list[Row | None]:
        out: list[Row | None] = []
        for p in params:
            row = self._conn.execute(sql, p).fetchone()
            out.append(dict(row) if row is not None else None)
        return out

    def executescript(self, sql: str) -> None:
        for statement in _split_statements(sql):
            self._conn.execute(statement)


class SqliteBackend(Backend):
    dialect = "sqlite"
    types = {"blob": "BLOB", "float": "REAL"}

    def __init__(
        self, path: Path, synchronous: str = "FULL", lock_seconds: float = _SQLITE_LOCK_SECONDS
    ) -> None:
        self.path = path
        self._synchronous = synchronous
        self.lock_seconds = lock_seconds
        self._local = threading.local()
        self._lock = threading.Lock()
        # This process's writers queue here, asleep, so that only one of its threads at a
        # time polls the lock file (many polling threads fight over the GIL).
        self._writers = threading.Lock()
        self._all: list[sqlite3.Connection] = []
        self._lock_fds: list[int] = []
        self._lock_path = path.with_name(path.name + ".lock")
        path.parent.mkdir(parents=True, exist_ok=True)
        private_database(path)  # 0600 before SQLite opens it: -wal and -shm follow its mode

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            conn.execute("PRAGMA busy_timeout=10000")
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def _write_lock(self) -> int:
        """This thread's descriptor of the database's lock file (see `transaction`)."""
        fd: int | None = getattr(self._local, "lock_fd", None)
        if fd is None:
            try:
                fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            except OSError as exc:
                raise StoreUnavailable(f"cannot open {self._lock_path}: {exc}") from exc
            self._local.lock_fd = fd
            with self._lock:
                self._lock_fds.append(fd)
        return fd

    def _acquire(self, fd: int) -> None:
        deadline = time.monotonic() + self.lock_seconds
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise StoreUnavailable(
                        f"sqlite database {self.path} is locked by another writer"
                    ) from None
                time.sleep(0.0002)

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        # Writers take turns on a lock file before SQLite's own lock: when several processes
        # write (intake processes), SQLite's busy handler would make the loser sleep 1, 2, 5,
        # 10… ms; here it waits only as long as the other transaction lasts.
        if not self._writers.acquire(timeout=self.lock_seconds):
            raise StoreUnavailable(f"sqlite database {self.path} is locked by another writer")
        try:
            lock = self._write_lock()
            self._acquire(lock)
            try:
                with self._sqlite_transaction() as tx:
                    yield tx
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
        finally:
            self._writers.release()

    @contextmanager
    def reading(self) -> Iterator[Tx]:
        # WAL: a reader sees the last commit and never waits for a writer.
        with self._sqlite_transaction("BEGIN") as tx:
            yield tx

    @contextmanager
    def _sqlite_transaction(self, begin: str = "BEGIN IMMEDIATE") -> Iterator[Tx]:
        try:
            conn = self._connection()
            conn.execute(begin)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"sqlite database {self.path} unavailable: {exc}") from exc
        try:
            yield _SqliteTx(conn)
        except sqlite3.OperationalError as exc:
            _rollback(conn)
            raise StoreUnavailable(f"sqlite error: {exc}") from exc
        except sqlite3.Error as exc:
            _rollback(conn)
            raise StoreError(f"sqlite error: {exc}") from exc
        except BaseException:
            _rollback(conn)
            raise
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            _rollback(conn)  # a failed COMMIT can leave the transaction open, holding the lock
            raise StoreUnavailable(f"sqlite commit failed: {exc}") from exc

    def table_columns(self) -> dict[str, list[tuple[str, str, bool]]]:
        with self.transaction() as tx:
            tables = [
                r["name"]
                for r in tx.fetchall(
                    "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
                )
            ]
            return {
                t: [
                    (c["name"], str(c["type"]).upper(), not c["notnull"] and not c["pk"])
                    for c in tx.fetchall(f"PRAGMA table_info({t})")
                ]
                for t in sorted(tables)
            }

    def index_names(self) -> set[str]:
        with self.transaction() as tx:
            rows = tx.fetchall(
                "SELECT name FROM sqlite_master WHERE type='index' AND name NOT LIKE 'sqlite_%'"
            )
        return {r["name"] for r in rows}

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
            for fd in self._lock_fds:
                os.close(fd)
            self._lock_fds.clear()
        self._local = threading.local()


def _rollback(conn: sqlite3.Connection) -> None:
    """Roll back unless SQLite already did (it does by itself after some errors)."""
    if conn.in_transaction:
        conn.execute("ROLLBACK")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]


def _split_statements(sql: str) -> list[str]:
    lines = [ln for ln in sql.splitlines() if not ln.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def open_backend(url: str) -> Backend:
    """`sqlite:///path` or `postgresql://…` (also `postgres://`, `postgresql+psycopg://`)."""
    if url.startswith("sqlite:///"):
        return SqliteBackend(Path(url.removeprefix("sqlite:///")))
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            from taskyard.store.postgres import PostgresBackend  # psycopg: only when used

            return PostgresBackend("postgresql://" + url.removeprefix(prefix))
    raise ConfigError(
        f"unsupported database url {redact_url(url)!r}: use sqlite:/// or postgresql://"
    )


def redact_url(url: str) -> str:
    """The URL with any password replaced, for messages and logs."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)
