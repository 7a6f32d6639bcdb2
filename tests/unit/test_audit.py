"""The audit log's chain (`taskyard.audit`): the hash of an entry, and `verify_chain` naming the
entry edited, deleted or reordered; `check_session_id` refusing placeholder reviewer ids."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest

from taskyard.audit import (
    DELETED,
    EDITED,
    GENESIS,
    REORDERED,
    AuditEntry,
    check_session_id,
    entry_hash,
    hash_of,
    next_entry,
    verify_chain,
)


def chain(n: int) -> list[AuditEntry]:
    entries: list[AuditEntry] = []
    for i in range(n):
        last = entries[-1] if entries else None
        data = {"step": i, "note": "é ✓", "nested": {"b": 1, "a": [1, 2.5]}}
        entries.append(next_entry(last, "gate", f"task-{i % 2}", "taskyard", data, 1000.0 + i))
    return entries


def swapped(entries: list[AuditEntry], a: int, b: int) -> list[AuditEntry]:
    """The chain with the entries at seq a and b trading seqs (hashes left as they were)."""
    out = list(entries)
    out[a - 1] = dataclasses.replace(entries[b - 1], seq=a)
    out[b - 1] = dataclasses.replace(entries[a - 1], seq=b)
    return out


def test_the_hash_is_sha256_over_canonical_json_of_every_field_but_the_hash() -> None:
    data = {"z": 1, "a": "ü"}
    text = (
        '{"actor":"cli:alice","at":12.5,"data":{"a":"ü","z":1},"kind":"verdict",'
        f'"prev_hash":"{GENESIS}","seq":1,"task_id":"t1"}}'
    )
    expected = hashlib.sha256(text.encode("utf-8")).hexdigest()
    assert entry_hash(1, 12.5, "verdict", "t1", "cli:alice", data, GENESIS) == expected
    entry = next_entry(None, "verdict", "t1", "cli:alice", data, 12.5)
    assert (entry.seq, entry.prev_hash, entry.hash) == (1, GENESIS, expected)


def test_entries_link_each_to_the_one_before() -> None:
    entries = chain(3)
    assert [e.seq for e in entries] == [1, 2, 3]
    assert entries[0].prev_hash == GENESIS == "0" * 64
    assert entries[1].prev_hash == entries[0].hash
    assert entries[2].prev_hash == entries[1].hash
    assert all(hash_of(e) == e.hash for e in entries)


def test_data_is_hashed_as_a_store_reads_it_back() -> None:
    entry = next_entry(None, "commit", None, "taskyard", {"files": ("a", "b"), "n": {3: "x"}}, 5)
    assert entry.data == {"files": ["a", "b"], "n": {"3": "x"}}
    assert isinstance(entry.at, float)
    read_back = dataclasses.replace(entry, data=json.loads(json.dumps(entry.data)), at=5.0)
    assert verify_chain([read_back]) == []


@pytest.mark.parametrize("data", [{"x": float("nan")}, {"x": object()}])
def test_data_that_is_not_plain_json_is_refused(data: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="plain JSON"):
        next_entry(None, "gate", None, "taskyard", data, 1.0)


def test_an_intact_chain_has_no_problems() -> None:
    assert verify_chain([]) == []
    assert verify_chain(chain(10)) == []


@pytest.mark.parametrize(
    "change",
    [
        {"data": {"step": 99}},
        {"actor": "mallory"},
        {"at": 1.0},
        {"kind": "push"},
        {"task_id": None},
        {"prev_hash": "f" * 64},
        {"hash": "0" * 64},
    ],
)
def test_an_edited_entry_is_named(change: dict[str, object]) -> None:
    entries = chain(6)
    entries[3] = dataclasses.replace(entries[3], **change)  # type: ignore[arg-type]
    problems = verify_chain(entries)
    assert [(p.kind, p.seq) for p in problems] == [(EDITED, 4)]
    assert str(problems[0]) == "entry 4 was edited: its hash does not match its content"


def test_an_entry_rewritten_with_its_hash_recomputed_breaks_the_next_link() -> None:
    entries = chain(5)
    e = dataclasses.replace(entries[2], actor="mallory")
    entries[2] = dataclasses.replace(e, hash=hash_of(e))
    problems = verify_chain(entries)
    assert [(p.kind, p.seq) for p in problems] == [(EDITED, 3)]
    assert "entry 3 or entry 4 was edited" in str(problems[0])
    assert "entry 4's prev_hash is not entry 3's hash" in str(problems[0])


def test_a_rewritten_first_entry_no_longer_starts_at_genesis() -> None:
    entries = chain(3)
    e = dataclasses.replace(entries[0], prev_hash="a" * 64)
    entries[0] = dataclasses.replace(e, hash=hash_of(e))
    problems = verify_chain(entries)
    assert (problems[0].kind, problems[0].seq) == (EDITED, 1)
    assert "genesis" in str(problems[0])


def test_a_deleted_entry_is_named_with_its_neighbours() -> None:
    entries = chain(6)
    del entries[2]
    problems = verify_chain(entries)
    assert [(p.kind, p.seq) for p in problems] == [(DELETED, 3)]
    assert str(problems[0]) == "entry 3 was deleted: the chain goes from entry 2 to entry 4"


def test_several_deleted_entries_and_the_first_ones() -> None:
    entries = chain(8)
    kept = [e for e in entries if e.seq not in (1, 2, 5, 6)]
    problems = verify_chain(kept)
    assert [str(p) for p in problems] == [
        "entries 1 to 2 were deleted: the chain starts at entry 3",
        "entries 5 to 6 were deleted: the chain goes from entry 4 to entry 7",
    ]


def test_two_swapped_entries_are_named_as_reordered() -> None:
    problems = verify_chain(swapped(chain(6), 3, 4))
    assert [(p.kind, p.seq) for p in problems] == [(REORDERED, 3), (REORDERED, 4)]
    assert str(problems[0]) == (
        "entry 3 was reordered: it was written as entry 4 and now stands after entry 2 and "
        "before entry 4 (seq order and hash links disagree)"
    )
    assert "it was written as entry 3" in str(problems[1])


def test_an_entry_moved_past_the_end_is_reordered_not_deleted() -> None:
    entries = chain(5)
    moved = [e for e in entries if e.seq != 2] + [dataclasses.replace(entries[1], seq=9)]
    problems = verify_chain(moved)
    assert [str(p) for p in problems] == [
        "entry 9 was reordered: it was written as entry 2 and now stands after entry 5 "
        "(seq order and hash links disagree)"
    ]


def test_entries_renumbered_to_hide_a_deletion_show_both() -> None:
    entries = chain(8)
    renumbered = entries[:2] + [dataclasses.replace(e, seq=e.seq - 1) for e in entries[3:]]
    problems = verify_chain(renumbered)
    assert [(p.kind, p.seq) for p in problems] == [(DELETED, 3), (REORDERED, 3)]
    assert str(problems[0]) == "entry 3 was deleted: the chain goes from entry 2 to entry 4"
    assert str(problems[1]) == (
        "entries 3 to 7 were reordered: each was written as its seq + 1 "
        "(seq order and hash links disagree)"
    )


def test_problems_come_first_broken_entry_first() -> None:
    entries = chain(9)
    entries[6] = dataclasses.replace(entries[6], actor="x")
    del entries[1]
    problems = verify_chain(reversed(entries))
    assert [(p.kind, p.seq) for p in problems] == [(DELETED, 2), (EDITED, 7)]


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "test",
        "TEST",
        "fake",
        "dummy",
        "placeholder",
        "none",
        "None",
        "null",
        "0",
        "00000000",
        "00000000-0000-0000-0000-000000000000",
        "xxxxxxxx",
        "XXXXXXXX-XXXX",
        "x",
        "abc1234",
        "aaaaaaaaaa",
        "12345678",
        "test-session-1",
        "fake_thread_2b6c9e",
        "<session-id>",
        "${SESSION_ID}",
        "sess ion 1234",
        "z" * 201,
    ],
)
def test_placeholder_session_ids_are_refused(value: str) -> None:
    with pytest.raises(ValueError, match=r"reviewer session id .* is refused: it "):
        check_session_id(value)


@pytest.mark.parametrize(
    "value",
    [
        "0199a213-81c0-7800-8aa1-bbab2a035a53",  # a codex thread id (UUIDv7)
        "5e3b2c1a-9f4d-4e8a-b7c6-2d1e0f9a8b7c",  # a claude session id (UUIDv4)
        "thread_01HZX3K9Q7",
    ],
)
def test_real_session_ids_pass(value: str) -> None:
    assert check_session_id(value) == value


def test_the_refusal_says_why() -> None:
    with pytest.raises(ValueError) as refused:
        check_session_id("00000000-0000-0000-0000-000000000000")
    assert "all zeros" in str(refused.value)
    assert "codex thread id or claude session id" in str(refused.value)
    with pytest.raises(ValueError, match="the placeholder 'none'"):
        check_session_id("none")
    with pytest.raises(ValueError, match="shorter than 8 characters"):
        check_session_id("a1b2c3")
