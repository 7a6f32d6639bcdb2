"""`taskyard audit …` as a subprocess against SQLite and PostgreSQL: `verify` exits 0 on an
intact chain and 1 naming the entry edited, deleted or reordered by raw SQL in the database;
`export --jsonl` and `show` print what the log holds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskyard.audit import AuditEntry, verify_chain
from taskyard.store import SQLStore
from tests.unit.test_cli_imports import HEAVY, PROBE

TAMPER = {
    "edited": (
        ["UPDATE audit_log SET data = '{\"i\":99}' WHERE seq = 3"],
        "entry 3 was edited: its hash does not match its content",
    ),
    "deleted": (
        ["DELETE FROM audit_log WHERE seq = 3"],
        "entry 3 was deleted: the chain goes from entry 2 to entry 4",
    ),
    "reordered": (
        [
            "UPDATE audit_log SET seq = -3 WHERE seq = 3",
            "UPDATE audit_log SET seq = 3 WHERE seq = 4",
            "UPDATE audit_log SET seq = 4 WHERE seq = -3",
        ],
        "entry 3 was reordered: it was written as entry 4",
    ),
}


@pytest.fixture
def logged(store_url: str) -> Iterator[SQLStore]:
    """A store whose audit log has six entries, of tasks t0 and t1."""
    store = SQLStore.open(store_url)
    store.migrate()
    for i in range(6):
        store.append_audit("transition", f"t{i % 2}", "taskyard", {"i": i}, 1700000000.0 + i)
    yield store
    store.close()


def audit(tmp_path: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "taskyard", "audit", *args, "--database-url", url],
        cwd=tmp_path,
        env={**os.environ, "TASKYARD_HOME": str(tmp_path / "home")},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_an_intact_chain_verifies(logged: SQLStore, store_url: str, tmp_path: Path) -> None:
    done = audit(tmp_path, store_url, "verify")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "audit chain intact: 6 entries\n"
    as_json = audit(tmp_path, store_url, "verify", "--json")
    assert as_json.returncode == 0
    assert json.loads(as_json.stdout) == {"intact": True, "entries": 6, "problems": []}


@pytest.mark.parametrize("how", sorted(TAMPER))
def test_a_tampered_entry_is_named(
    how: str, logged: SQLStore, store_url: str, tmp_path: Path
) -> None:
    statements, named = TAMPER[how]
    with logged.backend.transaction() as tx:
        for sql in statements:
            tx.execute(sql)
    done = audit(tmp_path, store_url, "verify")
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(named), done.stdout
    assert lines[-1].startswith("audit chain broken:")
    as_json = json.loads(audit(tmp_path, store_url, "verify", "--json").stdout)
    assert as_json["intact"] is False
    assert (as_json["problems"][0]["kind"], as_json["problems"][0]["seq"]) == (how, 3)


def test_export_writes_one_json_object_per_line(
    logged: SQLStore, store_url: str, tmp_path: Path
) -> None:
    done = audit(tmp_path, store_url, "export", "--jsonl")
    assert done.returncode == 0, done.stderr
    exported = [AuditEntry(**json.loads(line)) for line in done.stdout.splitlines()]
    assert exported == logged.audit_entries()
    assert verify_chain(exported) == []
    of_task = audit(tmp_path, store_url, "export", "--jsonl", "--task", "t1")
    assert [json.loads(line)["seq"] for line in of_task.stdout.splitlines()] == [2, 4, 6]


def test_show_lists_a_tasks_entries(logged: SQLStore, store_url: str, tmp_path: Path) -> None:
    done = audit(tmp_path, store_url, "show", "t0", "--json")
    assert done.returncode == 0, done.stderr
    assert [e["data"] for e in json.loads(done.stdout)] == [{"i": 0}, {"i": 2}, {"i": 4}]
    table = audit(tmp_path, store_url, "show", "t0")
    assert "transition" in table.stdout and '{"i":2}' in table.stdout
    none = audit(tmp_path, store_url, "show", "nope")
    assert none.returncode == 0 and "no audit entries for task nope" in none.stdout


@pytest.mark.parametrize(
    "argv", [["audit", "verify"], ["audit", "export"], ["audit", "show", "t1"]], ids=" ".join
)
def test_audit_commands_import_no_server_parts(tmp_path: Path, argv: list[str]) -> None:
    code = f"HEAVY = {HEAVY!r}\n{PROBE}"
    env = {"TASKYARD_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", code, *argv],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert (seen["heavy"], seen["exit"]) == ([], 0), seen["output"]
