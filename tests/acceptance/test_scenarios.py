"""The four seed scenarios end to end: a SIGNED real delivery → `taskyard serve` → the real
claude or codex (against the scripted model, tests/acceptance/scripts/scenarios.yaml) →
the actions applied to the recording GitHub, Linear and Slack servers, each request checked
against the platform's published contract (OpenAPI, GraphQL schema, slack-sdk).

1. Linear triage (claude): labels by name → `issueUpdate.addedLabelIds` with the team's ids,
   priority, a comment.
2. Slack bug report (claude): a Linear issue in the default team and a reply in the thread;
   a thin report gets questions only.
3. Pull request review (codex, in a git worktree): the 👀 reaction, then a review with inline
   comments on changed lines.
4. Sentry issue (claude): a Linear issue in the default team with the trace's key frames.
5. The triage's labels through the MCP `add_labels` tool, with claude and with codex: the same
   request and an equivalent action record.
6. Dry-run with tokens records exactly the requests the live run sent; without any token
   nothing reaches any server and the tasks still succeed.

One set of servers, one model server and one live `taskyard serve` (SQLite) serve the whole
module; the dry-run and token-less yards start when their test needs them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from taskyard.devtools.model_server import ModelServer
from taskyard.platforms.linear import query
from taskyard.platforms.linear_write import linear_uuid, mutation
from tests.acceptance.run_harness import make_repository
from tests.acceptance.scenario_harness import (
    BUGS_CHANNEL,
    CREATED,
    ISSUE_ID,
    REPORTER,
    SCRIPT,
    SENTRY,
    TEAM_ID,
    TOKENS,
    UPDATED,
    Platforms,
    ScenarioYard,
    actions_by_index,
    git_diff,
    leaks,
    linear_delivery,
    mutations,
    planned,
    platforms,
    pull_request_delivery,
    slack_message,
    wire,
    yard_config,
)
from tests.platform_servers import Recorded, changed_lines, github_problems

pytestmark = pytest.mark.slow

REPO = "Codertocat/Hello-World"
NUMBER = 2  # the pull request of GitHub's sample delivery
JSON = "application/vnd.github+json"


def _script_actions(name: str) -> list[dict[str, Any]]:
    """The actions the scripted model's conversation `name` finally proposes."""
    for conversation in yaml.safe_load(SCRIPT.read_text())["scripts"]:
        if conversation["name"] == name:
            final = conversation["turns"][-1]["final"]
            return list(final["actions"])
    raise KeyError(name)


@dataclass
class World:
    root: Path
    platforms: Platforms
    model: ModelServer
    diff: str
    head: str
    yards: list[ScenarioYard] = field(default_factory=list)

    def yard(
        self, name: str, *, tokens: bool, dry_run: bool | None, database_url: str | None = None
    ) -> ScenarioYard:
        yard = ScenarioYard(
            self.root / name,
            yard_config(self.platforms, dry_run=dry_run),
            tokens=tokens,
            model_url=self.model.url,
            git_url_template=f"file://{self.root}/mirrors-src/{{owner}}/{{repo}}.git",
            database_url=database_url,
        )
        self.yards.append(yard)
        yard.start()
        return yard


@dataclass(frozen=True)
class Run:
    """One delivery's tasks (`tasks show --json`) and what reached each platform meanwhile."""

    tasks: list[dict[str, Any]]
    sent: dict[str, list[Recorded]]

    @property
    def task(self) -> dict[str, Any]:
        (only,) = self.tasks
        return only


def run(world: World, yard: ScenarioYard, *deliveries: tuple[str, Any, str | None, int]) -> Run:
    """Post each (source, payload, event, number of tasks) delivery, wait for all their
    tasks to end, and collect what the platforms received meanwhile."""
    marks = world.platforms.marks()
    events = [(yard.deliver(src, payload, event), n) for src, payload, event, n in deliveries]
    tasks = [task for event_id, n in events for task in yard.wait_tasks(event_id, n)]
    time.sleep(0.2)  # a report still in flight would show up here
    sent = world.platforms.since(marks)
    assert world.platforms.problems() == []
    assert leaks(sent) == []
    for task in tasks:  # what the agent saw and said holds no platform token
        files = Path(task["workspace"]).rglob("*")
        seen = [p for p in files if p.suffix in (".md", ".json", ".jsonl")]
        assert not [p for p in seen if any(t in p.read_text() for t in TOKENS.values())]
    return Run(tasks, sent)


def record_requests(task: dict[str, Any], order: list[int]) -> list[dict[str, Any]]:
    """The requests of the task's records, in the order the records were applied."""
    actions = actions_by_index(task)
    return [
        {k: r[k] for k in ("method", "path", "body")} for i in order for r in actions[i]["requests"]
    ]


def _is_write(platform: str, request: Recorded) -> bool:
    if platform == "github":
        return request.method != "GET"
    if platform == "linear":
        return bool(request.json()["query"].lstrip().startswith("mutation"))
    return not request.path.endswith("conversations.replies")


def writes(sent: dict[str, list[Recorded]]) -> list[dict[str, Any]]:
    """Every write that reached a platform, oldest first, in the shape of a record's
    requests."""
    found = [
        (r.at, wire(r, p)) for p, requests in sent.items() for r in requests if _is_write(p, r)
    ]
    return [w for _, w in sorted(found, key=lambda f: f[0])]


def succeeded(task: dict[str, Any], route: str, agent: str) -> None:
    assert (task["route"], task["agent"]) == (route, agent)
    assert task["status"] == "succeeded", task["reason"]


# --- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("scenarios")
    head = make_repository(root)
    diff = git_diff(root / "src")
    with ExitStack() as stack:
        servers = stack.enter_context(platforms(diff, head))
        model = stack.enter_context(ModelServer(SCRIPT))
        world = World(root, servers, model, diff, head)
        try:
            yield world
        finally:
            for yard in world.yards:
                yard.stop()


@pytest.fixture(scope="module")
def live(world: World) -> ScenarioYard:
    return world.yard("live", tokens=True, dry_run=None)


@pytest.fixture(scope="module")
def triage_live(world: World, live: ScenarioYard) -> Run:
    return run(world, live, ("linear", linear_delivery(CREATED), None, 1))


@pytest.fixture(scope="module")
def review_live(world: World, live: ScenarioYard) -> Run:
    return run(world, live, ("github", pull_request_delivery(world.head), "pull_request", 1))


# --- 1. Linear triage -----------------------------------------------------------------------


def test_linear_triage_applies_labels_priority_and_comment(world: World, triage_live: Run) -> None:
    task = triage_live.task
    succeeded(task, "linear-triage", "claude")
    acts = actions_by_index(task)
    assert sorted(acts) == [0, 1, 2]  # no start note on Linear by default; no summary
    assert [(acts[i]["type"], acts[i]["status"]) for i in range(3)] == [
        ("add_labels", "applied"),
        ("set_priority", "applied"),
        ("comment", "applied"),
    ]
    ws = world.platforms.linear_ws
    bug, backend = ws.label_id("Bug", TEAM_ID), ws.label_id("Backend", TEAM_ID)
    comment_id = linear_uuid(acts[2]["key"])
    proposed = _script_actions("linear-triage")
    update, create_comment = mutation("issue_update"), mutation("comment_create")
    assert mutations(triage_live.sent["linear"]) == [
        {
            "query": update,
            "variables": {"id": ISSUE_ID, "input": {"addedLabelIds": [bug, backend]}},
        },
        {"query": update, "variables": {"id": ISSUE_ID, "input": {"priority": 2}}},
        {
            "query": create_comment,
            "variables": {
                "input": {
                    "id": comment_id,
                    "issueId": ISSUE_ID,
                    "body": proposed[2]["params"]["body"],
                }
            },
        },
    ]
    assert record_requests(task, [0, 1, 2]) == writes(triage_live.sent)
    issue = ws.issue(ISSUE_ID)
    assert issue["labelIds"] == [bug, backend] and issue["priority"] == 2
    assert [c["id"] for c in ws.comments_of(ISSUE_ID)] == [comment_id]
    assert acts[0]["url"] == CREATED["url"] and acts[2]["external_id"] == comment_id
    # The agent read what taskyard fetched, consistent with the delivery.
    asked = {r.json()["query"] for r in triage_live.sent["linear"]}
    assert {query(n) for n in ("issue", "related", "team", "team_directory")} <= asked
    archive = Path(task["workspace"])
    context = archive / "context"
    assert json.loads((context / "linear.issue.json").read_text())["id"] == ISSUE_ID
    team = json.loads((context / "linear.team.json").read_text())
    assert team["id"] == TEAM_ID and {"Bug", "Backend"} <= {x["name"] for x in team["labels"]}
    related = json.loads((context / "linear.related.json").read_text())
    assert [i["identifier"] for i in related["issues"]] == ["KOR-12"]
    listed = (archive / "workspace" / "triage-context.txt").read_text().split()
    assert {"linear.issue.json", "linear.related.json", "linear.team.json"} <= set(listed)
    assert triage_live.sent["github"] == [] and triage_live.sent["slack"] == []


# --- 2. Slack bug report ---------------------------------------------------------------------


def _slack_report(world: World, live: ScenarioYard, text: str, ts: str, event_id: str) -> Run:
    delivery = slack_message(text, ts, event_id)
    world.platforms.slack_ws.add_message(BUGS_CHANNEL, delivery["event"])
    return run(world, live, ("slack", delivery, None, 1))


def test_slack_bug_report_opens_a_linear_issue_and_replies_in_the_thread(
    world: World, live: ScenarioYard
) -> None:
    ts = "1700000100.000200"
    text = "Checkout fails with a 500 when I pay with a saved card, since this morning."
    done = _slack_report(world, live, text, ts, "Ev0BUG0001")
    task = done.task
    succeeded(task, "slack-bug-analysis", "claude")
    acts = actions_by_index(task)
    assert sorted(acts) == [-1, 0, 1]  # the 👀 start reaction, the two actions, no summary
    assert all(a["status"] == "applied" for a in acts.values()), acts
    issue_id = linear_uuid(acts[0]["key"])
    ws = world.platforms.linear_ws
    created = ws.issue(issue_id)
    proposed = _script_actions("slack-bug")
    params = proposed[0]["params"]
    assert mutations(done.sent["linear"]) == [
        {
            "query": mutation("issue_create"),
            "variables": {
                "input": {
                    "id": issue_id,
                    "teamId": TEAM_ID,
                    "title": params["title"],
                    "description": params["body"],
                    "labelIds": [ws.label_id("Bug", TEAM_ID)],
                }
            },
        }
    ]
    assert (acts[0]["external_id"], acts[0]["url"]) == (created["identifier"], created["url"])
    # The reply names the issue action 0 created: {{actions.0.url}} filled in when applied.
    reply = proposed[1]["params"]["body"].replace("{{actions.0.url}}", created["url"])
    assert f"<@{REPORTER}>" in reply and "{{" not in reply
    assert [(r.path, r.arguments()) for r in done.sent["slack"]] == [
        ("/api/reactions.add", {"channel": BUGS_CHANNEL, "timestamp": ts, "name": "eyes"}),
        ("/api/conversations.replies", {"channel": BUGS_CHANNEL, "ts": ts, "limit": "200"}),
        ("/api/chat.postMessage", {"channel": BUGS_CHANNEL, "text": reply, "thread_ts": ts}),
    ]
    assert created["url"] in reply
    assert record_requests(task, [-1, 0, 1]) == writes(done.sent)
    thread = json.loads((Path(task["workspace"]) / "context" / "slack.thread.json").read_text())
    assert [m["text"] for m in thread["messages"]] == [text]


def test_a_thin_slack_report_gets_clarifying_questions_only(
    world: World, live: ScenarioYard
) -> None:
    ts = "1700000200.000300"
    done = _slack_report(world, live, "checkout broken again??", ts, "Ev0BUG0002")
    task = done.task
    succeeded(task, "slack-bug-analysis", "claude")
    acts = actions_by_index(task)
    assert [(i, acts[i]["type"], acts[i]["status"]) for i in sorted(acts)] == [
        (-1, "react", "applied"),
        (0, "comment", "applied"),
    ]
    assert mutations(done.sent["linear"]) == [] and done.sent["github"] == []
    (posted,) = [r for r in done.sent["slack"] if r.path.endswith("chat.postMessage")]
    question = _script_actions("slack-thin-report")[0]["params"]["body"]
    assert posted.arguments() == {"channel": BUGS_CHANNEL, "text": question, "thread_ts": ts}


# --- 3. Pull request review -------------------------------------------------------------------


def test_codex_reviews_the_pull_request_with_inline_comments(
    world: World, review_live: Run
) -> None:
    task = review_live.task
    succeeded(task, "pr-review", "codex")
    acts = actions_by_index(task)
    assert [(i, acts[i]["type"], acts[i]["status"]) for i in sorted(acts)] == [
        (-1, "react", "applied"),
        (0, "review", "applied"),
    ]
    github = review_live.sent["github"]
    posts = [r for r in github if r.method == "POST"]
    assert [(r.path, r.json()) for r in posts[:1]] == [
        (f"/repos/{REPO}/issues/{NUMBER}/reactions", {"content": "eyes"})
    ]
    review = posts[1]
    assert review.path == f"/repos/{REPO}/pulls/{NUMBER}/reviews" and len(posts) == 2
    assert github_problems(review) == []  # method, path and body fields per the OpenAPI
    body = review.json()
    proposed = _script_actions("pr-review")[0]["params"]
    assert body["commit_id"] == world.head and body["event"] == "REQUEST_CHANGES"
    assert body["body"].startswith(proposed["summary"])
    assert f"<!-- taskyard:{acts[0]['key']} -->" in body["body"]
    assert body["comments"] == [
        {"path": "app.py", "line": 2, "side": "RIGHT", "body": proposed["comments"][0]["body"]}
    ]
    changed = changed_lines(world.diff)
    assert all(c["line"] in changed[c["path"]] for c in body["comments"])
    assert github.index(posts[0]) < github.index(review)  # 👀 first
    assert acts[0]["external_id"] and acts[0]["url"]
    assert record_requests(task, [-1, 0]) == writes(review_live.sent)
    reads = {(r.path, r.headers.get("accept", "")) for r in github if r.method == "GET"}
    pull = f"/repos/{REPO}/pulls/{NUMBER}"
    assert {(pull, "application/vnd.github.diff"), (f"{pull}/files", JSON)} <= reads
    archive = Path(task["workspace"])
    got = json.loads((archive / "context" / "github.diff.json").read_text())
    assert got["diff"] == world.diff
    assert review_live.sent["linear"] == [] and review_live.sent["slack"] == []


# --- 4. Sentry -----------------------------------------------------------------------------


def test_sentry_issue_opens_a_linear_issue_in_the_default_team(
    world: World, live: ScenarioYard
) -> None:
    done = run(world, live, ("sentry", SENTRY, None, 1))
    task = done.task
    succeeded(task, "sentry-triage", "claude")
    acts = actions_by_index(task)
    assert [(i, acts[i]["type"], acts[i]["status"]) for i in sorted(acts)] == [
        (0, "create_issue", "applied")
    ]
    params = _script_actions("sentry-triage")[0]["params"]
    ws = world.platforms.linear_ws
    issue_id = linear_uuid(acts[0]["key"])
    assert mutations(done.sent["linear"]) == [
        {
            "query": mutation("issue_create"),
            "variables": {
                "input": {
                    "id": issue_id,
                    "teamId": TEAM_ID,
                    "title": params["title"],
                    "description": params["body"],
                    "labelIds": [ws.label_id("Bug", TEAM_ID)],
                }
            },
        }
    ]
    created = ws.issue(issue_id)
    assert created["teamId"] == TEAM_ID and created["identifier"].startswith("KOR-")
    assert (
        "SentryCustomError" in created["description"]
        and "/frontend/src/util.ts" in (created["description"])
    )
    assert acts[0]["url"] == created["url"]
    assert done.sent["github"] == [] and done.sent["slack"] == []
    prompt = (Path(task["workspace"]) / "prompts" / "sentry-triage.md").read_text()
    assert "SentryCustomError(frontend/src/util)" in prompt


# --- 5. The same triage through the MCP tools -----------------------------------------------


def test_the_add_labels_tool_applies_what_the_result_would_with_claude_and_codex(
    world: World, live: ScenarioYard, triage_live: Run
) -> None:
    done = run(world, live, ("linear", linear_delivery(UPDATED), None, 2))
    by_agent = {t["agent"]: t for t in done.tasks}
    succeeded(by_agent["claude"], "linear-triage", "claude")
    succeeded(by_agent["codex"], "linear-triage-codex", "codex")
    from_result = actions_by_index(triage_live.task)[0]
    same = ("type", "params", "status", "requests")
    summaries = []
    for agent, task in by_agent.items():
        acts = actions_by_index(task)
        assert sorted(acts) == [-2, 0, 1000], (agent, acts)
        tool = acts[1000]
        assert {k: tool[k] for k in same} == {k: from_result[k] for k in same}, agent
        assert acts[0]["status"] == "skipped" and acts[0]["reason"].startswith(
            "already applied through the add_labels tool"
        ), acts[0]
        # Nothing was posted on the issue, so taskyard posts the summary there.
        summary = f"**taskyard** ({task['route']}): Labelled Bug/Backend."
        assert (acts[-2]["type"], acts[-2]["status"]) == ("comment", "applied")
        assert acts[-2]["params"] == {"body": summary}
        summaries.append(summary)
        assert task["usage"]["tool_calls"] >= 1
        log = (Path(task["workspace"]) / "outputs" / "log.jsonl").read_text()
        assert ("mcp_tool_call" if agent == "codex" else "mcp__taskyard__add_labels") in log
    sent = mutations(done.sent["linear"])
    labels = [b for b in sent if "addedLabelIds" in str(b)]
    assert labels == [from_result["requests"][0]["body"]] * 2  # once per task, never twice
    posted = sorted(b["variables"]["input"]["body"] for b in sent if b not in labels)
    assert posted == sorted(summaries) and len(sent) == 4


# --- 6. Dry-run ---------------------------------------------------------------------------------


def _same_plans(dry: dict[str, Any], live: dict[str, Any], indexes: list[int]) -> None:
    dry_acts, live_acts = actions_by_index(dry), actions_by_index(live)
    for i in indexes:
        assert dry_acts[i]["status"] == "dry_run", dry_acts[i]
        assert dry_acts[i]["sent"] == 0 and dry_acts[i]["attempts"] == 0
        assert planned(dry_acts[i]) == planned(live_acts[i]), i


def test_dry_run_records_exactly_the_requests_the_live_run_sent(
    world: World, triage_live: Run, review_live: Run
) -> None:
    shadow = world.yard("dry-run", tokens=True, dry_run=True)
    done = run(
        world,
        shadow,
        ("linear", linear_delivery(CREATED), None, 1),
        ("github", pull_request_delivery(world.head), "pull_request", 1),
    )
    triage, review = done.tasks
    succeeded(triage, "linear-triage", "claude")
    succeeded(review, "pr-review", "codex")
    assert writes(done.sent) == []  # reads only: the context and the Linear directory
    assert sorted(actions_by_index(triage)) == [0, 1, 2]
    assert sorted(actions_by_index(review)) == [-1, 0]
    _same_plans(triage, triage_live.task, [0, 1, 2])
    _same_plans(review, review_live.task, [-1, 0])


def test_without_tokens_nothing_is_sent_and_the_tasks_still_succeed(
    world: World, triage_live: Run, review_live: Run
) -> None:
    tokenless = world.yard("no-tokens", tokens=False, dry_run=None)
    done = run(
        world,
        tokenless,
        ("linear", linear_delivery(CREATED), None, 1),
        ("github", pull_request_delivery(world.head), "pull_request", 1),
    )
    assert done.sent == {"github": [], "linear": [], "slack": []}
    triage, review = done.tasks
    succeeded(triage, "linear-triage", "claude")
    succeeded(review, "pr-review", "codex")
    # Three dry-run actions: the labels planned with their names unresolved (no Linear key
    # to look their ids up with), the rest exactly as the live run sent them.
    acts = actions_by_index(triage)
    assert sorted(acts) == [0, 1, 2]
    assert [acts[i]["status"] for i in range(3)] == ["dry_run"] * 3
    labels, live_labels = acts[0], actions_by_index(triage_live.task)[0]
    assert (labels["type"], labels["reason"]) == ("add_labels", None)
    (request,) = planned(labels)
    assert request["body"]["variables"]["input"] == {
        "addedLabelIds": ["<label:Bug>", "<label:Backend>"]
    }
    (live_request,) = planned(live_labels)
    assert request["body"]["query"] == live_request["body"]["query"]
    _same_plans(triage, triage_live.task, [1, 2])
    _same_plans(review, review_live.task, [-1, 0])
    assert triage["reason"] is None and review["reason"] is None


def test_linear_triage_on_postgres(world: World, pg_url: str, triage_live: Run) -> None:
    """The same triage with taskyard's store on PostgreSQL: the same requests, applied."""
    yard = world.yard("postgres", tokens=True, dry_run=None, database_url=pg_url)
    try:
        done = run(world, yard, ("linear", linear_delivery(CREATED), None, 1))
    finally:
        yard.stop()
    succeeded(done.task, "linear-triage", "claude")
    acts, live_acts = actions_by_index(done.task), actions_by_index(triage_live.task)
    assert sorted(acts) == [0, 1, 2] and all(a["status"] == "applied" for a in acts.values())
    assert [planned(acts[i]) for i in range(3)] == [planned(live_acts[i]) for i in range(3)]
    assert record_requests(done.task, [0, 1, 2]) == writes(done.sent)
