"""Routes in taskyard.yaml: what loads, the defaults, and config errors an operator can read."""

from __future__ import annotations

from pathlib import Path

import pytest

from taskyard.config import load_settings
from taskyard.exceptions import ConfigError
from taskyard.routing import Permission, RoutingSettings, default_routes

ROUTES_YAML = """
routing:
  bot_user: taskyard-bot
  slack_bugs_channel: C0BUGS
routes:
  - name: pr-review
    on: ["github:pull_request.opened", "github:pull_request.synchronize"]
    when:
      - {path: pull_request.base.ref, equals: main}
      - {path: repository.full_name, in: [acme/api, acme/web]}
      - {path: pull_request.title, regex: "^(feat|fix)"}
      - {jmespath: "length(pull_request.labels[?name=='skip-agent'])", equals: 0}
    who:
      min_permission: maintain
      teams: [acme/platform]
    agent: codex
    prompt: pr-review
    context: [github.pr, github.diff]
    repo: true
    timeout_seconds: 120
    max_tool_calls: 20
  - name: triage-label
    on: linear:Issue.*
    label: agent
    agent: claude
    result_schema: {type: object, required: [summary]}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "taskyard.yaml"
    path.write_text(text)
    return path


def route_error(tmp_path: Path, route: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, f"routes:\n  - {route}\n"), {})
    return str(caught.value)


def test_defaults_are_the_four_seed_routes() -> None:
    settings = load_settings(None, {})
    assert [r.name for r in settings.routes] == [
        "linear-triage",
        "slack-bug-analysis",
        "pr-review",
        "sentry-triage",
    ]
    assert settings.routes == default_routes()
    assert settings.routing == RoutingSettings()
    by_name = {r.name: r for r in settings.routes}
    assert by_name["pr-review"].repo and not by_name["pr-review"].drafts
    assert {r.agent for r in settings.routes} <= set(settings.agents)
    assert all(r.prompt == r.name for r in settings.routes)


def test_routes_from_yaml_replace_the_defaults(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, ROUTES_YAML), {})
    assert [r.name for r in settings.routes] == ["pr-review", "triage-label"]
    review, labeled = settings.routes
    assert review.listens_to("github:pull_request.synchronize")
    assert not review.listens_to("github:pull_request.closed")
    assert labeled.listens_to("linear:Issue.update") and labeled.label == ("agent",)
    assert review.who.required_permission is Permission.MAINTAIN
    assert review.who.teams == ("acme/platform",)
    assert [f.operator for f in review.when] == ["equals", "in", "regex", "equals"]
    assert (review.timeout_seconds, review.max_tool_calls) == (120, 20)
    assert settings.routing.slack_bugs_channel == "C0BUGS"


def test_default_permission_is_write_or_none_with_an_allowlist() -> None:
    settings = load_settings(None, {}, {"routes": [{"name": "a", "on": "x:y", "agent": "codex"}]})
    assert settings.routes[0].who.required_permission is Permission.WRITE
    listed = {"name": "a", "on": "x:y", "agent": "codex", "who": {"users": "alice"}}
    settings = load_settings(None, {}, {"routes": [listed]})
    assert settings.routes[0].who.required_permission is Permission.NONE


@pytest.mark.parametrize(
    ("route", "message"),
    [
        (
            "{name: a, on: 'github:issues.*', agent: codex, when: [{path: x, startswith: y}]}",
            "unknown filter operator 'startswith' (expected one of equals, in, contains, regex",
        ),
        (
            "{name: a, on: 'github:issues.*', agent: codex, when: [{path: x, regex: '(unclosed'}]}",
            "bad regex '(unclosed'",
        ),
        (
            "{name: a, on: 'github:issues.*', agent: codex, when: [{jmespath: 'a[', equals: 1}]}",
            "bad JMESPath 'a['",
        ),
        (
            "{name: a, on: 'github:issues.*', agent: codex, when: [{path: x, equals: 1, in: [1]}]}",
            "exactly one operator of equals, in, contains, regex, exists (got equals, in)",
        ),
        (
            "{name: a, on: 'github:issues.*', agent: codex, when: [{equals: 1}]}",
            "exactly one of 'path' or 'jmespath'",
        ),
        ("{name: a, on: 'pull_request.opened', agent: codex}", "must look like 'source:event"),
        ("{name: a, on: 'github:pull request', agent: codex}", "without spaces"),
        ("{name: a, on: 'github:issues.[ab', agent: codex}", "unbalanced"),
        ("{name: a, on: [], agent: codex}", "at least one event type glob"),
        (
            "{name: a, on: 'x:y', agent: codex, who: {min_permission: writer}}",
            "unknown permission 'writer' (expected one of none, read, triage, write, maintain",
        ),
        ("{name: a, on: 'x:y', agent: codex, who: {teams: [platform]}}", "'org/team-slug'"),
        ("{name: a, on: 'x:y', agent: gemini}", "names agent 'gemini', which is not configured"),
        ("{name: A B, on: 'x:y', agent: codex}", "route name 'A B' must be lower-case"),
        ("{name: a, on: 'x:y', agent: codex, colour: red}", "colour"),
        (
            "{name: a, on: 'x:y', agent: codex, result_schema: {type: objekt}}",
            "result_schema is no valid JSON Schema",
        ),
    ],
)
def test_bad_routes_are_config_errors_that_say_what_is_wrong(
    tmp_path: Path, route: str, message: str
) -> None:
    assert message in route_error(tmp_path, route)


def test_two_routes_with_one_name_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="route names must be unique: twin given more than once"):
        load_settings(
            write(
                tmp_path,
                "routes:\n"
                "  - {name: twin, on: 'x:y', agent: codex}\n"
                "  - {name: twin, on: 'x:z', agent: claude}\n",
            ),
            {},
        )
