"""Ideas from GitHub (a real `issues.opened` delivery, edited to carry the idea form or the
label), on every store: one idea however often the delivery is routed, and a missing field
answered by a comment on the issue — sent to the GitHub test server, which checks it against
GitHub's OpenAPI description. `taskyard ideas submit FILE` and `POST /api/ideas` take the same
shape and refuse a bad one (exit 2; 422) with what is wrong."""

from __future__ import annotations

import copy
import hashlib
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from typer.testing import CliRunner

from taskyard.actions.keys import markers_in
from taskyard.cli.main import app
from taskyard.exceptions import PlatformPermanentError
from taskyard.ideas.intake import IdeaIntake
from taskyard.ideas.service import IdeaService
from taskyard.models import Decision, Event, Priority, new_id
from taskyard.platforms.base import RetryPolicy
from taskyard.platforms.discord_write import DiscordWebhooks, webhook_path
from taskyard.platforms.github_write import GitHubWriter
from taskyard.routing.job import Consumed
from taskyard.store import SQLStore, Store
from tests.discord_server import API_ROOT, discord_server
from tests.integration.api_harness import BEARER, app_for, conforms
from tests.platform_servers import PlatformServer, Reply, github_server

SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "webhooks" / "github"
TOKEN = "ghp_IDEAStokenTHATmustNEVERleak0123456789"
REPO, NUMBER = "Codertocat/Hello-World", 1  # the sample delivery's repository and issue
COMMENTS = f"/repos/{REPO}/issues/{NUMBER}/comments"
FORM = """### Goal

Let people export their reports as CSV from the reports page.

### Constraints

- No new runtime dependencies
- Keep the export under 2 s for 10k rows

### Success metrics

- A CSV download button on every report

### Priority

P1

### Repository

_No response_

### Labels

- [X] export
- [ ] backend
"""


def opened(body: str | None = None, labels: tuple[str, ...] = ()) -> dict[str, Any]:
    """The sample `issues.opened` delivery with this body and these labels."""
    payload: dict[str, Any] = json.loads((SAMPLE / "issues.opened.json").read_text())
    issue = payload["issue"]
    if body is not None:
        issue["body"] = body
    template = {"id": 1, "node_id": "L1", "url": "", "color": "ededed", "default": False}
    issue["labels"] = [{**copy.deepcopy(template), "name": name} for name in labels]
    return payload


def event_of(payload: dict[str, Any]) -> Event:
    body = json.dumps(payload).encode()
    return Event(
        id=new_id(),
        source="github",
        type="github:issues.opened",
        delivery_id=new_id(),
        subject=f"{REPO}#{NUMBER}",
        actor="Codertocat",
        received_at=time.time(),
        priority=Priority.P2,
        headers={"x-github-event": "issues"},
        body=body,
        content_hash=hashlib.sha256(body).hexdigest(),
    )


@pytest.fixture
def gh() -> Iterator[PlatformServer]:
    with github_server() as server:
        yield server


@pytest.fixture
async def intake(store: Store, gh: PlatformServer) -> AsyncIterator[IdeaIntake]:
    writer = GitHubWriter(token=TOKEN, base_url=gh.base_url)
    with discord_server() as discord:
        made = IdeaIntake(
            IdeaService(store),
            "idea",
            "https://yard.example",
            DiscordWebhooks(discord.base_url),
            writer,
        )
        yield made
        await made.aclose()
        await writer.aclose()
        assert discord.requests == []  # GitHub ideas say nothing on Discord


async def test_an_issue_form_is_one_idea_however_often_it_is_routed(
    intake: IdeaIntake, store: Store, gh: PlatformServer
) -> None:
    payload = opened(FORM)
    event = event_of(payload)
    first = await intake.intercept(event, payload)
    again = await intake.intercept(event, payload)  # the routing job run twice
    ideas = store.list_ideas()
    assert len(ideas) == 1
    idea = ideas[0]
    assert first == again == Consumed(f"idea {idea.id} registered", "ideas", Decision.IDEA)
    assert idea.goal == "Let people export their reports as CSV from the reports page."
    assert idea.shape["constraints"] == [
        "No new runtime dependencies",
        "Keep the export under 2 s for 10k rows",
    ]
    assert idea.shape["priority"] == "P1"
    assert idea.shape["labels"] == ["export"]
    assert idea.repo == REPO  # the form left it empty: the issue's repository
    assert idea.origin == {
        "platform": "github",
        "repo": REPO,
        "number": NUMBER,
        "actor": "Codertocat",
        "url": f"https://github.com/{REPO}/issues/{NUMBER}",
    }
    assert gh.requests == []  # a registered idea is not commented on here


async def test_a_labelled_issue_without_the_form_is_an_idea_of_its_text(
    intake: IdeaIntake, store: Store
) -> None:
    payload = opened(labels=("bug", "idea"))
    said = await intake.intercept(event_of(payload), payload)
    (idea,) = store.list_ideas()
    assert said is not None and said.text == f"idea {idea.id} registered"
    assert idea.goal.startswith("Spelling error in the README file\n\n")
    assert payload["issue"]["body"] in idea.goal


async def test_a_missing_goal_is_answered_on_the_issue(
    intake: IdeaIntake, store: Store, gh: PlatformServer
) -> None:
    body = FORM.replace(
        "Let people export their reports as CSV from the reports page.", "_No response_"
    )
    payload = opened(body)
    event = event_of(payload)
    said = await intake.intercept(event, payload)
    assert said is not None and said.text == "idea refused: goal is missing"
    assert store.list_ideas() == []
    (sent,) = gh.requests
    assert (sent.method, sent.path) == ("POST", COMMENTS)
    text = sent.json()["body"]
    assert "goal is missing" in text
    assert markers_in(text) == [f"idea.{event.id}"]
    assert TOKEN not in sent.everything_but_auth()
    assert gh.problems == []


async def test_an_issue_that_is_no_idea_goes_on_to_routing(
    intake: IdeaIntake, store: Store, gh: PlatformServer
) -> None:
    payload = opened(labels=("bug",))
    assert await intake.intercept(event_of(payload), payload) is None
    other = replace(event_of(payload), type="github:issues.labeled")
    assert await intake.intercept(other, opened(FORM)) is None
    assert store.list_ideas() == []
    assert gh.requests == []


# --- the CLI and the API ------------------------------------------------------------------


def _cli(tmp_path: Path, *args: str) -> Any:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    runner = CliRunner()
    return runner.invoke(
        app, [*args, "--database-url", url], env={"TASKYARD_HOME": str(tmp_path / "home")}
    )


def test_cli_submits_a_yaml_idea(tmp_path: Path) -> None:
    path = tmp_path / "idea.yaml"
    path.write_text(
        "goal: Faster CI\nconstraints:\n  - no new services\npriority: P1\nrepo: acme/api\n"
        "budget_usd: 4\n"
    )
    done = _cli(tmp_path, "ideas", "submit", str(path), "--json")
    assert done.exit_code == 0, done.output
    shown = orjson.loads(done.stdout)
    assert shown["status"] == "registered"
    assert shown["goal"] == "Faster CI"
    assert shown["budget_usd"] == 4.0
    assert shown["origin"] == {"platform": "cli", "file": "idea.yaml"}
    store = SQLStore.open(f"sqlite:///{tmp_path / 'cli.db'}")
    try:
        assert store.get_idea(shown["id"]).shape["constraints"] == ["no new services"]
    finally:
        store.close()


def test_cli_refuses_an_idea_without_a_goal(tmp_path: Path) -> None:
    path = tmp_path / "idea.json"
    path.write_text(json.dumps({"priority": "P7", "constraints": ["x"]}))
    done = _cli(tmp_path, "ideas", "submit", str(path))
    assert done.exit_code == 2
    said = " ".join(done.stderr.split())
    assert "goal is missing" in said
    assert "priority must be one of P0, P1, P2, P3" in said
    assert done.stdout == ""


async def test_api_submits_an_idea_and_refuses_a_bad_one(tmp_path: Path) -> None:
    store = SQLStore.open(f"sqlite:///{tmp_path / 'api.db'}")
    store.migrate()
    try:
        transport = httpx.ASGITransport(app=app_for(store, tmp_path), client=("127.0.0.1", 1))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://127.0.0.1", headers=BEARER
        ) as client:
            made = await client.post("/api/ideas", json={"goal": "Dark mode", "risk": "low"})
            refused = await client.post("/api/ideas", json={"goal": " ", "budget_usd": -1})
            empty = await client.post("/api/ideas", content=b"")
            not_json = await client.post("/api/ideas", content=b"[1]")
            anonymous = await client.post(
                "/api/ideas", json={"goal": "x"}, headers={"authorization": ""}
            )
        assert made.status_code == 201, made.text
        idea = made.json()
        assert (idea["goal"], idea["shape"]["risk"], idea["origin"]) == (
            "Dark mode",
            "low",
            {"platform": "api"},
        )
        assert store.get_idea(idea["id"]).status == "registered"
        assert refused.status_code == 422
        assert refused.json()["problems"] == ["goal is empty", "budget_usd must be more than 0"]
        conforms("/api/ideas", "POST", 201, idea)
        conforms("/api/ideas", "POST", 422, refused.json())
        assert empty.status_code == 422
        assert empty.json()["problems"] == ["goal is missing"]
        assert not_json.status_code == 400
        assert anonymous.status_code == 401
        assert len(store.list_ideas()) == 1
    finally:
        store.close()


# --- the Discord client against Discord's documented routes -------------------------------


async def test_discord_webhooks_use_the_documented_routes_and_hide_the_token() -> None:
    token = "aW50ZXJhY3Rpb246c2VjcmV0LXRva2VuLXZhbHVl"
    retry = RetryPolicy(attempts=3, backoff=0.0)
    with discord_server() as discord:
        client = DiscordWebhooks(discord.base_url, retry=retry)
        original = API_ROOT + webhook_path("edit_original", "42", token)
        discord.queue("PATCH", original, Reply(502, {"message": "bad gateway"}))
        try:
            edited = await client.answer("42", token, "first")
            posted = await client.follow_up("42", token, "second")
            with pytest.raises(PlatformPermanentError) as refused:
                await DiscordWebhooks(discord.url + "/nowhere", retry=retry).answer(
                    "42", token, "lost"
                )
        finally:
            await client.aclose()
        sent = [(r.method, r.path, r.json()["content"]) for r in discord.requests]
        assert discord.problems == [
            f"PATCH /nowhere{original.removeprefix(API_ROOT)}: not an endpoint Discord documents"
        ]
    assert sent == [
        ("PATCH", original, "first"),  # 502: tried again
        ("PATCH", original, "first"),
        ("POST", API_ROOT + f"/webhooks/42/{token}", "second"),
        ("PATCH", "/nowhere" + original.removeprefix(API_ROOT), "lost"),
    ]
    assert edited["content"] == "first" and posted["content"] == "second"
    assert refused.value.status == 404
    assert token not in str(refused.value)
