"""Platform writes proven against what the platforms published, and sent over real HTTP.

- GitHub: every planner's method + path template is an operation of GitHub's OpenAPI
  description (npm @octokit/openapi) usable by a GitHub App, and every body field exists in
  the operation's request schema with the documented JSON type (a small checker that follows
  `$ref`, `oneOf`, `anyOf` and `allOf`).
- Linear: every mutation document and each planner's variables validate against Linear's
  published schema (graphql-core `validate` and variable coercion).
- Slack: every method is one of slack-sdk's WebClient, and every argument is a named keyword
  of that method.
- Senders against the recording servers of `tests/platform_servers.py`: the request is the
  planned one; 429 + Retry-After waits exactly that long, 5xx is retried, 403 is permanent and
  named; a token appears only in the Authorization header.
"""

from __future__ import annotations

import inspect
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from graphql import GraphQLSchema, build_schema, parse, validate
from graphql.execution.values import get_variable_values
from graphql.language import OperationDefinitionNode
from slack_sdk import WebClient

from taskyard.actions.models import ParsedAction, Target, parse_action
from taskyard.actions.planner import PlatformPlanner
from taskyard.exceptions import PlatformPermanentError
from taskyard.platforms import github_write as gw
from taskyard.platforms import linear_write as lw
from taskyard.platforms import slack_write as sw
from taskyard.platforms.base import RetryPolicy
from taskyard.platforms.github import OPERATIONS as READ_OPERATIONS
from taskyard.platforms.github import GitHubClient
from taskyard.platforms.github_write import GitHubWriter
from taskyard.platforms.linear import LinearClient
from taskyard.platforms.linear_write import LinearWriter
from taskyard.platforms.slack_write import SlackWriter
from taskyard.platforms.writes import PlannedRequest
from tests.integration.test_platform_contracts import SpecGitHub
from tests.platform_servers import (
    PlatformServer,
    Reply,
    github_example,
    github_operation,
    github_request_schema,
    github_server,
    github_spec,
    linear_server,
    openapi_problems,
    resolve,
    slack_server,
)

REPO = Path(__file__).resolve().parents[2]
LINEAR_SCHEMA = REPO.parent / "shared" / "platforms" / "linear-schema.graphql"
MUTATIONS = REPO / "taskyard" / "platforms" / "queries" / "mutations"
GH_TOKEN = "ghp_WRITETOKENthatmustneverleak0123456789"
LINEAR_KEY = "lin_api_WRITEKEYthatmustneverleak"
SLACK_TOKEN = "xoxb-WRITE-slack-token-never-leaks"
SHA = "6dcb09b5b57875f334f61aebed695e2e4193db5e"


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


# --- GitHub: planners against the OpenAPI description -------------------------------------

GITHUB_PLANS: dict[str, PlannedRequest] = {
    "add_labels": gw.add_labels("octocat/Hello-World", 1347, ["bug", "P1"]),
    "remove_label": gw.remove_label("octocat/Hello-World", 1347, "good first issue"),
    "comment": gw.comment("octocat/Hello-World", 1347, "Me too"),
    "create_issue": gw.create_issue("octocat/Hello-World", "Found a bug", "It breaks", ["bug"]),
    "close_issue": gw.close_issue("octocat/Hello-World", 1347, "not_planned"),
    "assign": gw.assign("octocat/Hello-World", 1347, ["hubot", "other_user"]),
    "review": gw.review(
        "octocat/Hello-World",
        1347,
        SHA,
        "Looks good",
        "REQUEST_CHANGES",
        [
            {"path": "file.md", "line": 6, "side": "LEFT", "body": "Please fix"},
            {"path": "file.md", "line": 9, "start_line": 7, "body": "```suggestion\nx\n```"},
        ],
    ),
    "set_check": gw.set_check(
        "octocat/Hello-World", SHA, "taskyard", conclusion="success", title="ok", summary="fine"
    ),
    "commit_status": gw.commit_status(
        "octocat/Hello-World", SHA, "success", "taskyard/review-hash", "Review-Hash 0123abcd"
    ),
    "add_reaction": gw.add_reaction("octocat/Hello-World", 1347, content="+1"),
    "add_comment_reaction": gw.add_reaction("octocat/Hello-World", comment_id=42),
    "create_pr": gw.create_pr("octocat/Hello-World", "Amazing", "octocat:new-feature", "main"),
    "merge_pr": gw.merge_pr("octocat/Hello-World", 1347, "merge"),
}


def test_every_github_operation_is_planned_and_tested() -> None:
    assert set(GITHUB_PLANS) == set(gw.OPERATIONS)


@pytest.mark.parametrize("name", sorted(GITHUB_PLANS))
def test_github_plan_is_a_documented_operation_with_a_documented_body(name: str) -> None:
    plan = GITHUB_PLANS[name]
    found = github_operation(plan.method, plan.path)
    assert found is not None, f"{plan.method} {plan.path} is not in GitHub's description"
    template, operation = found
    assert (plan.method, template) == gw.OPERATIONS[name]
    assert operation["x-github"]["enabledForGitHubApps"], f"{name}: not for App tokens"
    schema = github_request_schema(operation)
    if not plan.body:
        return
    assert schema is not None, f"{name}: a body where GitHub documents none"
    assert openapi_problems(github_spec(), schema, dict(plan.body)) == []


@pytest.mark.parametrize(
    ("method", "path", "body", "complaint"),
    [
        ("POST", "/repos/o/r/issues/1/labels", {"label": ["bug"]}, "not a documented field"),
        ("POST", "/repos/o/r/issues/1/labels", {"labels": "bug"}, "schema says"),
        ("PUT", "/repos/o/r/pulls/1/merge", {"merge_method": "ff"}, "is not one of"),
        ("POST", "/repos/o/r/pulls/1/reviews", {"comments": [{"path": "a"}]}, "missing"),
        ("POST", "/repos/o/r/check-runs", {"name": "x", "head_sha": 1}, "schema says"),
    ],
)
def test_the_body_checker_catches_what_github_would_refuse(
    method: str, path: str, body: dict[str, Any], complaint: str
) -> None:
    found = github_operation(method, path)
    assert found is not None
    problems = openapi_problems(github_spec(), github_request_schema(found[1]), body)
    assert any(complaint in p for p in problems), problems


# --- Linear: mutations against the published schema ---------------------------------------


@pytest.fixture(scope="module")
def linear_schema() -> GraphQLSchema:
    if not LINEAR_SCHEMA.is_file():
        pytest.fail(f"Linear's schema is not at {LINEAR_SCHEMA}")
    return build_schema(LINEAR_SCHEMA.read_text(encoding="utf-8"))


LINEAR_PLANS: dict[str, PlannedRequest] = {
    "issue_update": lw.issue_update(
        "ENG-1",
        label_ids=["l-1"],
        added_label_ids=["l-2"],
        priority=2,
        state_id="s-1",
        assignee_id="u-1",
    ),
    "issue_create": lw.issue_create("t-1", "Crash", "on save", priority=1, label_ids=["l-1"]),
    "comment_create": lw.comment_create("i-1", "Fixed in #12"),
    "reaction_create": lw.reaction_create("eyes", issue_id="i-1"),
}


def _graphql_problems(schema: GraphQLSchema, body: Any) -> list[str]:
    document = parse(body["query"])
    errors = [e.message for e in validate(schema, document)]
    if errors:
        return errors
    (operation,) = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    coerced = get_variable_values(schema, operation.variable_definitions or (), body["variables"])
    return [e.message for e in coerced] if isinstance(coerced, list) else []


def test_every_mutation_file_is_planned_and_tested() -> None:
    files = {p.stem for p in MUTATIONS.glob("*.graphql")}
    assert files == {doc for doc, _, _ in lw.MUTATIONS.values()} == set(LINEAR_PLANS)


@pytest.mark.parametrize("name", sorted(LINEAR_PLANS))
def test_linear_plan_is_valid_against_the_published_schema(
    name: str, linear_schema: GraphQLSchema
) -> None:
    assert _graphql_problems(linear_schema, LINEAR_PLANS[name].body) == []


def test_a_linear_sub_issue_plan_is_valid_against_the_published_schema(
    linear_schema: GraphQLSchema,
) -> None:
    plan = lw.issue_create(
        "t-1", "Approve?", "why", priority=2, id=lw.linear_uuid("k"), parent_id="i-1"
    )
    assert plan.body["variables"]["input"]["parentId"] == "i-1"
    assert _graphql_problems(linear_schema, plan.body) == []


def test_the_graphql_check_catches_a_wrong_variable(linear_schema: GraphQLSchema) -> None:
    body = dict(LINEAR_PLANS["issue_update"].body)
    body["variables"] = {"id": "ENG-1", "input": {"priority": "high"}}
    assert _graphql_problems(linear_schema, body)
    body["variables"] = {"id": "ENG-1", "input": {"labels": ["x"]}}
    assert _graphql_problems(linear_schema, body)


# --- Slack: methods and arguments of slack-sdk ---------------------------------------------

SLACK_PLANS = [
    sw.post_message(
        "C1", "done", "1.2", [{"type": "section", "text": {"type": "mrkdwn", "text": "x"}}]
    ),
    sw.add_reaction("C1", "1.2", "eyes"),
]
# The approval channel's: a request message rewritten with its outcome, a refusal told to
# the one person whose decision it refused. The test server answers them as Slack documents.
SLACK_APPROVAL_PLANS = [
    sw.update_message(
        "C1", "1.2", "approved", [{"type": "section", "text": {"type": "mrkdwn", "text": "x"}}]
    ),
    sw.post_ephemeral("C1", "U1", "not authorised", "1.1"),
]
SLACK_ANSWERS = {
    sw.UPDATE_MESSAGE: {"ok": True, "channel": "C1", "ts": "1.2", "text": "approved"},
    sw.POST_EPHEMERAL: {"ok": True, "message_ts": "1.3"},
}


def _slack_problems(plan: PlannedRequest) -> list[str]:
    method = getattr(WebClient, plan.path.replace(".", "_"), None)
    if not callable(method):
        return [f"{plan.path} is not a slack-sdk WebClient method"]
    params = inspect.signature(method).parameters
    named = {n for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
    required = {n for n in named if params[n].default is inspect.Parameter.empty}
    return [f"{plan.path}: {k} is not an argument" for k in plan.body if k not in named] + [
        f"{plan.path}: {k} is missing" for k in required - set(plan.body)
    ]


def test_slack_plans_are_slack_sdk_calls() -> None:
    plans = [*SLACK_PLANS, *SLACK_APPROVAL_PLANS]
    assert {p.path for p in plans} == set(sw.METHODS)
    for plan in plans:
        assert _slack_problems(plan) == []
    wrong = PlannedRequest("slack", "POST", "reactions.add", {"channel": "C", "ts": "1.2"})
    assert sorted(_slack_problems(wrong)) == [
        "reactions.add: name is missing",
        "reactions.add: timestamp is missing",
        "reactions.add: ts is not an argument",
    ]


# --- senders against the recording servers -------------------------------------------------


@pytest.fixture
def github() -> Iterator[PlatformServer]:
    with github_server() as server:
        yield server
        assert server.problems == []


@pytest.fixture
def linear() -> Iterator[PlatformServer]:
    with linear_server() as server:
        yield server
        assert server.problems == []


@pytest.fixture
def slack() -> Iterator[PlatformServer]:
    with slack_server() as server:
        yield server
        assert server.problems == []


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
async def gh_writer(github: PlatformServer, sleeps: Sleeps) -> AsyncIterator[GitHubWriter]:
    writer = GitHubWriter(token=GH_TOKEN, base_url=github.base_url, sleep=sleeps)
    yield writer
    await writer.aclose()


@pytest.fixture
async def linear_writer(linear: PlatformServer, sleeps: Sleeps) -> AsyncIterator[LinearWriter]:
    writer = LinearWriter(LINEAR_KEY, url=linear.base_url, sleep=sleeps, retry=RetryPolicy())
    yield writer
    await writer.aclose()


@pytest.fixture
async def slack_writer(slack: PlatformServer, sleeps: Sleeps) -> AsyncIterator[SlackWriter]:
    writer = SlackWriter(SLACK_TOKEN, base_url=slack.base_url, sleep=sleeps)
    yield writer
    await writer.aclose()


@pytest.mark.parametrize("name", sorted(GITHUB_PLANS))
async def test_github_writer_sends_the_plan_and_reads_the_documented_answer(
    name: str, github: PlatformServer, gh_writer: GitHubWriter
) -> None:
    plan = GITHUB_PLANS[name]
    result = await gh_writer.send(plan)
    (sent,) = github.requests
    assert (sent.method, sent.path) == (plan.method, plan.path)
    assert sent.json() == (dict(plan.body) or None)
    assert sent.headers["authorization"] == f"token {GH_TOKEN}"
    assert GH_TOKEN not in sent.everything_but_auth()
    found = github_operation(plan.method, plan.path)
    assert found is not None
    example = github_example(found[1]).body
    assert result.response == (example if isinstance(example, dict) else {"items": example})
    if isinstance(example, dict) and "html_url" in example:
        assert result.url == example["html_url"]


async def test_github_rate_limit_waits_what_github_asks_then_applies_once(
    github: PlatformServer, gh_writer: GitHubWriter, sleeps: Sleeps
) -> None:
    plan = gw.comment("octocat/Hello-World", 1347, "Me too")
    limited = Reply(429, {"message": "slow down"}, {"Retry-After": "7"})
    github.queue("POST", plan.path, limited)
    result = await gh_writer.send(plan)
    assert sleeps.waits == [7.0]
    assert [r.path for r in github.requests] == [plan.path, plan.path]
    assert result.external_id and result.url and "issuecomment" in result.url


async def test_github_server_error_is_retried_with_backoff(
    github: PlatformServer, gh_writer: GitHubWriter, sleeps: Sleeps
) -> None:
    plan = gw.add_labels("octocat/Hello-World", 1347, ["bug"])
    github.queue("POST", plan.path, Reply(500, {"message": "boom"}), Reply(502, b"bad gateway"))
    await gh_writer.send(plan)
    assert sleeps.waits == [0.5, 1.0] and len(github.requests) == 3


async def test_github_forbidden_is_permanent_named_and_scrubbed(
    github: PlatformServer, gh_writer: GitHubWriter, sleeps: Sleeps
) -> None:
    plan = gw.merge_pr("octocat/Hello-World", 1347)
    body = {"message": f"Resource not accessible by integration ({GH_TOKEN})"}
    github.queue("PUT", plan.path, Reply(403, body))
    with pytest.raises(PlatformPermanentError) as caught:
        await gh_writer.send(plan)
    message = str(caught.value)
    assert "403" in message and f"PUT {plan.path}" in message
    assert GH_TOKEN not in message and caught.value.status == 403
    assert sleeps.waits == [] and len(github.requests) == 1


async def test_github_writer_acts_as_the_repository_installation(
    github: PlatformServer, sleeps: Sleeps
) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    token_op = github_operation("POST", "/app/installations/1/access_tokens")
    assert token_op is not None
    minted = github_example(token_op[1]).body["token"]
    writer = GitHubWriter(app_id="1", private_key=pem, base_url=github.base_url, sleep=sleeps)
    try:
        await writer.send(gw.add_reaction("octocat/Hello-World", 1347))
    finally:
        await writer.aclose()
    paths = [r.path for r in github.requests]
    assert paths[0] == "/repos/octocat/Hello-World/installation"
    assert paths[-1] == "/repos/octocat/Hello-World/issues/1347/reactions"
    assert github.requests[-1].headers["authorization"] == f"token {minted}"
    assert minted not in str([r.everything_but_auth() for r in github.requests])


@pytest.mark.parametrize("name", sorted(LINEAR_PLANS))
async def test_linear_writer_sends_the_plan(
    name: str, linear: PlatformServer, linear_writer: LinearWriter
) -> None:
    plan = LINEAR_PLANS[name]
    result = await linear_writer.send(plan)
    (sent,) = linear.requests
    assert (sent.method, sent.path, sent.json()) == ("POST", "/graphql", dict(plan.body))
    assert sent.headers["authorization"] == LINEAR_KEY
    assert LINEAR_KEY not in sent.everything_but_auth()
    assert result.external_id
    if name in ("issue_update", "issue_create"):
        assert result.external_id == "ENG-123" and result.url and "ENG-123" in result.url


async def test_linear_rate_limit_then_server_error_then_success(
    linear: PlatformServer, linear_writer: LinearWriter, sleeps: Sleeps
) -> None:
    reset_ms = str(int((time.time() + 3) * 1000))
    limited = {
        "errors": [{"message": "Rate limit exceeded", "extensions": {"code": "RATELIMITED"}}]
    }
    linear.queue(
        "POST",
        "/graphql",
        Reply(400, limited, {"X-RateLimit-Requests-Reset": reset_ms}),
        Reply(500, {"errors": [{"message": "oops"}]}),
    )
    result = await linear_writer.send(LINEAR_PLANS["comment_create"])
    assert len(sleeps.waits) == 2 and 2.0 < sleeps.waits[0] <= 3.0 and sleeps.waits[1] == 0.5
    assert len(linear.requests) == 3
    assert result.url and "comment" in result.url


async def test_linear_forbidden_is_permanent_named_and_scrubbed(
    linear: PlatformServer, linear_writer: LinearWriter, sleeps: Sleeps
) -> None:
    plan = LINEAR_PLANS["issue_update"]
    linear.queue("POST", "/graphql", Reply(403, {"message": f"bad key {LINEAR_KEY}"}))
    with pytest.raises(PlatformPermanentError) as caught:
        await linear_writer.send(plan)
    message = str(caught.value)
    assert "403" in message and plan.description in message and LINEAR_KEY not in message
    assert sleeps.waits == []


async def test_linear_graphql_refusal_and_failed_mutation_are_permanent(
    linear: PlatformServer, linear_writer: LinearWriter
) -> None:
    plan = LINEAR_PLANS["issue_update"]
    error = {"message": "Entity not found", "extensions": {"code": "INVALID_INPUT"}}
    linear.queue(
        "POST",
        "/graphql",
        Reply(400, {"errors": [error], "data": None}),
        Reply(200, {"data": {"issueUpdate": {"success": False, "issue": None}}}),
    )
    with pytest.raises(PlatformPermanentError, match="INVALID_INPUT"):
        await linear_writer.send(plan)
    with pytest.raises(PlatformPermanentError, match="did not succeed"):
        await linear_writer.send(plan)
    assert len(linear.requests) == 2


@pytest.mark.parametrize("plan", SLACK_PLANS, ids=lambda p: p.path)
async def test_slack_writer_sends_the_plan(
    plan: PlannedRequest, slack: PlatformServer, slack_writer: SlackWriter
) -> None:
    result = await slack_writer.send(plan)
    (sent,) = slack.requests
    assert sent.path == f"/api/{plan.path}"
    assert sent.arguments() == dict(plan.body)
    assert sent.headers["authorization"] == f"Bearer {SLACK_TOKEN}"
    assert SLACK_TOKEN not in sent.everything_but_auth()
    assert result.external_id  # the new message's ts, or the reacted-to message's


@pytest.mark.parametrize("plan", SLACK_APPROVAL_PLANS, ids=lambda p: p.path)
async def test_slack_writer_sends_the_approval_plans(
    plan: PlannedRequest, slack: PlatformServer, slack_writer: SlackWriter
) -> None:
    answer = SLACK_ANSWERS[plan.path]
    slack.route("POST", f"/api/{plan.path}", Reply(200, answer))
    result = await slack_writer.send(plan)
    (sent,) = slack.requests
    assert sent.path == f"/api/{plan.path}"
    assert sent.arguments() == dict(plan.body)
    assert result.external_id == answer.get("ts", answer.get("message_ts"))


async def test_slack_rate_limit_and_server_error_are_retried(
    slack: PlatformServer, slack_writer: SlackWriter, sleeps: Sleeps
) -> None:
    slack.queue(
        "POST",
        "/api/chat.postMessage",
        Reply(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "4"}),
        Reply(500, {"ok": False, "error": "internal_error"}),
    )
    result = await slack_writer.send(SLACK_PLANS[0])
    assert sleeps.waits == [4.0, 0.5] and len(slack.requests) == 3
    assert result.external_id and result.response["ts"] == result.external_id


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (Reply(200, {"ok": False, "error": "channel_not_found"}), "channel_not_found"),
        (Reply(403, {"ok": False, "error": f"invalid_auth {SLACK_TOKEN}"}), "403"),
    ],
)
async def test_slack_refusals_are_permanent_named_and_scrubbed(
    reply: Reply, expected: str, slack: PlatformServer, slack_writer: SlackWriter, sleeps: Sleeps
) -> None:
    slack.queue("POST", "/api/chat.postMessage", reply)
    with pytest.raises(PlatformPermanentError) as caught:
        await slack_writer.send(SLACK_PLANS[0])
    message = str(caught.value)
    assert expected in message and "chat.postMessage C1" in message
    assert SLACK_TOKEN not in message and sleeps.waits == []


# --- actions: idempotent Linear creation, label removal, reactions, lookups ----------------

ACTION_KEY = "task-1.0.0123456789abcdef"
LINEAR_ACTION_PLANS: dict[str, PlannedRequest] = {
    "issue_update_removed": lw.issue_update("ENG-1", removed_label_ids=["l-1"]),
    "issue_create_with_id": lw.issue_create("t-1", "Crash", id=lw.linear_uuid(ACTION_KEY)),
    "comment_create_with_id": lw.comment_create("i-1", "Done", id=lw.linear_uuid(ACTION_KEY)),
}


@pytest.mark.parametrize("name", sorted(LINEAR_ACTION_PLANS))
def test_linear_ids_and_label_removal_are_valid_against_the_published_schema(
    name: str, linear_schema: GraphQLSchema
) -> None:
    assert _graphql_problems(linear_schema, LINEAR_ACTION_PLANS[name].body) == []


def _planned_by_the_planner(kind: str, target: Target, **params: Any) -> list[PlannedRequest]:
    action = parse_action("t1", 0, {"type": kind, "params": params})
    assert isinstance(action, ParsedAction), action
    return PlatformPlanner().plan(action.for_sending(target), target)


def test_the_reactions_taskyard_knows_are_the_ones_github_documents() -> None:
    found = github_operation("POST", "/repos/o/r/issues/1/reactions")
    assert found is not None
    schema = resolve(github_spec(), github_request_schema(found[1]))
    documented = resolve(github_spec(), schema["properties"]["content"])["enum"]
    assert sorted(documented) == sorted(r.value for r in gw.Reaction)


@pytest.mark.parametrize("emoji", [*(r.value for r in gw.Reaction), "thumbsup", "tada"])
def test_planned_github_reactions_are_documented_requests(emoji: str) -> None:
    target = Target("github", repo="octocat/Hello-World", number=1347, pull_request=False)
    [plan] = _planned_by_the_planner("react", target, emoji=emoji)
    found = github_operation(plan.method, plan.path)
    assert found is not None
    assert (plan.method, found[0]) == gw.OPERATIONS["add_reaction"]
    assert openapi_problems(github_spec(), github_request_schema(found[1]), dict(plan.body)) == []


def test_planned_slack_reactions_are_slack_sdk_calls() -> None:
    target = Target("slack", channel="C1", thread_ts="1.1", message_ts="1.2")
    [plan] = _planned_by_the_planner("react", target, emoji=":white_check_mark:")
    assert plan.path == sw.ADD_REACTION and _slack_problems(plan) == []


async def test_the_writer_sends_a_planned_reaction_and_github_accepts_it(
    github: PlatformServer, gh_writer: GitHubWriter
) -> None:
    target = Target("github", repo="octocat/Hello-World", number=1347, pull_request=True)
    [plan] = _planned_by_the_planner("react", target, emoji="hooray")
    await gh_writer.send(plan)
    (sent,) = github.requests
    assert (sent.method, sent.path, sent.json()) == (
        "POST",
        "/repos/octocat/Hello-World/issues/1347/reactions",
        {"content": "hooray"},
    )


async def test_a_reaction_already_there_is_applied(
    slack: PlatformServer, slack_writer: SlackWriter
) -> None:
    slack.queue("POST", "/api/reactions.add", Reply(200, {"ok": False, "error": "already_reacted"}))
    result = await slack_writer.send(sw.add_reaction("C1", "1.2", "eyes"))
    assert result.external_id == "1.2" and len(slack.requests) == 1


async def test_linear_action_reads_send_valid_documents_and_variables(
    linear_schema: GraphQLSchema,
) -> None:
    sent: list[Any] = []
    answers = iter(
        [
            {"issue": {"id": "u", "identifier": "ENG-1", "url": "https://l/1"}},
            {"comment": {"id": "u", "url": "https://l/c"}},
            {
                "team": {
                    "id": "t-1",
                    "key": "ENG",
                    "labels": {"nodes": []},
                    "states": {"nodes": []},
                    "members": {"nodes": []},
                },
                "issueLabels": {"nodes": []},
            },
        ]
    )

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        return httpx.Response(200, json={"data": next(answers)})

    client = LinearClient(LINEAR_KEY, transport=httpx.MockTransport(handler))
    chosen = lw.linear_uuid(ACTION_KEY)
    assert (await client.find_issue(chosen)) is not None
    assert (await client.find_comment(chosen)) is not None
    assert (await client.team_directory("t-1"))["id"] == "t-1"
    await client.aclose()
    assert len(sent) == 3
    for body in sent:
        assert _graphql_problems(linear_schema, body) == []


async def test_github_lookup_reads_are_documented_and_parse_githubs_examples() -> None:
    fake = SpecGitHub(github_spec())
    client = GitHubClient(token=GH_TOKEN, transport=httpx.MockTransport(fake))
    try:
        comments = await client.all_issue_comments("octocat/Hello-World", 1347)
        reviews = await client.pull_request_reviews("octocat/Hello-World", 1347)
        issues = await client.recent_issues("octocat/Hello-World")
        pulls = await client.recent_pull_requests("octocat/Hello-World")
    finally:
        await client.aclose()
    assert fake.problems == []
    assert set(fake.seen) == {
        READ_OPERATIONS[n]
        for n in ("issue_comments", "pull_request_reviews", "repo_issues", "repo_pulls")
    }
    assert comments[0]["id"] and comments[0]["body"] and comments[0]["html_url"]
    assert reviews[0]["id"] and reviews[0]["html_url"]
    assert issues[0]["number"] == 1347 and issues[0]["html_url"]
    assert pulls[0]["number"] == 1347 and pulls[0]["html_url"]
