"""A task page's Audit section over a seeded store (MemoryStore and SQLite): the task's
entries with their hashes, whether the whole chain verifies, the entry whose hash does not
(an edit by raw SQL), the empty state, and data written to mislead a browser shown as text,
in-process and in headless Chromium."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from starlette.applications import Starlette
from starlette.testclient import TestClient

from taskyard.audit import GENESIS
from taskyard.store import MemoryStore, SQLStore, Store
from taskyard.web.ui import ui_routes
from tests.integration.api_harness import Seeded, seed, serving

LOOPBACK = ("127.0.0.1", 50000)
HOSTILE = '<script>window.pwned=1</script><img src=x onerror="window.pwned=2">'
ESCAPED = "&lt;script&gt;window.pwned=1&lt;/script&gt;&lt;img src=x onerror=&#34;"


@dataclass
class World:
    store: Store
    seeded: Seeded
    app: Starlette

    def page_of(self, task: str) -> str:
        with TestClient(self.app, client=LOOPBACK, base_url="http://localhost") as client:
            answer = client.get(f"/ui/tasks/{self.seeded.tasks[task]}")
        assert answer.status_code == 200, answer.text[-500:]
        return answer.text


@pytest.fixture(params=["memory", "sqlite"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    """The seeded store (the succeeded task has entries 1 and 3; the failed one entry 4), and
    an entry of the failed task whose data would run as script if it were not escaped."""
    if request.param == "memory":
        store: Store = MemoryStore()
    else:
        store = SQLStore.open(f"sqlite:///{tmp_path / 'ui.db'}")
        store.migrate()
    seeded = seed(store, tmp_path / "workspaces", time.time())
    store.append_audit("refusal", seeded.tasks["failed"], HOSTILE, {"why": HOSTILE}, seeded.now)
    yield World(store, seeded, Starlette(routes=ui_routes(store, None, None)))
    store.close()


def _row(html: str, seq: int) -> str:
    start = html.index(f'<tr data-audit-seq="{seq}"')
    return html[start : html.index("</tr>", start)]


def test_the_task_page_shows_its_entries_and_an_intact_chain(world: World) -> None:
    html = world.page_of("succeeded")
    entries = world.store.audit_entries()
    assert "<h2>Audit</h2>" in html
    assert 'data-audit-chain="intact"' in html and "all 5 entries of the log" in html
    assert 'data-audit-seq="2"' not in html  # the entry of no task
    first, third = _row(html, 1), _row(html, 3)
    assert "<code>gate</code>" in first and "taskyard" in first
    assert "{&#34;gate&#34;:&#34;tests&#34;,&#34;ok&#34;:true}" in first
    assert f">{entries[0].hash[:12]}</code>" in first and f">{GENESIS[:12]}</code>" in first
    assert f">{entries[1].hash[:12]}</code>" in third  # its prev_hash: the entry before it
    assert "reviewer:codex" in third
    assert "data-audit-unverified" not in html and "does not verify" not in html


def test_a_task_without_entries_says_so(world: World) -> None:
    html = world.page_of("queued")
    assert "No audit entries for this task." in html
    assert 'data-audit-chain="intact"' in html


def test_hostile_entry_data_is_shown_as_text(world: World) -> None:
    html = world.page_of("failed")
    assert "<script>window" not in html and "<img src=x" not in html
    row = _row(html, 5)
    assert f"<td>{ESCAPED}window.pwned=2&#34;&gt;</td>" in row  # the actor
    data = row[row.index("data-audit-data>") :]
    assert data.startswith(
        "data-audit-data>{&#34;why&#34;:&#34;" + ESCAPED.replace("=&#34;", "=\\&#34;")
    )


def test_an_entry_edited_in_the_database_is_marked(world: World) -> None:
    if not isinstance(world.store, SQLStore):
        pytest.skip("a raw SQL edit needs a SQL store")
    with world.store.backend.transaction() as tx:
        tx.execute('UPDATE audit_log SET data = \'{"verdict":"fail"}\' WHERE seq = 3')
    html = world.page_of("succeeded")
    assert 'data-audit-chain="broken"' in html
    assert "The audit chain is broken (1 problem in 5 entries of the log)" in html
    assert '<li data-audit-problem="3">entry 3 was edited' in html
    assert "does not verify" in _row(html, 3) and "data-audit-unverified" in _row(html, 3)
    assert "data-audit-unverified" not in _row(html, 1)


def test_chromium_shows_the_audit_section_and_runs_nothing_from_it(
    world: World, page: Page
) -> None:
    with serving(world.app) as url:
        page.goto(f"{url}/ui/tasks/{world.seeded.tasks['failed']}")
        expect(page.locator("[data-audit-chain]")).to_contain_text("The audit chain verifies")
        row = page.locator('tr[data-audit-seq="5"]')
        expect(row.locator("[data-audit-data]")).to_contain_text(HOSTILE.replace('"', '\\"'))
        expect(row).to_contain_text("refusal")
        expect(page.locator('tr[data-audit-seq="4"]')).to_contain_text('{"why":"no"}')
        assert page.locator("table.audit script, table.audit img").count() == 0
        assert page.evaluate("window.pwned") is None
