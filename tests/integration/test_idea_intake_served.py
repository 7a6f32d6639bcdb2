"""Ideas through a whole taskyard (wired as `taskyard serve` wires it). Discord's `/idea`: a
signed interaction is answered `{"type": 5}` at once, then the answer follows through the
interaction's webhook on the Discord test server (tests/discord_server.py: paths, methods and
fields as Discord documents them) — the idea's link, or what is missing. A GitHub idea issue
is taken before routing: an idea, and no route's decision."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from taskyard.intake import make_adapter
from taskyard.intake.discord import public_key_hex
from taskyard.platforms.discord_write import webhook_path
from tests.discord_server import API_ROOT, discord_server
from tests.integration.pipeline_harness import (
    REPO,
    WEBHOOK_SECRET,
    Yard,
    delivery,
    settings_for,
    yard,
)
from tests.platform_servers import PlatformServer, Recorded, github_server

SEED = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
APPLICATION = "1183000000000000000"
PUBLIC = "https://yard.example"


@pytest.fixture
def discord() -> Iterator[PlatformServer]:
    with discord_server() as server:
        yield server


@pytest.fixture
def gh() -> Iterator[PlatformServer]:
    with github_server() as server:
        yield server


def interaction(number: int, options: list[dict[str, Any]]) -> dict[str, Any]:
    """An APPLICATION_COMMAND interaction for `/idea` as Discord sends it."""
    return {
        "id": f"118400000000000000{number}",
        "application_id": APPLICATION,
        "type": 2,
        "token": f"aW50ZXJhY3Rpb246{number}OnNlY3JldC1pbnRlcmFjdGlvbi10b2tlbg",
        "version": 1,
        "guild_id": "1182000000000000000",
        "channel_id": "1182000000000000001",
        "member": {"user": {"id": "1181000000000000000", "username": "ada"}},
        "locale": "en-GB",
        "data": {"id": "1185000000000000000", "name": "idea", "type": 1, "options": options},
    }


async def send(yard: Yard, payload: dict[str, Any]) -> Any:
    signed = make_adapter("discord").sign(SEED, json.dumps(payload).encode(), time.time())
    answer = await yard.client.post(
        "/webhooks/discord", content=signed.body, headers=signed.headers
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


async def answered(discord: PlatformServer, payload: dict[str, Any]) -> Recorded:
    """The answer to `payload`, waited for off the loop (taskyard runs on it meanwhile)."""
    path = API_ROOT + webhook_path("edit_original", APPLICATION, payload["token"])
    found = await asyncio.to_thread(discord.wait_for, lambda r: r.path == path, 0, 30)
    assert found is not None, f"no answer to interaction {payload['id']}"
    return found


async def test_slash_idea_is_registered_and_answered_with_its_link(
    tmp_path: Path, gh: PlatformServer, discord: PlatformServer, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_for(
        tmp_path / "home",
        gh.base_url,
        sources={
            "github": {"secrets": [WEBHOOK_SECRET]},
            "discord": {"secrets": [public_key_hex(SEED)]},
        },
        ideas={"discord_api_url": discord.base_url, "public_url": PUBLIC + "/"},
    )
    good = interaction(
        1,
        [
            {"name": "goal", "type": 3, "value": "Dark mode for the dashboard"},
            {"name": "constraints", "type": 3, "value": "no flicker; keep contrast AA"},
            {"name": "priority", "type": 3, "value": "P1"},
        ],
    )
    no_goal = interaction(2, [{"name": "priority", "type": 3, "value": "P1"}])
    async with yard(settings) as y:
        assert await send(y, good) == {"type": 5}
        told = await answered(discord, good)
        (idea,) = y.services.store.list_ideas()
        assert await send(y, no_goal) == {"type": 5}
        refused = await answered(discord, no_goal)
        assert len(y.services.store.list_ideas()) == 1

    assert told.method == "PATCH"
    assert told.json()["content"] == f"Idea registered: {PUBLIC}/ui/ideas/{idea.id}"
    assert told.json()["allowed_mentions"] == {"parse": []}
    assert idea.goal == "Dark mode for the dashboard"
    assert idea.shape["constraints"] == ["no flicker", "keep contrast AA"]
    assert idea.origin["platform"] == "discord"
    assert idea.origin["actor"] == "ada"
    assert idea.origin["interaction_id"] == good["id"]
    assert "goal is missing" in refused.json()["content"]
    assert discord.problems == []
    assert len(discord.requests) == 2
    for secret in (good["token"], no_goal["token"]):
        assert secret not in caplog.text
        assert secret not in json.dumps(idea.origin)


async def test_an_idea_issue_through_taskyard_is_an_idea_not_a_task(
    tmp_path: Path, gh: PlatformServer
) -> None:
    """The interceptor takes the delivery before routing: no route's task is made of it."""
    settings = settings_for(tmp_path / "home", gh.base_url, ideas={"github_label": "proposal"})
    payload = delivery("issues.opened")
    payload["issue"]["body"] = "### Goal\n\nCSV export\n\n### Priority\n\nP2"
    plain = delivery("issues.opened")
    async with yard(settings) as y:
        sent = await y.send("issues", payload)
        assert sent.status_code == 202, sent.text
        await y.until(lambda: len(y.services.store.list_ideas()) == 1, "the idea")
        (idea,) = y.services.store.list_ideas()
        event_id = sent.json()["event_id"]
        await y.until(lambda: y.services.store.get_event(event_id).status != "received", "routed")
        other = (await y.send("issues", plain)).json()["event_id"]  # no form, no label
        await y.until(lambda: y.services.store.get_event(other).status != "received", "routed")
        store = y.services.store
        (decided,) = store.decisions_for(event_id)
        assert (store.get_event(event_id).status, decided.reason) == (
            "processed",
            f"idea {idea.id} registered",
        )
        assert (decided.route, decided.decision) == ("ideas", "idea")  # not an approval
        assert y.tasks_of(event_id) == []
        assert store.get_event(other).status == "ignored"  # routed as ever: no route takes it
        assert len(store.list_ideas()) == 1
    assert (idea.goal, idea.repo, idea.origin["number"]) == ("CSV export", REPO, 1)
