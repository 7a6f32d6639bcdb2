"""The idea page over a seeded store (MemoryStore and SQLite): the plan of a diamond idea
(A → B, A → C, B + C → D; A succeeded, B running, C failed, D blocked) drawn as SVG — a box
per task with its state, branch and cost, an edge per dependency, what each waits on in its
`<title>` — a hostile title shown as text, and the pause and resume buttons, in-process and in
headless Chromium."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from starlette.applications import Starlette
from starlette.testclient import TestClient

from taskyard.idea import Idea, IdeaStatus, IdeaTask
from taskyard.store import MemoryStore, SQLStore, Store
from taskyard.web.ui import ui_routes
from tests.integration.api_harness import serving
from tests.integration.idea_harness import mixed_diamond, running_idea

LOOPBACK = ("127.0.0.1", 50000)
HOSTILE = '<script>window.pwned=1</script><img src=x onerror="window.pwned=2">'
STATES = {"A": "succeeded", "B": "running", "C": "failed", "D": "blocked"}


@dataclass
class World:
    store: Store
    idea: Idea
    ids: dict[str, str]
    app: Starlette

    def html(self, path: str) -> str:
        with TestClient(self.app, client=LOOPBACK, base_url="http://localhost") as client:
            answer = client.get(path)
        assert answer.status_code == 200, answer.text[-500:]
        return answer.text


@pytest.fixture(params=["memory", "sqlite"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    if request.param == "memory":
        store: Store = MemoryStore()
    else:
        store = SQLStore.open(f"sqlite:///{tmp_path / 'ui.db'}")
        store.migrate()
    idea, ids = mixed_diamond(store)
    yield World(store, idea, dict(ids), Starlette(routes=ui_routes(store, None, None)))
    store.close()


def _node(html: str, key: str) -> str:
    start = html.index(f'data-key="{key}"')
    return html[start : html.index("</g>", start)]


def test_the_page_draws_the_diamond(world: World) -> None:
    html = world.html(f"/ui/ideas/{world.idea.id}")
    svg = html[html.index("<svg") : html.index("</svg>")]
    states = dict(re.findall(r'data-key="(\w)" data-state="(\w+)"', svg))
    assert states == STATES
    edges = re.findall(r'data-from="(\w)" data-to="(\w)"', svg)
    assert sorted(edges) == [("A", "B"), ("A", "C"), ("B", "D"), ("C", "D")]
    columns = dict(re.findall(r'data-key="(\w)"[^>]*data-column="(\d)"', svg))
    assert columns == {"A": "0", "B": "1", "C": "1", "D": "2"}
    d = _node(svg, "D")
    assert "waits on: B, C" in d and "blocked: a task it depends on" in d
    assert "no branch yet" in d
    a = _node(svg, "A")
    assert f"taskyard/idea-{world.idea.id}/A" in a and "$0.5000" in a
    assert f'href="/ui/tasks/{world.ids["A"]}"' in svg  # a scheduled task links to its page
    assert "$0.7500" in html  # the idea's cost: A's and C's
    assert 'data-plan-version="0"' in html and "task D depends on missing E" in html
    forms = re.findall(r'data-idea-step="(\w+)"', html)
    assert forms == ["pause", "cancel"]  # a running idea cannot be resumed


def test_the_list_links_each_idea(world: World) -> None:
    other = running_idea(world.store, "idea-other")
    html = world.html("/ui/ideas?status=running")
    assert f'href="/ui/ideas/{world.idea.id}"' in html and f'href="/ui/ideas/{other.id}"' in html
    assert "No ideas." in world.html("/ui/ideas?status=completed")


def test_a_hostile_title_is_shown_as_text(world: World) -> None:
    world.store.set_idea_tasks(
        world.idea.id, [IdeaTask(world.idea.id, "E", HOSTILE, ("D",), 1, {})]
    )
    html = world.html(f"/ui/ideas/{world.idea.id}")
    assert "<script>window" not in html and "<img src=x" not in html
    assert "&lt;script&gt;" in _node(html, "E")


def test_chromium_draws_the_plan_and_pauses_the_idea(world: World, page: Page) -> None:
    with serving(world.app) as url:
        page.goto(f"{url}/ui/ideas/{world.idea.id}")
        boxes = page.locator("svg.dag g.dag-node")
        expect(boxes).to_have_count(4)
        for key, state in STATES.items():
            box = page.locator(f'svg.dag g.dag-node[data-key="{key}"]')
            expect(box).to_have_attribute("data-state", state)
            assert box.bounding_box() is not None  # drawn, with a size
        expect(page.locator("svg.dag path.dag-edge")).to_have_count(4)
        b_right = page.locator('g[data-key="B"]').bounding_box()
        d_left = page.locator('g[data-key="D"]').bounding_box()
        assert b_right is not None and d_left is not None
        assert d_left["x"] > b_right["x"] + b_right["width"]  # D is drawn after B
        tip = page.locator('g[data-key="D"] > title').text_content()
        assert tip is not None and "waits on: B, C" in tip
        form = page.locator('form[data-idea-step="pause"]')
        form.get_by_label("reason").fill("budget review")
        form.get_by_role("button", name="Pause idea").click()
        expect(page.locator("p.flash")).to_contain_text(f"Idea {world.idea.id} is paused.")
        expect(page.locator("[data-idea-status]")).to_have_attribute("data-idea-status", "paused")
        expect(page.locator("[data-idea-reason]")).to_have_text("budget review")
        expect(page.locator('form[data-idea-step="resume"]')).to_be_visible()
        assert world.store.get_idea(world.idea.id).status is IdeaStatus.PAUSED
        page.get_by_role("button", name="Resume idea").click()
        expect(page.locator("[data-idea-status]")).to_have_attribute("data-idea-status", "running")
        assert page.evaluate("window.pwned") is None
