"""Every platform integration proven against what the platforms themselves published.

- Linear: every GraphQL document taskyard ships is valid against Linear's published schema
  (../shared/platforms/linear-schema.graphql), and so is every request the client sends
  (document and variables).
- GitHub: every REST operation the client uses exists (method + path) in GitHub's OpenAPI
  description (npm @octokit/openapi, installed under .cache/npm as CI does), for
  api.github.com and the oldest GitHub Enterprise Server it describes; the client is then fed
  the description's own examples by a fake GitHub that answers any documented operation and
  refuses anything undocumented, and every request's query parameters and body are checked
  against the operation's parameters and request schema.
- Slack: every Web API method the client calls is one slack-sdk defines.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from graphql import GraphQLSchema, build_schema, parse, validate
from graphql.execution.values import get_variable_values
from graphql.language import OperationDefinitionNode
from slack_sdk import WebClient

from taskyard.exceptions import PlatformPermanentError
from taskyard.platforms import linear as linear_module
from taskyard.platforms import slack as slack_module
from taskyard.platforms.github import APP_JWT_OPERATIONS, OPERATIONS, GitHubClient
from taskyard.platforms.linear import LinearClient

REPO = Path(__file__).resolve().parents[2]
LINEAR_SCHEMA = REPO.parent / "shared" / "platforms" / "linear-schema.graphql"
OPENAPI = REPO / ".cache" / "npm" / "node_modules" / "@octokit" / "openapi" / "generated"
INSTALL = "npm install --silent --no-audit --no-fund --prefix .cache/npm @octokit/openapi@23"
QUERIES = REPO / "taskyard" / "platforms" / "queries"


# --- Linear ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def linear_schema() -> GraphQLSchema:
    if not LINEAR_SCHEMA.is_file():
        pytest.fail(f"Linear's schema is not at {LINEAR_SCHEMA}")
    return build_schema(LINEAR_SCHEMA.read_text(encoding="utf-8"))


def test_every_linear_document_is_valid_against_the_published_schema(
    linear_schema: GraphQLSchema,
) -> None:
    documents = sorted(QUERIES.glob("*.graphql"))
    assert {p.stem for p in documents} == set(linear_module.QUERY_NAMES)
    for path in documents:
        errors = validate(linear_schema, parse(path.read_text(encoding="utf-8")))
        assert errors == [], f"{path.name}: {[e.message for e in errors]}"


def _check_linear_request(schema: GraphQLSchema, request: httpx.Request) -> None:
    body = json.loads(request.content)
    document = parse(body["query"])
    assert validate(schema, document) == []
    (operation,) = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    coerced = get_variable_values(schema, operation.variable_definitions or (), body["variables"])
    assert not isinstance(coerced, list), [e.message for e in coerced]


async def test_requests_the_linear_client_sends_are_valid(linear_schema: GraphQLSchema) -> None:
    sent: list[httpx.Request] = []
    answers = iter(
        [
            {"issue": {"id": "i-1", "title": "t", "labels": {"nodes": []}}},
            {"issue": {"id": "i-1", "title": "Crash", "team": {"id": "t-1"}}},
            {"searchIssues": {"nodes": []}},
            {"team": {"id": "t-1", "labels": {"nodes": []}}, "issuePriorityValues": []},
        ]
    )

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={"data": next(answers)})

    client = LinearClient("lin_api_x", transport=httpx.MockTransport(handler))
    await client.issue("i-1")
    await client.related("i-1")
    await client.team("t-1")
    await client.aclose()
    assert len(sent) == 4
    for request in sent:
        _check_linear_request(linear_schema, request)


# --- GitHub ------------------------------------------------------------------------------


@cache
def _spec(name: str) -> dict[str, Any]:
    path = OPENAPI / name
    if not path.is_file():
        pytest.fail(f"GitHub's OpenAPI description is missing ({path}); run: {INSTALL}")
    spec: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return spec


def _oldest_ghes() -> str:
    names = sorted(OPENAPI.glob("ghes-*.json"), key=lambda p: p.name)
    releases = [p.name for p in names if not p.name.endswith(".deref.json")]
    if not releases:
        pytest.fail(f"no GitHub Enterprise Server description in {OPENAPI}; run: {INSTALL}")
    return min(releases, key=lambda n: tuple(int(x) for x in n[5:-5].split(".")))


def _resolve(spec: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        target: Any = spec
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def _inline(spec: dict[str, Any], node: Any, depth: int = 0) -> Any:
    """A schema with its $refs replaced (bounded depth: GitHub's schemas are recursive)."""
    node = _resolve(spec, node)
    if depth > 12:
        return {}
    if isinstance(node, dict):
        return {k: _inline(spec, v, depth + 1) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline(spec, v, depth + 1) for v in node]
    return node


@pytest.mark.parametrize("spec_name", ["api.github.com.json", "ghes"])
def test_every_github_operation_exists_in_the_published_description(spec_name: str) -> None:
    spec = _spec(_oldest_ghes() if spec_name == "ghes" else spec_name)
    for name, (method, path) in OPERATIONS.items():
        operation = spec["paths"].get(path, {}).get(method.lower())
        assert operation is not None, f"{name}: {method} {path} is not in {spec_name}"
        if name not in APP_JWT_OPERATIONS:  # read with an installation token
            assert operation["x-github"]["enabledForGitHubApps"], f"{name}: not for App tokens"


class SpecGitHub:
    """Answers any operation GitHub documents with its first documented 2xx example; 599
    (and a recorded problem) for anything it does not document."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.routes = [
            (re.compile("^" + re.sub(r"\{[^/}]+\}", "[^/]+", path) + "$"), path)
            for path in spec["paths"]
        ]
        self.problems: list[str] = []
        self.seen: list[tuple[str, str]] = []
        self.overrides: dict[tuple[str, str], httpx.Response] = {}

    def operation(self, method: str, path: str) -> tuple[str, dict[str, Any]] | None:
        matches = [t for rx, t in self.routes if rx.match(path)]
        matches = [t for t in matches if method.lower() in self.spec["paths"][t]]
        if not matches:
            return None
        template = max(matches, key=lambda t: sum("{" not in s for s in t.split("/")))
        return template, self.spec["paths"][template][method.lower()]

    def example(self, operation: dict[str, Any]) -> tuple[int, Any]:
        for status, response in operation["responses"].items():
            if status.startswith("2"):
                response = _resolve(self.spec, response)
                examples = response.get("content", {}).get("application/json", {})
                for example in examples.get("examples", {}).values():
                    value = _resolve(self.spec, example)["value"]
                    if isinstance(value, dict) and "$ref" in value:  # a components/examples
                        value = _resolve(self.spec, value)["value"]
                    return int(status), value
        raise AssertionError("no documented example")

    def check(self, request: httpx.Request, template: str, operation: dict[str, Any]) -> None:
        params = [
            _resolve(self.spec, p)
            for p in self.spec["paths"][template].get("parameters", [])
            + operation.get("parameters", [])
        ]
        allowed = {p["name"] for p in params if p["in"] == "query"}
        unknown = set(request.url.params) - allowed
        if unknown:
            self.problems.append(f"{template}: undocumented query parameters {unknown}")
        if request.content:
            body = _resolve(self.spec, operation.get("requestBody", {}))
            schema = body.get("content", {}).get("application/json", {}).get("schema")
            if schema is None:
                self.problems.append(f"{template}: a body where none is documented")
            else:
                jsonschema.validate(json.loads(request.content), _inline(self.spec, schema))

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        found = self.operation(request.method, path)
        if found is None:
            self.problems.append(f"{request.method} {path} is not a documented operation")
            return httpx.Response(599)
        template, operation = found
        self.seen.append((request.method, template))
        self.check(request, template, operation)
        if (request.method, template) in self.overrides:
            return self.overrides[(request.method, template)]
        if "diff" in request.headers.get("accept", ""):
            return httpx.Response(200, text="diff --git a/README b/README\n+hello\n")
        status, body = self.example(operation)
        return httpx.Response(status, json=body)


@pytest.fixture
def github_api() -> Iterator[SpecGitHub]:
    fake = SpecGitHub(_spec("api.github.com.json"))
    yield fake
    assert fake.problems == []


async def test_github_reads_parse_the_published_examples(github_api: SpecGitHub) -> None:
    client = GitHubClient(token="ghp_contract", transport=httpx.MockTransport(github_api))
    pr = await client.pull_request("octocat/Hello-World", 1347)
    assert pr["number"] == 1347 and pr["author"] == "octocat"
    assert pr["head"]["ref"] and pr["base"]["repo"] == "octocat/Hello-World"
    files = await client.pull_request_files("octocat/Hello-World", 1347)
    assert files["files"][0]["filename"] and files["truncated"] is False
    issue = await client.issue("octocat/Hello-World", 1347)
    assert issue["number"] == 1347 and issue["labels"] and issue["author"] == "octocat"
    comments = await client.issue_comments("octocat/Hello-World", 1347)
    assert comments["comments"][0]["author"] == "octocat"
    diff = await client.pull_request_diff("octocat/Hello-World", 1347)
    assert diff["diff"].startswith("diff --git")
    assert await client.permission("octocat/Hello-World", "octocat") == "admin"
    assert await client.in_team("github", "justice-league", "octocat") is True
    reads = ("pull_request", "pull_request_files", "issue", "issue_comments", "permission")
    assert set(github_api.seen) == {OPERATIONS[n] for n in (*reads, "team_membership")}
    await client.aclose()


async def test_github_not_found_in_the_documented_error_shape(github_api: SpecGitHub) -> None:
    error_schema = _inline(github_api.spec, {"$ref": "#/components/schemas/basic-error"})
    body = {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}
    jsonschema.validate(body, error_schema)
    path = ("GET", "/repos/{owner}/{repo}/collaborators/{username}/permission")
    github_api.overrides[path] = httpx.Response(404, json=body)
    github_api.overrides[("GET", "/repos/{owner}/{repo}/pulls/{pull_number}")] = httpx.Response(
        404, json=body
    )
    client = GitHubClient(token="ghp_contract", transport=httpx.MockTransport(github_api))
    assert await client.permission("octocat/Hello-World", "nobody") is None
    with pytest.raises(PlatformPermanentError, match="404: Not Found"):
        await client.pull_request("octocat/Hello-World", 1)
    await client.aclose()


async def test_github_app_tokens_from_the_documented_token_endpoint(
    github_api: SpecGitHub,
) -> None:
    operation = github_api.operation("POST", "/app/installations/1/access_tokens")
    assert operation is not None
    _, example = github_api.example(operation[1])
    expires_at = datetime.fromisoformat(example["expires_at"].replace("Z", "+00:00")).timestamp()
    now = [expires_at - 3600]
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    client = GitHubClient(
        app_id="1",
        private_key=pem,
        transport=httpx.MockTransport(github_api),
        clock=lambda: now[0],
        refresh_margin=300,
    )
    await client.pull_request("octocat/Hello-World", 1347)  # installation looked up, token minted
    await client.pull_request("octocat/Hello-World", 1347)
    now[0] = expires_at - 200
    await client.pull_request("octocat/Hello-World", 1347)
    minted = [t for m, t in github_api.seen if m == "POST"]
    assert minted == ["/app/installations/{installation_id}/access_tokens"] * 2
    assert ("GET", "/repos/{owner}/{repo}/installation") in github_api.seen
    await client.aclose()


# --- Slack -------------------------------------------------------------------------------


def test_slack_methods_called_are_slack_sdk_web_api_methods() -> None:
    assert slack_module.METHODS
    for method in slack_module.METHODS:
        assert callable(getattr(WebClient, method.replace(".", "_"), None)), method
