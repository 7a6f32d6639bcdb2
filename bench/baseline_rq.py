"""Baseline: the seed's design built the obvious way — FastAPI + RQ + Redis, storing to PostgreSQL.

`POST /webhooks/github` reads the body, checks `X-Hub-Signature-256` with
`hmac.compare_digest`, parses the JSON, inserts one row (delivery id, event, body, received
time) with a plain INSERT + COMMIT per request, enqueues an RQ job, and answers
202 `{"event_id": …, "queued": true}`; a delivery id seen before answers
200 `{"event_id": <first>, "duplicate": true}`.

Style: an `async def` endpoint with psycopg's `AsyncConnectionPool`, which is what FastAPI's
docs and most webhook examples write (the raw body for the HMAC needs `await request.body()`
anyway). RQ has no async API, so `queue.enqueue` is called directly, as such code usually
does: it is one pipelined round trip to Redis on loopback (~0.1 ms), and handing it to a
thread would cost more than it saves on a single worker. The body is stored as the raw text
cast to jsonb (no second json.dumps). No RQ worker runs during the benchmark; the jobs wait
in Redis.

Run: python bench/baseline_rq.py --port 8001 \
         --database-url postgresql://postgres@127.0.0.1:5432/DB
Same server stack as taskyard: uvicorn (`--workers` processes, as many as taskyard's intake
processes in bench/intake.py), httptools, uvloop, no access log.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import redis
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from psycopg_pool import AsyncConnectionPool
from rq import Queue

JOB_FUNCTION = "bench.baseline_rq.process_event"
DEFAULT_SECRET = "bench-github-secret"  # same default as bench/payload.py
TABLE = "webhook_events"
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    id          bigserial PRIMARY KEY,
    delivery_id text NOT NULL UNIQUE,
    event       text NOT NULL,
    payload     jsonb NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
)
"""
INSERT = f"""
INSERT INTO {TABLE} (delivery_id, event, payload) VALUES (%s, %s, %s::jsonb)
ON CONFLICT (delivery_id) DO NOTHING RETURNING id
"""
SELECT_ID = f"SELECT id FROM {TABLE} WHERE delivery_id = %s"


@dataclass(frozen=True)
class Settings:
    database_url: str
    secret: str
    redis_url: str = "redis://127.0.0.1:6379/0"
    queue_name: str = "baseline"
    pool_size: int = 10


def process_event(delivery_id: str) -> str:
    """The RQ job: a worker would load the event and route it here. Not run by the bench."""
    return delivery_id


def signature_ok(body: bytes, header: str, secret: str) -> bool:
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header)


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def rejection(body: bytes, headers: Mapping[str, str], secret: str) -> JSONResponse | None:
    """The answer to a delivery that must not be stored, or None."""
    if not signature_ok(body, headers.get("x-hub-signature-256", ""), secret):
        return error(401, "bad signature")
    try:
        json.loads(body)
    except ValueError:
        return error(400, "malformed JSON")
    if not headers.get("x-github-delivery"):
        return error(400, "missing X-GitHub-Delivery")
    return None


async def insert_event(
    pool: AsyncConnectionPool, delivery: str, event: str, body: bytes
) -> tuple[int | None, bool]:
    """Insert + commit one row; (event id, True) when new, (first event's id, False) if not."""
    async with pool.connection() as conn:  # commits when the block ends
        row = await (await conn.execute(INSERT, (delivery, event, body.decode()))).fetchone()
        if row is not None:
            return row[0], True
        first = await (await conn.execute(SELECT_ID, (delivery,))).fetchone()
    return (first[0] if first else None), False


def create_app(settings: Settings) -> FastAPI:
    pool = AsyncConnectionPool(settings.database_url, max_size=settings.pool_size, open=False)
    queue = Queue(settings.queue_name, connection=redis.Redis.from_url(settings.redis_url))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await pool.open()
        async with pool.connection() as conn:
            await conn.execute(SCHEMA)
        yield
        await pool.close()

    app = FastAPI(lifespan=lifespan)

    @app.get("/healthz")
    async def healthz() -> dict[str, bool]:
        return {"ok": True}

    @app.post("/webhooks/github")
    async def github_webhook(request: Request) -> JSONResponse:
        body = await request.body()
        rejected = rejection(body, request.headers, settings.secret)
        if rejected is not None:
            return rejected
        delivery = request.headers["x-github-delivery"]
        event = request.headers.get("x-github-event", "")
        event_id, first = await insert_event(pool, delivery, event, body)
        if not first:
            return JSONResponse({"event_id": event_id, "duplicate": True}, status_code=200)
        queue.enqueue(JOB_FUNCTION, delivery)
        return JSONResponse({"event_id": event_id, "queued": True}, status_code=202)

    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="FastAPI + RQ + PostgreSQL webhook baseline")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--queue", default="baseline", help="RQ queue name")
    parser.add_argument("--pool-size", type=int, default=10)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    args = parser.parse_args(argv)
    # The workers (when more than one) build the app from these, by `app_from_env`.
    os.environ["BENCH_BASELINE_DATABASE_URL"] = args.database_url
    os.environ["BENCH_BASELINE_REDIS_URL"] = args.redis_url
    os.environ["BENCH_BASELINE_QUEUE"] = args.queue
    os.environ["BENCH_BASELINE_POOL_SIZE"] = str(args.pool_size)
    uvicorn.run(
        "bench.baseline_rq:app_from_env" if args.workers > 1 else app_from_env(),
        factory=args.workers > 1,
        app_dir=str(Path(__file__).resolve().parents[1]),  # workers import `bench.baseline_rq`
        host=args.host,
        port=args.port,
        workers=args.workers,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
    )


def app_from_env() -> FastAPI:
    return create_app(
        Settings(
            database_url=os.environ["BENCH_BASELINE_DATABASE_URL"],
            secret=os.environ.get("BENCH_GITHUB_SECRET", DEFAULT_SECRET),
            redis_url=os.environ["BENCH_BASELINE_REDIS_URL"],
            queue_name=os.environ["BENCH_BASELINE_QUEUE"],
            pool_size=int(os.environ["BENCH_BASELINE_POOL_SIZE"]),
        )
    )


if __name__ == "__main__":
    main()
