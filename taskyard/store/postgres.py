"""The PostgreSQL backend (psycopg 3 with a connection pool); psycopg's errors are translated
here, at the edge. `taskyard.store.backends.open_backend` imports it for `postgresql://` URLs."""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
import psycopg_pool
from psycopg.rows import dict_row

from taskyard.exceptions import StoreError, StoreUnavailable
from taskyard.store.backends import Backend, Params, Row, Tx, _one_line, _split_statements

_PG_ERRORS = (psycopg.OperationalError, psycopg_pool.PoolTimeout, psycopg.InterfaceError)
_PARAM = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)")


@functools.lru_cache(maxsize=512)
def to_pyformat(sql: str) -> str:
    """`:name` → `%(name)s`, leaving `::casts` and `%` alone."""
    return _PARAM.sub(r"%(\1)s", sql.replace("%", "%%"))


class _PgTx(Tx):
    def __init__(self, conn: psycopg.Connection[dict[str, Any]]) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Params | None = None) -> int:
        with self._conn.cursor() as cur:
            cur.execute(to_pyformat(sql), params or {})
            return cur.rowcount

    def fetchall(self, sql: str, params: Params | None = None) -> list[Row]:
        with self._conn.cursor() as cur:
            cur.execute(to_pyformat(sql), params or {})
            return list(cur.fetchall())

    def executemany(self, sql: str, params: Sequence[Params]) -> None:
        with self._conn.cursor() as cur:
            cur.executemany(to_pyformat(sql), params)

    def executemany_returning(self, sql: str, params: Sequence[Params]) -> list[Row | None]:
        out: list[Row | None] = []
        if not params:
            return out
        with self._conn.cursor() as cur:
            cur.executemany(to_pyformat(sql), params, returning=True)
            while True:
                out.append(cur.fetchone())
                if not cur.nextset():
                    break
        return out

    def executescript(self, sql: str) -> None:
        for statement in _split_statements(sql):
            self._conn.execute(statement)


_IDLE_CHECK_SECONDS = 5.0
_RECONNECT_SECONDS = 5.0


def _check_if_idle(conn: psycopg.Connection[Any]) -> None:
    """Before lending a connection out: test it with a round trip only if it has been idle for a
    while (a restarted server or a dropped link shows there); one in steady use is fine, and a
    round trip per transaction would cost the hot path about a third of its time."""
    now = time.monotonic()
    last = _last_lent.get(id(conn), 0.0)
    if now - last > _IDLE_CHECK_SECONDS:
        psycopg_pool.ConnectionPool.check_connection(conn)
    _last_lent[id(conn)] = now


_last_lent: dict[int, float] = {}


@contextmanager
def _store_errors() -> Iterator[None]:
    """psycopg's errors as the store's: the server unreachable, or anything else."""
    try:
        yield
    except _PG_ERRORS as exc:
        raise StoreUnavailable(f"postgresql unavailable: {_one_line(exc)}") from exc
    except psycopg.Error as exc:
        raise StoreError(f"postgresql error: {_one_line(exc)}") from exc


class PostgresBackend(Backend):
    dialect = "postgresql"
    types = {"blob": "BYTEA", "float": "DOUBLE PRECISION"}

    def __init__(self, conninfo: str, max_size: int = 8) -> None:
        self._pool: psycopg_pool.ConnectionPool[psycopg.Connection[dict[str, Any]]] = (
            psycopg_pool.ConnectionPool(
                conninfo,
                min_size=1,
                max_size=max_size,
                open=False,
                timeout=3.0,
                # psycopg_pool backs off between reconnection attempts without a ceiling (1, 2,
                # 4, 8 … s), so after a long outage the first try could come as late again as the
                # outage lasted. A short give-up bounds that: the pool then shrinks, and the next
                # caller that needs a connection starts a fresh attempt at once.
                reconnect_timeout=_RECONNECT_SECONDS,
                # Autocommit: `transaction` opens one explicitly (BEGIN … COMMIT); a read runs
                # alone, one round trip instead of three.
                kwargs={"row_factory": dict_row, "connect_timeout": 5, "autocommit": True},
                check=_check_if_idle,
            )
        )
        self._pool.open(wait=False)

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        with _store_errors(), self._pool.connection() as conn, conn.transaction():
            yield _PgTx(conn)

    @contextmanager
    def reading(self) -> Iterator[Tx]:
        """Each statement on its own, with no BEGIN/COMMIT around them: under PostgreSQL's
        READ COMMITTED each statement sees its own snapshot inside a transaction too, so
        this reads the same and spares two round trips."""
        with _store_errors(), self._pool.connection() as conn:
            yield _PgTx(conn)

    def table_columns(self) -> dict[str, list[tuple[str, str, bool]]]:
        with self.transaction() as tx:
            rows = tx.fetchall(
                "SELECT table_name, column_name, data_type, is_nullable FROM "
                "information_schema.columns WHERE table_schema = current_schema() "
                "ORDER BY table_name, ordinal_position"
            )
        tables: dict[str, list[tuple[str, str, bool]]] = {}
        for r in rows:
            tables.setdefault(r["table_name"], []).append(
                (r["column_name"], r["data_type"].upper(), r["is_nullable"] == "YES")
            )
        return tables

    def index_names(self) -> set[str]:
        with self.transaction() as tx:
            rows = tx.fetchall(
                "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
            )
        return {r["indexname"] for r in rows if not r["indexname"].endswith("_pkey")}

    def close(self) -> None:
        self._pool.close()
