"""A task's log is opened only when it is safe, read in pages, redacted, and kept: through
the API, the UI, the SSE follower and the CLI, over a real SQLite database."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from starlette.testclient import TestClient

from taskyard.exceptions import LogRefused
from taskyard.models import TaskStatus
from taskyard.run.tasklogs import PAGE_MAX, TaskLogs
from taskyard.store import SQLStore
from taskyard.util.redaction import REDACTED, Redactor
from taskyard.web.logstream import LogFollower
from tests.integration.api_harness import BEARER, Seeded, app_for, seed

LOOPBACK = ("127.0.0.1", 50000)
PROBE = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
try:
    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 510, 0x40000002, os.SEEK_SET)
    print("free")
except OSError:
    print("held")
"""


def _locked_by_us(db: Path) -> bool:
    """Whether SQLite's shared lock of this process on `db` still holds (seen from another
    process: POSIX locks belong to the process, and closing any fd of the file drops them)."""
    out = subprocess.run([sys.executable, "-c", PROBE, str(db)], capture_output=True, text=True)
    return out.stdout.strip() == "held"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "taskyard.db"


@pytest.fixture
def store(db: Path) -> Iterator[SQLStore]:
    sql = SQLStore.open(f"sqlite:///{db}")
    sql.migrate()
    yield sql
    sql.close()


@pytest.fixture
def seeded(store: SQLStore, tmp_path: Path) -> Seeded:
    return seed(store, tmp_path / "workspaces", time.time())


def test_a_hard_link_to_the_database_planted_as_the_log_is_never_opened(
    store: SQLStore, seeded: Seeded, db: Path, tmp_path: Path
) -> None:
    tid = seeded.tasks["succeeded"]
    log = seeded.logs["succeeded"]
    log.unlink()
    os.link(db, log)  # what an agent without a sandbox could do
    (log.parent.parent / "context").mkdir()
    os.link(db, log.parent.parent / "context" / "planted.json")
    store.get_task(tid)  # a connection of this process: SQLite holds its shared lock
    assert _locked_by_us(db)
    with TestClient(app_for(store, tmp_path), client=LOOPBACK, headers=BEARER) as client:
        answer = client.get(f"/api/tasks/{tid}/logs")
        assert answer.status_code == 409
        assert "has 3 links (a hard link to another file)" in answer.json()["error"]
        assert client.get(f"/api/tasks/{tid}/logs/stream").status_code == 409
        page = client.get(f"/ui/tasks/{tid}")
        assert page.status_code == 200 and "The log is not shown" in page.text
        assert "planted.json" not in page.text  # nor the planted context file
        assert client.get(f"/ui/tasks/{tid}/log-stream").status_code == 409
    cli = subprocess.run(
        [sys.executable, "-m", "taskyard", "tasks", "logs", tid, "--database-url", f"sqlite:///{db}"],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "TASKYARD_HOME": str(tmp_path)},
    )  # fmt: skip
    assert cli.returncode == 1 and "a hard link to another file" in " ".join(cli.stderr.split())
    assert _locked_by_us(db)  # before: one view of the log dropped it, and the WAL went next
    assert log.stat().st_ino == db.stat().st_ino  # left where it was, untouched
    assert store.get_task(tid).status is TaskStatus.SUCCEEDED


def _plant_symlink(log: Path, tmp_path: Path) -> None:
    (tmp_path / "elsewhere").write_text("{}\n")
    log.symlink_to(tmp_path / "elsewhere")


def _plant_fifo(log: Path, tmp_path: Path) -> None:
    os.mkfifo(log)


def _plant_foreign(log: Path, tmp_path: Path) -> None:
    log.write_text("{}\n")
    os.chown(log, 65534, 65534)


def _plant_outputs_link(log: Path, tmp_path: Path) -> None:
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "log.jsonl").write_text("{}\n")
    log.parent.rename(log.parent.with_name("outputs-old"))
    log.parent.symlink_to(tmp_path / "other")


@pytest.mark.parametrize(
    ("plant", "why"),
    [
        (_plant_symlink, "is a symbolic link"),
        (_plant_fifo, "is not a regular file"),
        (_plant_foreign, "is owned by uid 65534"),
        (_plant_outputs_link, "is a link or not a directory"),
    ],
)
def test_a_log_that_is_not_taskyards_own_file_is_refused(
    store: SQLStore, seeded: Seeded, tmp_path: Path, plant: object, why: str
) -> None:
    task = store.get_task(seeded.tasks["succeeded"])
    seeded.logs["succeeded"].unlink()
    plant(seeded.logs["succeeded"], tmp_path)  # type: ignore[operator]
    with pytest.raises(LogRefused, match=why):  # a FIFO does not block it either
        TaskLogs().page(task)


def test_a_long_log_is_served_in_pages_redacted(
    store: SQLStore, seeded: Seeded, tmp_path: Path
) -> None:
    tid = seeded.tasks["succeeded"]
    secret = "ghp_page_secret_5521"
    lines = [orjson.dumps({"n": n, "pad": "x" * 200, "tok": secret}) for n in range(12_000)]
    seeded.logs["succeeded"].write_bytes(b"\n".join(lines) + b"\n")
    logs = TaskLogs(redactor=Redactor([secret]))
    app = app_for(store, tmp_path)
    with TestClient(app, client=LOOPBACK, headers=BEARER) as client:
        url, got, pages = f"/api/tasks/{tid}/logs", b"", 0
        while url:
            answer = client.get(url)
            assert answer.status_code == 200 and len(answer.content) <= PAGE_MAX
            got += answer.content
            pages += 1
            link = answer.headers.get("link")
            url = link[1 : link.index(">")] if link else ""
        assert pages == 3 and got == b"\n".join(lines) + b"\n"  # this app hides no secret
        for bad in ("limit=0", "limit=4194305", "offset=-1", "offset=x"):
            answer = client.get(f"/api/tasks/{tid}/logs?{bad}")
            assert answer.status_code == 400, bad
    page = logs.page(store.get_task(tid), 0, 5000)
    assert page is not None and page.more and page.data.endswith(b"\n")
    assert secret.encode() not in page.data and REDACTED.encode() in page.data


async def test_the_follower_reads_a_long_unbroken_line_in_pieces(
    store: SQLStore, seeded: Seeded
) -> None:
    log = seeded.logs["running"]
    log.write_bytes(b"x" * (3 * PAGE_MAX + 10))  # no line break at all
    follower = LogFollower(store, seeded.tasks["running"], poll=0.01, max_seconds=0.3)
    sent = [chunk async for chunk in follower.events()]
    pieces = [c for c in sent if c.startswith(b"id: ")]
    assert len(pieces) == 3 and all(len(p) < PAGE_MAX + 100 for p in pieces)
    assert follower.offset == 3 * PAGE_MAX  # the unfinished rest waits for the task to end


def test_the_log_is_kept_redacted_and_capped_once_the_workspace_is_gone(
    store: SQLStore, seeded: Seeded, tmp_path: Path
) -> None:
    task = store.get_task(seeded.tasks["succeeded"])
    secret = "sk-kept-secret-0042"
    log = seeded.logs["succeeded"]
    lines = [orjson.dumps({"n": n, "key": secret, "pad": "y" * 1000}) for n in range(200)]
    log.write_bytes(b"\n".join(lines) + b"\n")
    logs = TaskLogs(tmp_path / "logs", Redactor([secret]), max_bytes=4096)
    kept = logs.keep(task.id, log.parent.parent)
    assert kept == tmp_path / "logs" / f"task-{task.id}.jsonl"
    os.rename(log.parent.parent, tmp_path / "gone")  # the workspace is removed
    page = logs.page(task)
    assert page is not None and page.kept
    *shown, note = (orjson.loads(line) for line in page.data.splitlines())
    assert shown[0] == {"n": 0, "key": REDACTED, "pad": "y" * 1000}
    assert note["log_capped"] is True and note["dropped_bytes"] > 100_000
    assert secret.encode() not in kept.read_bytes()
    assert len(kept.read_bytes()) < 4096 + 64 * 1024 + 200
    assert oct(kept.stat().st_mode & 0o777) == "0o600"
