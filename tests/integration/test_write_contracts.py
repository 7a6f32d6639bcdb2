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
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from graphql import GraphQLSchema, build_schema, parse, validate
from graphql.execution.values import get_variable_values
from graphql.language import OperationDefinitionNode
from slack_sdk import WebClient

from taskyard.exceptions import PlatformPermanentError
from taskyard.platforms import github_write as gw
from taskyard.platforms import linear_write as lw
from taskyard.platforms import slack_write as sw
from taskyard.platforms.base import RetryPolicy
from taskyard.platforms.github_write import GitHubWriter
from taskyard.platforms.linear_write import LinearWriter
from taskyard.platforms.slack_write import SlackWriter
from taskyard.platforms.writes import PlannedRequest
from tests.platform_servers import (
    PlatformServer,
    Reply,
    github_example,
    github_operation,
    github_server,
    github_spec,
    linear_server,
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
        [{"path": "file.md", "line": 6, "side": "LEFT", "body": "Please fix"}],
    ),
    "set_check": gw.set_check(
        "octocat/Hello-World", SHA, "taskyard", conclusion="success", title="ok", summary="fine"
    ),
    "add_reaction": gw.add_reaction("octocat/Hello-World", 1347, content="+1"),
    "add_comment_reaction": gw.add_reaction("octocat/Hello-World", comment_id=42),
    "create_pr": gw.create_pr("octocat/Hello-World", "Amazing", "octocat:new-feature", "main"),
    "merge_pr": gw.merge_pr("octocat/Hello-World", 1347, "merge"),
}

_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
}


def _type_ok(value: Any, expected: str | list[str]) -> bool:
    kinds = [expected] if isinstance(expected, str) else expected
    if isinstance(value, bool):
        return "boolean" in kinds
    return any(isinstance(value, _JSON_TYPES.get(k, ())) for k in kinds) or (
        value is None and "null" in kinds
    )


def body_problems(spec: dict[str, Any], schema: Any, value: Any, where: str = "body") -> list[str]:
    """Why `value` does not fit the OpenAPI `schema` (empty when it does): unknown fields,
    wrong JSON types, values outside an enum, missing required fields."""
    schema = resolve(spec, schema)
    for combinator in ("oneOf", "anyOf"):
        if combinator in schema:
            tries = [body_problems(spec, alt, value, where) for alt in schema[combinator]]
            return [] if any(not t for t in tries) else [p for t in tries for p in t]
    if "allOf" in schema:
        return [p for part in schema["allOf"] for p in body_problems(spec, part, value, where)]
    if value is None:
        return [] if schema.get("nullable") else [f"{where}: null is not allowed"]
    if "type" in schema and not _type_ok(value, schema["type"]):
        return [f"{where}: {type(value).__name__} where the schema says {schema['type']}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{where}: {value!r} is not one of {schema['enum']}"]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _item(spec, schema, v, f"{where}[{i}]")]
    if isinstance(value, dict):
        return _fields(spec, schema, value, where)
    return []


def _item(spec: dict[str, Any], schema: dict[str, Any], value: Any, where: str) -> list[str]:
    return body_problems(spec, schema.get("items", {}), value, where)


def _fields(
    spec: dict[str, Any], schema: dict[str, Any], value: dict[str, Any], where: str
) -> list[str]:
    props = schema.get("properties", {})
    problems = [f"{where}.{k}: not a documented field" for k in value if k not in props]
    missing = [k for k in schema.get("required", []) if k not in value]
    problems += [f"{where}.{k}: required but missing" for k in missing]
    for key in value.keys() & props.keys():
        problems += body_problems(spec, props[key], value[key], f"{where}.{key}")
    return problems


def _request_schema(operation: dict[str, Any]) -> Any:
    body = resolve(github_spec(), operation.get("requestBody", {}))
    return body.get("content", {}).get("application/json", {}).get("schema")


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
    schema = _request_schema(operation)
    if not plan.body:
        return
    assert schema is not None, f"{name}: a body where GitHub documents none"
    assert body_problems(github_spec(), schema, dict(plan.body)) == []


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
    problems = body_problems(github_spec(), _request_schema(found[1]), body)
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
    assert {p.path for p in SLACK_PLANS} == set(sw.METHODS)
    for plan in SLACK_PLANS:
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
