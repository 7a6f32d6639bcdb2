"""The audit log: what taskyard did and why, append-only and hash-chained.

Each entry's `hash` is SHA-256 over a canonical JSON of all its other fields, its `prev_hash`
(the entry before it's `hash`; `GENESIS` for the first) included, so an entry edited, deleted
or moved in the database breaks the chain where it happened and `verify_chain` says which and
how. Deleting the newest entries leaves no trace in the chain itself: an exported copy (or a
later entry) is what shows them missing.

The review verdicts record the reviewer's codex thread id or claude session id;
`check_session_id` refuses the placeholders a test or a hurried caller would put there.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice, pairwise
from typing import Any

GENESIS = "0" * 64  # the prev_hash of the first entry

# What entries record; the store keeps any kind, these are the ones taskyard writes.
KINDS = frozenset({"gate", "verdict", "commit", "push", "suggestion", "refusal", "transition"})

EDITED = "edited"
DELETED = "deleted"
REORDERED = "reordered"

_REORDER_CANDIDATES = 256  # seqs tried per entry when looking for where a moved one belongs


@dataclass(frozen=True, slots=True)
class AuditEntry:
    seq: int  # 1, 2, 3… with no gaps
    at: float  # unix seconds
    kind: str
    task_id: str | None
    actor: str  # who did it: "taskyard", "cli:alice", "reviewer:codex"…
    data: dict[str, Any]  # JSON values only
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class Problem:
    """One place where the chain is broken: `seq` is the entry it names, `kind` one of
    `EDITED`, `DELETED`, `REORDERED`, `message` the same in plain words."""

    kind: str
    seq: int
    message: str

    def __str__(self) -> str:
        return self.message


def canonical_json(value: Any) -> str:
    """The one JSON text of a value: sorted keys, no spaces, UTF-8 kept, no NaN."""
    try:
        return json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except (TypeError, ValueError) as exc:
        raise ValueError(f"audit data must be plain JSON: {exc}") from exc


def entry_hash(
    seq: int,
    at: float,
    kind: str,
    task_id: str | None,
    actor: str,
    data: Mapping[str, Any],
    prev_hash: str,
) -> str:
    """SHA-256 (hex) of the canonical JSON of every field of an entry but its hash."""
    content = {
        "seq": seq,
        "at": at,
        "kind": kind,
        "task_id": task_id,
        "actor": actor,
        "data": data,
        "prev_hash": prev_hash,
    }
    return hashlib.sha256(canonical_json(content).encode("utf-8")).hexdigest()


def hash_of(entry: AuditEntry, seq: int | None = None) -> str:
    """The hash the entry's content gives (as entry `seq` when given)."""
    return entry_hash(
        entry.seq if seq is None else seq,
        entry.at,
        entry.kind,
        entry.task_id,
        entry.actor,
        entry.data,
        entry.prev_hash,
    )


def next_entry(
    last: AuditEntry | None,
    kind: str,
    task_id: str | None,
    actor: str,
    data: Mapping[str, Any],
    now: float,
) -> AuditEntry:
    """The entry that follows `last` (None: the first). Its data goes through JSON once, so
    what is hashed is exactly what a store reads back (tuples become lists, keys strings)."""
    if not kind or not actor:
        raise ValueError("an audit entry needs a kind and an actor")
    plain = json.loads(canonical_json(dict(data)))
    seq = 1 if last is None else last.seq + 1
    prev = GENESIS if last is None else last.hash
    at = float(now)  # an int would read back from a REAL column as a float and hash otherwise
    digest = entry_hash(seq, at, kind, task_id, actor, plain, prev)
    return AuditEntry(seq, at, kind, task_id, actor, plain, prev, digest)


# --- verifying ----------------------------------------------------------------------------


def verify_chain(entries: Iterable[AuditEntry]) -> list[Problem]:
    """Every place the chain (the whole log, from entry 1) is broken, first broken entry first;
    empty when it is intact.

    An entry whose hash does not match its content was edited, unless its content hashes
    as another seq (it was moved: reordered, or renumbered with the entries around it); a seq
    no entry was written as, below the last one written, is an entry deleted; two entries
    that each hash right but do not link (the later one's prev_hash is not the earlier one's
    hash) mean one of them was rewritten whole, its hash recomputed."""
    chain = sorted(entries, key=lambda e: e.seq)
    if not chain:
        return []
    broken = [e for e in chain if hash_of(e) != e.hash]
    written_as = _written_as(chain, broken)
    accounted = {e.seq for e in chain if e.seq not in written_as} | set(written_as.values())
    deleted = set(range(1, max(accounted) + 1)) - accounted
    problems = [
        Problem(EDITED, e.seq, f"entry {e.seq} was edited: its hash does not match its content")
        for e in broken
        if e.seq not in written_as
    ]
    problems += _moved(chain, written_as)
    problems += _gaps(deleted)
    problems += _unlinked(chain, {e.seq for e in broken})
    order = {DELETED: 0, EDITED: 1, REORDERED: 2}
    return sorted(problems, key=lambda p: (p.seq, order[p.kind]))


def _written_as(chain: Sequence[AuditEntry], broken: Sequence[AuditEntry]) -> dict[int, int]:
    """For each moved entry (its content hashes as another seq): stored seq → the seq it was
    written as. Tried: the seqs near it, then those missing or broken; a bounded number in
    all, so a log edited wholesale is still checked quickly (as edited)."""
    stored = {e.seq for e in chain}
    last = chain[-1].seq
    elsewhere = sorted(set(range(1, last + len(broken) + 1)) - stored) + [e.seq for e in broken]
    budget = _REORDER_CANDIDATES * 64
    found: dict[int, int] = {}
    offset = 0  # the last moved entry's: its successors were likely renumbered with it
    for entry in broken:
        if offset and hash_of(entry, entry.seq + offset) == entry.hash:
            found[entry.seq] = entry.seq + offset
            continue
        tries = min(_REORDER_CANDIDATES, budget)
        for seq in islice(_candidates(entry.seq, elsewhere), tries):
            budget -= 1
            if hash_of(entry, seq) == entry.hash:
                found[entry.seq], offset = seq, seq - entry.seq
                break
    return found


def _candidates(seq: int, elsewhere: Sequence[int]) -> Iterator[int]:
    """The seqs an entry at `seq` may have been written as: its neighbours first, then the
    others nearest first (sorted only if the neighbours are not it)."""
    near = [seq + d for k in range(1, 17) for d in (k, -k) if seq + d > 0]
    yield from near
    taken = set(near) | {seq}
    yield from sorted((s for s in elsewhere if s not in taken), key=lambda s: abs(s - seq))


def _moved(chain: Sequence[AuditEntry], written_as: Mapping[int, int]) -> list[Problem]:
    """One problem per moved entry, or per run of neighbours moved by the same offset (the
    entries after a deleted one renumbered to close the gap)."""
    seqs = [e.seq for e in chain]
    runs: list[list[int]] = []
    for seq in sorted(written_as):
        offset = written_as[seq] - seq
        if runs and runs[-1][-1] == seq - 1 and written_as[runs[-1][-1]] - (seq - 1) == offset:
            runs[-1].append(seq)
        else:
            runs.append([seq])
    problems: list[Problem] = []
    for run in runs:
        first, last = run[0], run[-1]
        if first == last:
            message = (
                f"entry {first} was reordered: it was written as entry {written_as[first]} and "
                f"now stands {_neighbours(first, seqs)} (seq order and hash links disagree)"
            )
        else:
            offset = written_as[first] - first
            message = (
                f"entries {first} to {last} were reordered: each was written as its seq "
                f"{'+' if offset > 0 else '-'} {abs(offset)} (seq order and hash links disagree)"
            )
        problems.append(Problem(REORDERED, first, message))
    return problems


def _neighbours(seq: int, seqs: Sequence[int]) -> str:
    at = bisect.bisect_left(seqs, seq)
    words = []
    if at > 0:
        words.append(f"after entry {seqs[at - 1]}")
    if at + 1 < len(seqs):
        words.append(f"before entry {seqs[at + 1]}")
    return " and ".join(words) if words else "alone"


def _gaps(deleted: set[int]) -> list[Problem]:
    """One problem per run of deleted seqs, naming the entries on either side."""
    problems: list[Problem] = []
    runs: list[list[int]] = []
    for seq in sorted(deleted):
        if runs and runs[-1][-1] == seq - 1:
            runs[-1].append(seq)
        else:
            runs.append([seq])
    for run in runs:
        first, last = run[0], run[-1]
        what = f"entry {first} was" if first == last else f"entries {first} to {last} were"
        if first == 1:
            where = f"the chain starts at entry {last + 1}"
        else:
            where = f"the chain goes from entry {first - 1} to entry {last + 1}"
        problems.append(Problem(DELETED, first, f"{what} deleted: {where}"))
    return problems


def _unlinked(chain: Sequence[AuditEntry], flagged: set[int]) -> list[Problem]:
    """Links broken between entries that each hash right: a whole entry rewritten (its hash
    recomputed), which its successor's prev_hash still shows."""
    problems: list[Problem] = []
    first = chain[0]
    if first.seq == 1 and first.seq not in flagged and first.prev_hash != GENESIS:
        problems.append(
            Problem(EDITED, 1, "entry 1 was edited: its prev_hash is not the genesis hash")
        )
    for before, entry in pairwise(chain):
        if entry.seq != before.seq + 1 or {before.seq, entry.seq} & flagged:
            continue
        if entry.prev_hash != before.hash:
            problems.append(
                Problem(
                    EDITED,
                    before.seq,
                    f"entry {before.seq} or entry {entry.seq} was edited and its hash recomputed: "
                    f"entry {entry.seq}'s prev_hash is not entry {before.seq}'s hash",
                )
            )
    return problems


# --- reviewer ids -------------------------------------------------------------------------

_PLACEHOLDER_WORDS = frozenset(
    {
        "test",
        "tests",
        "testing",
        "fake",
        "dummy",
        "placeholder",
        "none",
        "null",
        "nil",
        "undefined",
        "unknown",
        "example",
        "sample",
        "mock",
        "stub",
        "todo",
        "tbd",
        "fixme",
        "changeme",
        "your",
        "redacted",
        "deadbeef",
    }
)
_MIN_LENGTH = 8
_MAX_LENGTH = 200
_ID_SHAPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]*")


def check_session_id(value: str) -> str:
    """The reviewer's codex thread id or claude session id, as given, if it can be one; a
    ValueError saying why when it is a placeholder ("test", "none", all zeros, all x, too
    short, a template left unfilled…): a verdict must name the session that reached it."""
    why = _placeholder_reason(value)
    if why is not None:
        raise ValueError(
            f"reviewer session id {value!r} is refused: {why}; give the reviewer's real "
            "codex thread id or claude session id"
        )
    return value


def _placeholder_reason(value: str) -> str | None:
    if not value.strip():
        return "it is empty"
    if value.strip().lower() in _PLACEHOLDER_WORDS:
        return f"it is the placeholder {value.strip().lower()!r}"
    bare = value.replace("-", "").replace("_", "")
    if not bare.strip("0"):
        return "it is all zeros"
    if not bare.strip("xX"):
        return "it is all x"
    if len(value) < _MIN_LENGTH:
        return f"it is shorter than {_MIN_LENGTH} characters"
    if len(value) > _MAX_LENGTH:
        return f"it is longer than {_MAX_LENGTH} characters"
    if not _ID_SHAPE.fullmatch(value):
        return "it has characters no session id has (spaces, braces, <, $…)"
    if len(set(bare.lower())) == 1:
        return "it is one character repeated"
    if _is_run(bare.lower()):
        return "it is a run of consecutive characters"
    placeholder = sorted(set(re.split(r"[^a-z]+", value.lower())) & _PLACEHOLDER_WORDS)
    if placeholder:
        return f"it contains the placeholder {placeholder[0]!r}"
    return None


def _is_run(text: str) -> bool:
    """'12345678', 'abcdefgh': ascending by one character throughout."""
    return all(ord(b) - ord(a) == 1 for a, b in pairwise(text))
