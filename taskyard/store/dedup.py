"""Storing a batch of new events with their dedup keys, on SQLite and PostgreSQL.

An event has a dedup key (its delivery id, or its content hash when it has no id) and may have
a replay key (its content hash, for a window): it is stored only if both are free. When the
dedup key is taken, the event is a duplicate of that key's owner. When only the replay key is
taken (the same body again under a new delivery id: a replay), the event is a duplicate of the
replay key's owner, and its delivery id is pointed at that owner too, so a redelivery of it
finds the stored event.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from taskyard.models import StoreResult
from taskyard.store import rows as rowmap
from taskyard.store.backends import Row, Tx
from taskyard.store.base import NewEvent


def insert_sqlite(tx: Tx, q: dict[str, str], batch: Sequence[NewEvent], now: float) -> list[bool]:
    """Claim every key, store what is new; True for each event stored."""
    owners = tx.executemany_returning(q["upsert_dedup"], [_key(n, now) for n in batch])
    claimed = [_owns(n, o) for n, o in zip(batch, owners, strict=True)]
    replays = [n for n, c in zip(batch, claimed, strict=True) if c and n.replay_key is not None]
    replay_owners = dict(
        zip(
            (n.event.id for n in replays),
            tx.executemany_returning(q["upsert_dedup"], [_replay_key(n, now) for n in replays]),
            strict=True,
        )
    )
    stored = [
        c and (n.replay_key is None or _owns(n, replay_owners[n.event.id]))
        for n, c in zip(batch, claimed, strict=True)
    ]
    new = [n for n, s in zip(batch, stored, strict=True) if s]
    if new:
        tx.executemany(q["insert_event"], [rowmap.event_row(n.event) for n in new])
    return stored


def insert_postgres(tx: Tx, q: dict[str, str], batch: Sequence[NewEvent], now: float) -> list[bool]:
    """One statement per event claims its keys and stores it (pipelined over the batch)."""
    plain = [n for n in batch if n.replay_key is None]
    keyed = [n for n in batch if n.replay_key is not None]
    rows = tx.executemany_returning(q["claim_and_insert_event"], [_row(n, now) for n in plain])
    rows += tx.executemany_returning(
        q["claim_and_insert_event_with_replay"],
        [{**_row(n, now), **_replay_params(n)} for n in keyed],
    )
    stored = {n.event.id: row is not None for n, row in zip(plain + keyed, rows, strict=True)}
    return [stored[n.event.id] for n in batch]


def results(
    tx: Tx, q: dict[str, str], batch: Sequence[NewEvent], stored: Sequence[bool]
) -> list[StoreResult]:
    """What each event of the batch became: new, or a duplicate of its first event."""
    out = []
    for n, new in zip(batch, stored, strict=True):
        if new:
            out.append(StoreResult(n.event.id, duplicate=False))
        else:
            out.append(StoreResult(_first(tx, q, n), duplicate=True))
    return out


def _first(tx: Tx, q: dict[str, str], n: NewEvent) -> str:
    owner = _owner(tx, q, n.event.source, n.dedup_key)
    if owner != n.event.id or n.replay_key is None:
        return owner or n.event.id
    # The delivery id was claimed, the content was not: a replay of the content's owner.
    first = _owner(tx, q, n.event.source, n.replay_key) or n.event.id
    params = {"source": n.event.source, "key": n.dedup_key, "id": n.event.id, "owner": first}
    tx.execute(q["repoint_dedup"], params)
    return first


def _owner(tx: Tx, q: dict[str, str], source: str, key: str) -> str | None:
    row = tx.fetchone(q["dedup_owner"], {"source": source, "key": key})
    return str(row["event_id"]) if row else None


def _owns(n: NewEvent, owner: Row | None) -> bool:
    return owner is not None and owner["event_id"] == n.event.id


def _key(n: NewEvent, now: float) -> dict[str, Any]:
    return {
        "source": n.event.source,
        "key": n.dedup_key,
        "event_id": n.event.id,
        "expires_at": n.dedup_expires_at,
        "now": now,
    }


def _replay_key(n: NewEvent, now: float) -> dict[str, Any]:
    return {**_key(n, now), "key": n.replay_key, "expires_at": n.replay_expires_at}


def _row(n: NewEvent, now: float) -> dict[str, Any]:
    return {
        **rowmap.event_row(n.event),
        "key": n.dedup_key,
        "expires_at": n.dedup_expires_at,
        "now": now,
    }


def _replay_params(n: NewEvent) -> dict[str, Any]:
    return {"replay_key": n.replay_key, "replay_expires_at": n.replay_expires_at}


Inserter = Callable[[Tx, dict[str, str], Sequence[NewEvent], float], list[bool]]
INSERTERS: dict[str, Inserter] = {"sqlite": insert_sqlite, "postgresql": insert_postgres}
