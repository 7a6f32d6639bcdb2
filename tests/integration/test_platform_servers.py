"""The fake platform servers of `tests/platform_servers.py`, driven by taskyard's own readers
and writers: a Linear workspace seeded from a real delivery answers every read taskyard makes
consistently with that delivery, its mutations change it and refuse what Linear refuses, and
each server records what breaks its platform's published contract."""

from __future__ import annotations

import json
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from taskyard.actions.directory import TeamDirectory
from taskyard.exceptions import PlatformPermanentError
from taskyard.platforms import linear_write as lw
from taskyard.platforms.base import RetryPolicy
from taskyard.platforms.github import GitHubClient
from taskyard.platforms.linear import LinearClient, query
from taskyard.platforms.linear_write import LinearWriter
from taskyard.platforms.slack import SlackClient
from tests.linear_workspace import LinearWorkspace, stable_id
from tests.platform_servers import (
    PlatformServer,
    SlackWorkspace,
    changed_lines,
    diff_files,
    github_server,
    linear_server,
    serve_pull_request,
    slack_server,
)

SHARED = Path(__file__).resolve().parents[3] / "shared" / "webhooks"
KEY = "lin_api_fake_platform_key"
CREATED = json.loads((SHARED / "linear" / "issue.create.json").read_text())
ISSUE_ID = CREATED["data"]["id"]
TEAM_ID = CREATED["data"]["team"]["id"]


def workspace() -> LinearWorkspace:
    ws = LinearWorkspace(url_key="korosuke613")
    ws.add_delivered_issue(CREATED)
    for name in ("Bug", "Feature"):
        ws.add_label(name, TEAM_ID)
    area = ws.add_label("Area", TEAM_ID, group=True)
    ws.add_label("Backend", TEAM_ID, parent=area)
    ws.add_label("Customer")  # a workspace label
    ws.add_issue(TEAM_ID, "webhook test fails on retry", description="same as KOR-11?")
    ws.add_issue(TEAM_ID, "Unrelated dashboard colour")
    return ws


@pytest.fixture
def linear_ws() -> LinearWorkspace:
    return workspace()


@pytest.fixture
def linear(linear_ws: LinearWorkspace) -> Iterator[PlatformServer]:
    with linear_server(linear_ws) as server:
        yield server


@pytest.fixture
async def reader(linear: PlatformServer) -> AsyncIterator[LinearWriter]:
    client = LinearWriter(KEY, url=linear.base_url, retry=RetryPolicy(attempts=1))
    yield client
    await client.aclose()


async def test_linear_reads_agree_with_the_delivery(
    linear: PlatformServer, reader: LinearClient, linear_ws: LinearWorkspace
) -> None:
    issue = await reader.issue(ISSUE_ID)
    assert (issue["id"], issue["identifier"], issue["title"]) == (
        ISSUE_ID,
        "KOR-11",
        "webhook test",
    )
    assert issue["team"] == {"id": TEAM_ID, "key": "KOR", "name": "korosuke613"}
    assert issue["state"]["id"] == CREATED["data"]["stateId"] and issue["labels"] == []
    assert issue["url"] == CREATED["url"]
    team = await reader.team(TEAM_ID)
    assert {x["name"] for x in team["labels"]} == {"Bug", "Feature", "Area", "Backend"}
    assert team["labels"][-1]["parent"]["name"] == "Area"
    assert [s["name"] for s in team["states"]][:2] == ["Backlog", "Todo"]
    assert [p["label"] for p in team["priorities"]][:2] == ["No priority", "Urgent"]
    related = await reader.related(ISSUE_ID, title="webhook test", team_id=TEAM_ID)
    assert [i["title"] for i in related["issues"]] == ["webhook test fails on retry"]
    assert await reader.issue_team(ISSUE_ID) == TEAM_ID
    directory = TeamDirectory.from_json(TEAM_ID, await reader.team_directory(TEAM_ID))
    assert directory.labels(TEAM_ID, ["bug", "Customer", "Area"]) == {
        "bug": linear_ws.label_id("Bug", TEAM_ID),
        "Customer": linear_ws.label_id("Customer"),
    }
    assert directory.states(TEAM_ID, ["Done"]) == {"Done": stable_id(TEAM_ID, "state", "Done")}
    assert linear.problems == []
    assert {r.json()["query"] for r in linear.requests} >= {query("issue"), query("team")}


async def test_linear_mutations_change_the_workspace_and_refuse_like_linear(
    linear: PlatformServer, reader: LinearWriter, linear_ws: LinearWorkspace
) -> None:
    bug = linear_ws.label_id("Bug", TEAM_ID)
    done = await reader.send(lw.issue_update(ISSUE_ID, added_label_ids=[bug], priority=2))
    assert done.external_id == "KOR-11" and done.url == CREATED["url"]
    assert linear_ws.issue(ISSUE_ID)["labelIds"] == [bug]
    assert linear_ws.issue(ISSUE_ID)["priority"] == 2
    chosen = lw.linear_uuid("a key")
    comment = await reader.send(lw.comment_create(ISSUE_ID, "Steps?", id=chosen))
    assert comment.external_id == chosen and comment.url and CREATED["url"] in comment.url
    with pytest.raises(PlatformPermanentError, match="already exists"):
        await reader.send(lw.comment_create(ISSUE_ID, "Steps?", id=chosen))
    assert (await reader.find_comment(chosen) or {})["id"] == chosen
    assert await reader.find_comment(lw.linear_uuid("another")) is None
    made = await reader.send(lw.issue_create(TEAM_ID, "Crash", "trace", label_ids=[bug]))
    assert made.external_id == "KOR-14" and made.url and "/issue/KOR-14/crash" in made.url
    with pytest.raises(PlatformPermanentError, match="Could not find referenced IssueLabel"):
        await reader.send(lw.issue_update(ISSUE_ID, added_label_ids=[lw.linear_uuid("x")]))
    with pytest.raises(PlatformPermanentError, match="Could not find referenced Issue"):
        await reader.send(lw.issue_update("KOR-999", priority=1))
    assert await reader.find_issue(lw.linear_uuid("never made")) is None
    assert linear.problems == []


def test_linear_documents_are_validated_and_unanswerable_fields_are_problems(
    linear: PlatformServer,
) -> None:
    bad = {"query": "query { issue(id: 1) { id nosuchfield } }", "variables": {}}
    wrong_variable = {"query": query("issue"), "variables": {"id": 5}}
    unanswerable = {"query": 'query { issue(id: "KOR-11") { id sortOrder } }', "variables": {}}
    answers = [httpx.post(linear.base_url, json=body) for body in (bad, wrong_variable)]
    answers.append(httpx.post(linear.base_url, json=unanswerable))
    assert [a.status_code for a in answers] == [400, 400, 400]
    assert answers[2].json()["data"] is None and "sortOrder" in answers[2].text
    problems = "\n".join(linear.problems)
    assert "Cannot query field 'nosuchfield' on type 'Issue'" in problems
    assert "Variable '$id' has invalid value" in problems
    assert "cannot answer issue.sortOrder: Cannot return null" in problems


async def test_linear_without_a_workspace_answers_samples() -> None:
    with linear_server() as server:
        writer = LinearWriter(KEY, url=server.base_url, retry=RetryPolicy(attempts=1))
        try:
            done = await writer.send(lw.issue_update("ENG-1", priority=1))
            assert await writer.find_issue("whatever") is None
        finally:
            await writer.aclose()
    assert done.external_id == "ENG-123" and server.problems == []


def _git(*args: str, cwd: Path) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def diff(tmp_path: Path) -> str:
    _git("init", "-q", "-b", "main", cwd=tmp_path)
    (tmp_path / "a.py").write_text("one\ntwo\nthree\n")
    _git("add", ".", cwd=tmp_path)
    _git("-c", "user.name=d", "-c", "user.email=d@e", "commit", "-qm", "1", cwd=tmp_path)
    (tmp_path / "a.py").write_text("one\nTWO\nthree\nfour\n")
    (tmp_path / "b.py").write_text("new\n")
    _git("add", ".", cwd=tmp_path)
    return _git("diff", "--cached", cwd=tmp_path)


def test_diff_helpers(diff: str) -> None:
    assert changed_lines(diff) == {"a.py": {2, 4}, "b.py": {1}}
    files = {f["filename"]: f for f in diff_files(diff)}
    assert (files["a.py"]["status"], files["a.py"]["additions"], files["a.py"]["deletions"]) == (
        "modified",
        2,
        1,
    )
    assert files["b.py"]["status"] == "added" and files["b.py"]["patch"].startswith("@@")


async def test_github_pull_request_reads_and_body_checks(diff: str) -> None:
    payload = json.loads((SHARED / "github" / "pull_request.opened.json").read_text())
    with github_server() as gh:
        serve_pull_request(gh, payload, diff)
        client = GitHubClient(token="ghp_x", base_url=gh.base_url, retry=RetryPolicy(attempts=1))
        try:
            repo = payload["repository"]["full_name"]
            pr = await client.pull_request(repo, 2)
            got = await client.pull_request_diff(repo, 2)
            files = await client.pull_request_files(repo, 2)
        finally:
            await client.aclose()
        bad = httpx.post(f"{gh.base_url}/repos/o/r/issues/1/labels", json={"label": ["x"]})
        undocumented = httpx.post(f"{gh.base_url}/repos/o/r/nothing", json={})
    assert pr["title"] == payload["pull_request"]["title"] and got["diff"] == diff
    assert [f["filename"] for f in files["files"]] == ["a.py", "b.py"]
    assert bad.status_code == 200 and undocumented.status_code == 404
    assert gh.problems == [
        "POST /repos/o/r/issues/1/labels: body.label: not a documented field",
        "POST /repos/o/r/nothing is not a documented operation",
    ]


async def test_slack_threads_and_argument_checks() -> None:
    ws = SlackWorkspace()
    ws.add_message("C1", {"type": "message", "user": "U1", "text": "it broke", "ts": "1.000100"})
    with slack_server(ws) as slack:
        client = SlackClient("xoxb-x", base_url=slack.base_url, retry=RetryPolicy(attempts=1))
        first = await client.thread("C1", "1.000100")
        httpx.post(
            f"{slack.base_url}chat.postMessage",
            json={"channel": "C1", "text": "hi", "thread_ts": "1.000100"},
        )
        second = await client.thread("C1", "1.000100")
        with pytest.raises(PlatformPermanentError, match="thread_not_found"):
            await client.thread("C1", "9.9")
        httpx.post(f"{slack.base_url}reactions.add", data={"channel": "C1", "ts": "1.0"})
    assert [m["text"] for m in first["messages"]] == ["it broke"]
    assert [m["text"] for m in second["messages"]] == ["it broke", "hi"]
    assert slack.problems == [
        "reactions.add: ts is not an argument",
        "reactions.add: name is missing",
        "reactions.add: timestamp is missing",
    ]
