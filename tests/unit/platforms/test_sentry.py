"""Sentry reads over REST, against a scripted Sentry (httpx MockTransport).

Shapes: the issue fields are those Sentry's own webhook payload documents for an issue
(shared/webhooks/sentry/docs.issue.created.json); the event is a minimal hand-written event
in the documented "Retrieve an Issue Event" shape (entries of type exception/breadcrumbs)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from taskyard.exceptions import PlatformPermanentError
from taskyard.platforms.sentry import MAX_BREADCRUMBS, SentryClient
from tests.unit.platforms.conftest import Script, Sleeps, json_response

TOKEN = "sntrys_SECRETtokenneverleaks"


def sentry(script: Script, sleeps: Sleeps, **kw: Any) -> SentryClient:
    return SentryClient(TOKEN, transport=script.transport, sleep=sleeps, **kw)


@pytest.fixture
def documented_issue(shared_dir: Path) -> dict[str, Any]:
    payload = json.loads((shared_dir / "webhooks/sentry/docs.issue.created.json").read_text())
    issue: dict[str, Any] = payload["data"]["issue"]
    return issue


async def test_issue_by_organisation(
    script: Script, sleeps: Sleeps, documented_issue: dict[str, Any]
) -> None:
    path = "/api/0/organizations/acme/issues/1170820242/"
    script.on(
        "GET", path, json_response(200, {**documented_issue, "participants": [{"email": "x"}]})
    )
    issue = await sentry(script, sleeps).issue("1170820242", organization="acme")
    assert issue["title"] == "ReferenceError: blooopy is not defined"
    assert issue["project"]["slug"] == "front-end" and "participants" not in issue
    assert script.requests[0].headers["authorization"] == f"Bearer {TOKEN}"


async def test_issue_without_organisation_uses_the_issue_path(
    script: Script, sleeps: Sleeps, documented_issue: dict[str, Any]
) -> None:
    script.on("GET", "/api/0/issues/1170820242/", json_response(200, documented_issue))
    await sentry(script, sleeps).issue("1170820242")
    assert script.paths() == ["/api/0/issues/1170820242/"]


async def test_configured_organisation_and_self_hosted_url(
    script: Script, sleeps: Sleeps, documented_issue: dict[str, Any]
) -> None:
    script.on(
        "GET", "/sentry/api/0/organizations/acme/issues/9/", json_response(200, documented_issue)
    )
    client = sentry(
        script, sleeps, base_url="https://errors.example.com/sentry/", organization="acme"
    )
    await client.issue("9")
    assert (
        str(script.requests[0].url)
        == "https://errors.example.com/sentry/api/0/organizations/acme/issues/9/"
    )


async def test_latest_event_keeps_the_stack_and_recent_breadcrumbs(
    script: Script, sleeps: Sleeps
) -> None:
    crumbs = [{"message": f"step {n}"} for n in range(100)]
    event = {
        "eventID": "def456",
        "title": "Error #1",
        "user": {"email": "person@example.com"},
        "entries": [
            {
                "type": "exception",
                "data": {"values": [{"type": "Error", "stacktrace": {"frames": []}}]},
            },
            {"type": "breadcrumbs", "data": {"values": crumbs}},
        ],
    }
    script.on(
        "GET", "/api/0/organizations/acme/issues/123/events/latest/", json_response(200, event)
    )
    latest = await sentry(script, sleeps).latest_event("123", organization="acme")
    assert "user" not in latest and latest["entries"][0]["type"] == "exception"
    kept = latest["entries"][1]["data"]["values"]
    assert len(kept) == MAX_BREADCRUMBS and kept[-1] == {"message": "step 99"}


async def test_missing_issue_is_permanent(script: Script, sleeps: Sleeps) -> None:
    script.on(
        "GET",
        "/api/0/issues/404/",
        json_response(404, {"detail": "The requested resource does not exist"}),
    )
    with pytest.raises(PlatformPermanentError, match="404: The requested resource") as caught:
        await sentry(script, sleeps).issue("404")
    assert "GET /api/0/issues/404/" in str(caught.value) and TOKEN not in str(caught.value)


async def test_429_honours_retry_after(
    script: Script, sleeps: Sleeps, documented_issue: dict[str, Any]
) -> None:
    limited = json_response(429, {"detail": "slow down"}, **{"retry-after": "6"})
    script.on("GET", "/api/0/issues/1/", limited, json_response(200, documented_issue))
    await sentry(script, sleeps).issue("1")
    assert sleeps.waits == [6.0]
