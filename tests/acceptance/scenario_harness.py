"""The world of the seed-scenario tests: the fake GitHub, Linear and Slack servers (seeded
from the real deliveries), the scripted model server, a git repository, and `taskyard serve`
processes configured against them.

- `Platforms`: the three recording servers with their data (`LinearWorkspace`,
  `SlackWorkspace`, the pull request's reads); `marks()` / `since(marks)` for the requests a
  scenario caused.
- `ScenarioYard`: a `taskyard serve` with the shipped routes (plus `EXTRA_ROUTES`), the real
  codex and claude, the platforms' URLs, and tokens or not; `deliver(...)` signs and posts a
  delivery (`taskyard send`), `wait_tasks(...)` polls the store until the event's tasks end,
  `show(task_id)` is `taskyard tasks show ID --json`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taskyard.actions.keys import marker
from taskyard.models import TaskStatus
from taskyard.platforms.linear_write import linear_uuid
from taskyard.routing import default_routes
from taskyard.store.base import TaskFilter
from tests.acceptance.run_harness import SHARED, RunYard, git
from tests.acceptance.test_serve import wait_for
from tests.agent_binaries import agent_binary
from tests.linear_workspace import LinearWorkspace
from tests.platform_servers import (
    PlatformServer,
    Recorded,
    SlackWorkspace,
    github_server,
    linear_server,
    serve_pull_request,
    slack_server,
)

SCRIPT = Path(__file__).resolve().parent / "scripts" / "scenarios.yaml"
TOKENS = {
    "TASKYARD_GITHUB_TOKEN": "ghp_SCENARIOtokenTHATmustNEVERleak0123",
    "TASKYARD_LINEAR_API_KEY": "lin_api_SCENARIOkeyTHATmustNEVERleak",
    "TASKYARD_SLACK_BOT_TOKEN": "xoxb-SCENARIO-token-that-never-leaks",
}
SECRETS = {
    "TASKYARD_SLACK_SECRET": "slack-signing-secret",
    "TASKYARD_SENTRY_SECRET": "sentry-secret",
}
BUGS_CHANNEL = "C0BUGS"
REPORTER = "U0REPORTER"

CREATED = json.loads((SHARED / "linear" / "issue.create.json").read_text())
UPDATED = json.loads((SHARED / "linear" / "issue.update.state_change.json").read_text())
ISSUE_ID = str(CREATED["data"]["id"])
TEAM_ID = str(CREATED["data"]["team"]["id"])
PULL = json.loads((SHARED / "github" / "pull_request.opened.json").read_text())
SENTRY = json.loads((SHARED / "sentry" / "example-app.issue.created.json").read_text())

# Routes added to the shipped ones: the Linear triage with codex (on updates), so both MCP
# agents can be seen calling the action tools.
EXTRA_ROUTES: list[dict[str, Any]] = [
    {
        "name": "linear-triage-codex",
        "on": ["linear:Issue.update"],
        "agent": "codex",
        "prompt": "linear-triage",
        "context": ["linear.issue", "linear.related", "linear.team"],
    }
]
EXTRA_ALLOW = {"linear-triage-codex": ["add_labels", "set_priority", "comment"]}


def linear_workspace() -> LinearWorkspace:
    """Linear as the deliveries describe it: the issue KOR-11 of team korosuke613 (KOR), its
    states (the update's Todo too), its creator and assignee; plus the team's labels, a
    workspace label, and a similar issue (KOR-12) for `linear.related` to find."""
    ws = LinearWorkspace(url_key="korosuke613")
    ws.add_delivered_issue(CREATED)
    state = UPDATED["data"]["state"]
    ws.add_state(TEAM_ID, state["name"], state["type"], state["id"])
    assignee = UPDATED["data"]["assignee"]
    ws.add_user(assignee["id"], assignee["name"])
    for name in ("Bug", "Feature", "Improvement"):
        ws.add_label(name, TEAM_ID)
    area = ws.add_label("Area", TEAM_ID, group=True)
    for name in ("Backend", "Frontend"):
        ws.add_label(name, TEAM_ID, parent=area)
    ws.add_label("Customer")
    ws.add_issue(TEAM_ID, "webhook test retries twice", description="Seen after a deploy.")
    return ws


@dataclass
class Platforms:
    github: PlatformServer
    linear: PlatformServer
    slack: PlatformServer
    linear_ws: LinearWorkspace
    slack_ws: SlackWorkspace

    @property
    def servers(self) -> dict[str, PlatformServer]:
        return {"github": self.github, "linear": self.linear, "slack": self.slack}

    def marks(self) -> dict[str, int]:
        return {name: server.mark() for name, server in self.servers.items()}

    def since(self, marks: Mapping[str, int]) -> dict[str, list[Recorded]]:
        return {name: server.since(marks[name]) for name, server in self.servers.items()}

    def problems(self) -> list[str]:
        return [f"{name}: {p}" for name, s in self.servers.items() for p in s.problems]


@contextmanager
def platforms(diff: str, head_sha: str) -> Iterator[Platforms]:
    """The three servers; GitHub answers the pull request of the delivery (its head moved to
    `head_sha`) with `diff`."""
    linear_ws, slack_ws = linear_workspace(), SlackWorkspace()
    with ExitStack() as stack:
        gh = stack.enter_context(github_server())
        serve_pull_request(gh, pull_request_delivery(head_sha), diff)
        linear = stack.enter_context(linear_server(linear_ws))
        slack = stack.enter_context(slack_server(slack_ws))
        yield Platforms(gh, linear, slack, linear_ws, slack_ws)


def pull_request_delivery(head_sha: str) -> dict[str, Any]:
    """GitHub's sample `pull_request.opened` delivery, its head moved to `head_sha`."""
    payload = json.loads(json.dumps(PULL))
    payload["pull_request"]["head"]["sha"] = head_sha
    return dict(payload)


def linear_delivery(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A Linear delivery stamped now (Linear's 60-second replay window)."""
    return {**payload, "webhookTimestamp": int(time.time() * 1000)}


def slack_message(text: str, ts: str, event_id: str) -> dict[str, Any]:
    """An Events API `message.channels` delivery: a top-level message in the bugs channel."""
    message = {
        "type": "message",
        "channel": BUGS_CHANNEL,
        "channel_type": "channel",
        "user": REPORTER,
        "text": text,
        "ts": ts,
        "event_ts": ts,
        "client_msg_id": f"{event_id.lower()}-0000-4000-8000-000000000000",
    }
    return {
        "token": "XXYYZZ",
        "team_id": "T0SHOP",
        "api_app_id": "A0TASKYARD",
        "event": message,
        "type": "event_callback",
        "event_id": event_id,
        "event_time": int(float(ts)),
        "authorizations": [
            {
                "enterprise_id": None,
                "team_id": "T0SHOP",
                "user_id": "U0TASKYARD",
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": False,
    }


def git_diff(src: Path) -> str:
    """The pull request's diff: the repository's last commit."""
    return git("diff", "HEAD~1", "HEAD", cwd=src) + "\n"


def yard_config(world: Platforms, *, dry_run: bool | None) -> dict[str, Any]:
    """taskyard.yaml (as data) for a yard: the shipped routes plus `EXTRA_ROUTES`, the real
    agents, the platforms' URLs (tokens come from the environment), `actions.dry_run`."""
    routes = [
        r.model_dump(mode="json", by_alias=True, exclude_defaults=True) for r in default_routes()
    ]
    return {
        "queue": {"polling_interval_sec": 0.05},
        "runs": {"timeout_seconds": 90, "kill_grace_seconds": 1, "keep_workspaces": True},
        "agents": {
            "codex": {"kind": "codex", "binary": agent_binary("codex"), "model": "gpt-5.5"},
            "claude": {
                "kind": "claude",
                "binary": agent_binary("claude"),
                "model": "claude-sonnet-4-5",
                "address_space_bytes": 4 * 1024**3,
            },
        },
        "platforms": {
            "github": {"base_url": world.github.base_url},
            "linear": {"url": world.linear.base_url},
            "slack": {"base_url": world.slack.base_url},
            "backoff_seconds": 0.05,
        },
        "actions": {"dry_run": dry_run, "default_linear_team": TEAM_ID, "allow": EXTRA_ALLOW},
        "routing": {"slack_bugs_channel": BUGS_CHANNEL},
        "routes": [*routes, *EXTRA_ROUTES],
        "log_level": "INFO",
    }


class ScenarioYard(RunYard):
    """A `taskyard serve` for the scenarios (see the module docstring)."""

    def __init__(
        self,
        home: Path,
        config: Mapping[str, Any],
        *,
        tokens: bool,
        model_url: str,
        git_url_template: str,
        database_url: str | None = None,
    ) -> None:
        home.mkdir(parents=True, exist_ok=True)
        super().__init__(home, database_url, json.dumps(config, indent=1))
        for name in TOKENS:
            self.env.pop(name, None)
        if tokens:
            self.env.update(TOKENS)
        self.env.update(SECRETS)
        self.env.update(
            TASKYARD_GIT_URL_TEMPLATE=git_url_template,
            OPENAI_BASE_URL=f"{model_url}/v1",
            OPENAI_API_KEY="sk-test-openai",
            ANTHROPIC_BASE_URL=model_url,
            ANTHROPIC_API_KEY="sk-test-anthropic",
        )

    def deliver(self, source: str, payload: Mapping[str, Any], event: str | None = None) -> str:
        return self.send_file(source, dict(payload), event)

    def wait_tasks(self, event_id: str, count: int, seconds: float = 40) -> list[dict[str, Any]]:
        """The event's `count` tasks (`tasks show --json`, oldest first), once all ended."""
        store = self.store()
        try:

            def ended() -> bool:
                tasks = store.list_tasks(TaskFilter(event_id=event_id, limit=50))
                return len(tasks) >= count and all(t.status in _TERMINAL for t in tasks)

            wait_for(ended, seconds, f"{count} task(s) of event {event_id} to end")
            found = store.list_tasks(TaskFilter(event_id=event_id, limit=50))
        finally:
            store.close()
        assert len(found) == count, [(t.route, t.status) for t in found]
        return [self.show(t.id) for t in sorted(found, key=lambda t: t.created_at)]

    def show(self, task_id: str) -> dict[str, Any]:
        return dict(json.loads(self.cli("tasks", "show", task_id, "--json").stdout))


_TERMINAL = frozenset(s for s in TaskStatus if s.terminal)


def actions_by_index(task: Mapping[str, Any]) -> dict[int, dict[str, Any]]:
    """A task's action records (`tasks show --json`) by index."""
    return {int(a["index"]): a for a in task["actions"]}


def mutations(requests: list[Recorded]) -> list[dict[str, Any]]:
    """The Linear mutations among `requests`, as `{query, variables}` bodies."""
    bodies = [r.json() for r in requests]
    return [b for b in bodies if b["query"].lstrip().startswith("mutation")]


def wire(request: Recorded, platform: str) -> dict[str, Any]:
    """A recorded request in the shape of an action record's request (method, path, body)."""
    if platform == "github":
        return {"method": request.method, "path": request.path, "body": request.json()}
    if platform == "linear":
        return {"method": request.method, "path": "graphql", "body": request.json()}
    return {
        "method": request.method,
        "path": request.path.rsplit("/", 1)[-1],
        "body": request.arguments(),
    }


def planned(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """An action record's requests as (method, path, body), with what its idempotency key
    decides (the hidden marker, the id Linear creations get) made neutral, so that two tasks
    proposing the same action compare equal."""
    text = json.dumps([{k: r[k] for k in ("method", "path", "body")} for r in record["requests"]])
    key = str(record["key"])
    text = text.replace(json.dumps(marker(key))[1:-1], f"<!-- taskyard:#{record['index']} -->")
    text = text.replace(linear_uuid(key), f"<id of #{record['index']}>")
    return list(json.loads(text))


def leaks(requests: Mapping[str, list[Recorded]]) -> list[str]:
    """Requests that carry a token anywhere but their Authorization header."""
    return [
        f"{name}: {r.method} {r.path}"
        for name, recorded in requests.items()
        for r in recorded
        if any(token in r.everything_but_auth() for token in TOKENS.values())
    ]
