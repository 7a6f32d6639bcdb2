"""The world of the approval acceptance tests (tests/acceptance/test_approvals.py).

- `World`: the scenario servers (GitHub, Linear with the approvals hub, Slack), the scripted
  model (scripts/approvals.yaml) and `taskyard serve` yards configured to gate `merge_pr`
  on pr-review and post approval requests on Linear, GitHub and Slack
  (`approvals_config`, `policies_file`).
- Signed decisions as the platforms send them, signed here (not by taskyard): a Linear issue
  update (`linear_decision`), a `/approve` comment (`pr_comment`), a Slack button press
  (`button_press`), with `github_headers`, `linear_headers`, `slack_headers` and `post`.
- `review_until_gated`: a pull request review whose merge waits (`Gated`), and the checks:
  `assert_waiting`, `assert_merged_once`, `assert_told`, `assert_clean` (no contract problem
  and no configured token in any request or log since `Marks`).
- `LOOP_BUG` / `cross_loop`: what taskyard's log shows when a platform client made in one
  event loop is used from another.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import itertools
import json
import math
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import yaml
from slack_sdk.signature import SignatureVerifier

from taskyard.approvals.channels.linear import approval_issue_id
from taskyard.approvals.channels.slack import (
    ACTIONS_BLOCK,
    APPROVE_ACTION,
    DENY_ACTION,
    REASON_BLOCK,
)
from taskyard.config.action_names import DEFAULT_ALLOW
from taskyard.devtools.model_server import ModelServer
from taskyard.models import EventStatus
from taskyard.platforms.linear_write import mutation
from taskyard.records import ApprovalStatus
from taskyard.store.base import TaskFilter
from tests.acceptance.run_harness import SHARED
from tests.acceptance.scenario_harness import (
    SECRETS,
    TEAM_ID,
    TOKENS,
    UPDATED,
    Platforms,
    ScenarioYard,
    actions_by_index,
    linear_delivery,
    mutations,
    pull_request_delivery,
    yard_config,
)
from tests.acceptance.test_serve import SECRET, wait_for
from tests.linear_workspace import stable_id
from tests.platform_servers import Recorded, github_problems

SCRIPT = Path(__file__).resolve().parent / "scripts" / "approvals.yaml"
SHIPPED_POLICIES = resources.files("taskyard.approvals") / "defaults" / "approval-policies.yaml"
REPO = "Codertocat/Hello-World"
NUMBER = 2  # the pull request of GitHub's sample delivery
MERGE = ("PUT", f"/repos/{REPO}/pulls/{NUMBER}/merge")
REVIEWS = ("POST", f"/repos/{REPO}/pulls/{NUMBER}/reviews")
COMMENTS = ("POST", f"/repos/{REPO}/issues/{NUMBER}/comments")
API_TOKEN = "tyapi-APPROVALS-token-that-never-leaks-42"
MODEL_KEYS = ("sk-test-openai", "sk-test-anthropic")  # what ScenarioYard gives the agents
APPROVALS_CHANNEL = "C0APPROVALS"
APPROVER = "U0APPROVER"  # the lead, in Slack
STRANGER = "U0STRANGER"
COMMENT = json.loads((SHARED / "github" / "issue_comment.created.json").read_text())
LEAD_LOGIN = str(COMMENT["comment"]["user"]["login"])  # who comments in the real delivery
OUTSIDER_LOGIN = "hubot"  # a GitHub user holding no role
# Who opens the pull request: not the lead, who approves (the one who triggered a task may
# not approve its actions: taskyard.approvals.duties).
AUTHOR_LOGIN = "monalisa"
# The real Linear update names one user (its assignee) and no actor: the decisions' actor
# is that user, named by id in the policies.
LEAD_LINEAR = dict(UPDATED["data"]["assignee"])
LEAD_ACTOR = {
    "id": LEAD_LINEAR["id"],
    "name": LEAD_LINEAR["name"],
    "email": LEAD_LINEAR["name"],
    "type": "user",
}
HUB_ID = stable_id("issue", "approvals-hub")
APPROVED, DENIED = "Approved", "Denied"  # the shipped `approved_state` / `denied_state`
# What the log says when a platform client made in one event loop is used from another
# (see the report: the API and the sweeper tell the channels from the server's loop).
LOOP_BUG = "is bound to a different event loop"
SECRETS_HELD = (
    *TOKENS.values(),
    API_TOKEN,
    *SECRETS.values(),
    SECRET,
    *MODEL_KEYS,
)
_COMMENT_IDS = itertools.count(900_000_001)


# --- the world ------------------------------------------------------------------------------


def policies_file(path: Path, *, critical_minutes: float | None = None) -> Path:
    """The shipped approval policies with the role `lead` given to the GitHub login of the
    real comment delivery, the Linear user of the real update and U0APPROVER in Slack. No
    level asks for a justification: the shipped critical level does, which a Linear state
    change cannot give, and the merge here is critical."""
    data = yaml.safe_load(SHIPPED_POLICIES.read_text())
    data["roles"]["lead"] = {
        "github": [LEAD_LOGIN],
        "linear": [LEAD_LINEAR["id"]],
        "slack": [APPROVER],
    }
    for level in ("medium", "high", "critical"):
        data["levels"][level]["justification_required"] = False
    if critical_minutes is not None:
        data["levels"]["critical"]["timeout_minutes"] = critical_minutes
    path.write_text(yaml.safe_dump(data))
    return path


def approvals_config(world: World, policies: Path, *, sweep_seconds: float = 0.5) -> dict[str, Any]:
    """The scenario yard's config (shipped routes, real agents, the servers' URLs) with
    merge_pr allowed on pr-review and approvals posted on Linear, GitHub and Slack."""
    config = yard_config(world.platforms, dry_run=None)
    del config["routes"]  # the shipped routes
    pr_review = [*DEFAULT_ALLOW["pr-review"], "merge_pr"]
    config["actions"] = {**config["actions"], "allow": {"pr-review": pr_review}}
    config["approvals"] = {
        "policies": str(policies),
        "sweep_seconds": sweep_seconds,
        "channels": {
            "linear": {"hub_issue_id": HUB_ID},
            "github": True,
            "slack_channel": APPROVALS_CHANNEL,
        },
    }
    return config


@dataclass
class World:
    root: Path
    platforms: Platforms
    model: ModelServer
    head: str
    policies: Path
    approval_label: str
    yards: list[ScenarioYard] = field(default_factory=list)

    def yard(
        self,
        name: str,
        *,
        database_url: str | None = None,
        policies: Path | None = None,
        sweep_seconds: float = 0.5,
    ) -> ScenarioYard:
        config = approvals_config(self, policies or self.policies, sweep_seconds=sweep_seconds)
        yard = ScenarioYard(
            self.root / name,
            config,
            tokens=True,
            model_url=self.model.url,
            git_url_template=f"file://{self.root}/mirrors-src/{{owner}}/{{repo}}.git",
            database_url=database_url,
        )
        yard.env["TASKYARD_API_TOKEN"] = API_TOKEN
        self.yards.append(yard)
        yard.start()
        return yard


def seed_approvals(platforms: Platforms) -> str:
    """The hub issue, the Approved / Denied states and the `approval` label in Linear;
    returns the label's id."""
    ws = platforms.linear_ws
    ws.add_issue(TEAM_ID, "Approvals", issue_id=HUB_ID, description="taskyard asks here.")
    ws.add_state(TEAM_ID, APPROVED, "started")
    ws.add_state(TEAM_ID, DENIED, "canceled")
    return ws.add_label("approval", TEAM_ID)


# --- what a test checks of everything it caused ------------------------------------------------


@dataclass(frozen=True)
class Marks:
    requests: dict[str, int]
    found: dict[str, int]  # how many problems each server had recorded

    @classmethod
    def of(cls, world: World) -> Marks:
        servers = world.platforms.servers
        return cls(world.platforms.marks(), {n: len(s.problems) for n, s in servers.items()})

    def sent(self, world: World) -> dict[str, list[Recorded]]:
        return world.platforms.since(self.requests)

    def problems(self, world: World) -> list[str]:
        servers = world.platforms.servers
        return [f"{n}: {p}" for n, s in servers.items() for p in s.problems[self.found[n] :]]


def assert_clean(world: World, yard: ScenarioYard, marks: Marks, *outputs: str) -> None:
    """No request since `marks` broke a platform's contract, and no configured token is in
    any request (but its Authorization header), in taskyard's log or in `outputs`."""
    assert marks.problems(world) == []
    sent = marks.sent(world)
    leaked = [
        f"{name}: {r.method} {r.path}"
        for name, recorded in sent.items()
        for r in recorded
        if any(s in r.everything_but_auth() for s in SECRETS_HELD)
    ]
    assert leaked == []
    log = (yard.home / "serve.log").read_text()
    assert [s for s in SECRETS_HELD if s in log] == []
    assert [s for s in SECRETS_HELD for text in outputs if s in text] == []


# --- driving the yard ---------------------------------------------------------------------


def cli_json(yard: ScenarioYard, *args: str) -> Any:
    return json.loads(yard.cli(*args, "--json").stdout)


def pending(yard: ScenarioYard) -> list[dict[str, Any]]:
    return list(cli_json(yard, "approvals", "list-pending"))


def status(yard: ScenarioYard, ref: str) -> list[dict[str, Any]]:
    return list(cli_json(yard, "approvals", "status", ref))


def task_of(yard: ScenarioYard, event_id: str) -> dict[str, Any] | None:
    store = yard.store()
    try:
        found = store.list_tasks(TaskFilter(event_id=event_id, limit=5))
    finally:
        store.close()
    assert len(found) <= 1, found
    return None if not found else {"id": found[0].id, "status": str(found[0].status)}


def wait_task(
    yard: ScenarioYard, event_id: str, wanted: str, seconds: float = 60
) -> dict[str, Any]:
    """The event's one task (`tasks show --json`) once it is `wanted`; fails early if it
    ends otherwise."""
    seen: list[dict[str, Any] | None] = [None]

    def reached() -> bool:
        seen[0] = task_of(yard, event_id)
        now = seen[0]["status"] if seen[0] else None
        terminal = ("succeeded", "failed", "timed_out", "cancelled", "expired")
        if now in terminal and now != wanted:
            shown = yard.show(seen[0]["id"]) if seen[0] else {}
            raise AssertionError(f"the task ended {now}: {shown.get('reason')}")
        return now == wanted

    wait_for(reached, seconds, f"the task of event {event_id} to be {wanted}")
    found = seen[0]
    assert found is not None
    return yard.show(found["id"])


def wait_ended(yard: ScenarioYard, event_id: str, seconds: float = 60) -> str:
    """The status the event's one task ended in."""
    ended: list[str] = []

    def done() -> bool:
        found = task_of(yard, event_id)
        terminal = ("succeeded", "failed", "timed_out", "cancelled", "expired")
        if found is not None and found["status"] in terminal:
            ended.append(found["status"])
        return bool(ended)

    wait_for(done, seconds, f"the task of event {event_id} to end")
    return ended[0]


def cross_loop(yard: ScenarioYard) -> str | None:
    """What taskyard's log shows of LOOP_BUG: a platform client used from the wrong event
    loop (the error itself, or a write retried after it; nothing else fails here)."""
    log = (yard.home / "serve.log").read_text()
    if LOOP_BUG in log:
        return f"a platform client {LOOP_BUG}"
    retried = [
        json.loads(line).get("call", "")
        for line in log.splitlines()
        if '"platform call retried"' in line
    ]
    writes = [c for c in retried if c.split(" ")[0] in ("POST", "PUT", "PATCH", "DELETE")]
    if writes:
        return f"a write retried after a client of another event loop failed: {writes}"
    return None


def wait_event(yard: ScenarioYard, event_id: str, seconds: float = 30) -> list[dict[str, Any]]:
    """The routing decisions of a processed event."""
    wait_for(
        lambda: yard.status(event_id) is EventStatus.PROCESSED,
        seconds,
        f"event {event_id} to be processed",
    )
    return list(yard.event(event_id)["routing"])


def attempts_of(yard: ScenarioYard, approval_id: str) -> list[dict[str, Any]]:
    (shown,) = status(yard, approval_id)
    return list(shown["attempts"])


# --- signed deliveries (signed here as the platforms document, not by taskyard) -------------


def post(
    yard: ScenarioYard, source: str, body: bytes, headers: Mapping[str, str]
) -> httpx.Response:
    return httpx.post(f"{yard.url}/webhooks/{source}", content=body, headers=dict(headers))


def _hex_hmac(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def github_headers(body: bytes, event: str, delivery: str, secret: str = SECRET) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "x-github-event": event,
        "x-github-delivery": delivery,
        "x-hub-signature-256": "sha256=" + _hex_hmac(secret, body),
        "user-agent": "GitHub-Hookshot/acceptance",
    }


def linear_headers(body: bytes, secret: str = SECRET) -> dict[str, str]:
    return {
        "content-type": "application/json; charset=utf-8",
        "linear-signature": _hex_hmac(secret, body),
        "linear-delivery": str(uuid.uuid4()),
        "linear-event": "Issue",
    }


def slack_headers(body: bytes, secret: str = SECRETS["TASKYARD_SLACK_SECRET"]) -> dict[str, str]:
    sent = str(int(time.time()))
    signature = SignatureVerifier(secret).generate_signature(timestamp=sent, body=body)
    assert signature is not None
    return {
        "content-type": "application/x-www-form-urlencoded",
        "x-slack-request-timestamp": sent,
        "x-slack-signature": signature,
    }


def accepted(response: httpx.Response) -> str:
    assert response.status_code in (200, 202), response.text
    body = response.json()
    assert body.get("duplicate") is not True, body
    return str(body["event_id"])


def pr_comment(body: str, login: str = LEAD_LOGIN) -> bytes:
    """GitHub's sample `issue_comment.created` delivery, made a new comment by `login` on
    the pull request."""
    payload = copy.deepcopy(COMMENT)
    issue = payload["issue"]
    issue["number"] = NUMBER
    issue["html_url"] = f"https://github.com/{REPO}/pull/{NUMBER}"
    issue["pull_request"] = {
        "url": f"https://api.github.com/repos/{REPO}/pulls/{NUMBER}",
        "html_url": f"https://github.com/{REPO}/pull/{NUMBER}",
        "diff_url": f"https://github.com/{REPO}/pull/{NUMBER}.diff",
        "patch_url": f"https://github.com/{REPO}/pull/{NUMBER}.patch",
    }
    comment = payload["comment"]
    comment_id = next(_COMMENT_IDS)
    comment["id"] = comment_id
    comment["html_url"] = f"https://github.com/{REPO}/pull/{NUMBER}#issuecomment-{comment_id}"
    comment["body"] = body
    # written now (whole seconds, rounded up as GitHub's clock may run ahead): a comment
    # that names no request decides none made after it
    written = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(math.ceil(time.time())))
    comment["created_at"] = comment["updated_at"] = written
    for user in (comment["user"], payload["sender"]):
        user["login"] = login
    return json.dumps(payload).encode()


def linear_decision(world: World, approval: Mapping[str, Any], state: str = APPROVED) -> bytes:
    """The real `Issue` update delivery, made the move of the approval issue to `state` by
    the lead (the approval issue moved in the workspace too)."""
    ws = world.platforms.linear_ws
    issue_id = approval["channels"]["linear"]["issue_id"]
    issue = ws.issue(issue_id)
    moved_to = ws.add_state(TEAM_ID, state, "started" if state == APPROVED else "canceled")
    before, issue["stateId"] = issue["stateId"], moved_to
    payload = copy.deepcopy(UPDATED)
    data = payload["data"]
    data.update(
        id=issue_id,
        number=issue["number"],
        title=issue["title"],
        parentId=HUB_ID,
        stateId=moved_to,
        state={"id": moved_to, "name": state, "color": "#5e6ad2", "type": "started"},
        labelIds=issue["labelIds"],
        subscriberIds=[],
    )
    payload["updatedFrom"]["stateId"] = before
    del payload["updatedFrom"]["parentId"]  # the parent did not change in this update
    payload["url"] = approval["channels"]["linear"]["url"]
    payload["actor"] = LEAD_ACTOR
    return json.dumps(linear_delivery(payload)).encode()


def button_press(
    approval: Mapping[str, Any],
    user: str = APPROVER,
    action_id: str = APPROVE_ACTION,
    reason: str | None = None,
) -> bytes:
    """A form-encoded `block_actions` interaction: `user` pressed a button of the request's
    Slack message (with `reason` typed in its reason field)."""
    ref = approval["channels"]["slack"]
    trigger = f"{int(time.time())}.1234567890.{uuid.uuid4().hex[:16]}"
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": "approver", "name": "approver", "team_id": "T0SHOP"},
        "api_app_id": "A0TASKYARD",
        "token": "XXYYZZ",
        "container": {
            "type": "message",
            "message_ts": ref["ts"],
            "channel_id": ref["channel"],
            "is_ephemeral": False,
        },
        "trigger_id": trigger,
        "team": {"id": "T0SHOP", "domain": "shop"},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": ref["channel"], "name": "approvals"},
        "message": {"type": "message", "ts": ref["ts"], "bot_id": "B1", "text": "Approval"},
        "state": {
            "values": {REASON_BLOCK: {REASON_BLOCK: {"type": "plain_text_input", "value": reason}}}
        },
        "response_url": "https://hooks.slack.com/actions/T0SHOP/1/ACK",
        "actions": [
            {
                "action_id": action_id,
                "block_id": ACTIONS_BLOCK,
                "text": {"type": "plain_text", "text": "Approve", "emoji": True},
                "value": approval["id"],
                "style": "primary",
                "type": "button",
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


# --- a review that waits for its merge --------------------------------------------------------


@dataclass(frozen=True)
class Gated:
    """A pull request review whose merge waits: the task, its one pending request, and what
    reached the platforms until then."""

    marks: Marks
    event_id: str
    task: dict[str, Any]
    approval: dict[str, Any]
    sent: dict[str, list[Recorded]]


def settle(yard: ScenarioYard) -> None:
    """What an earlier test of the shared yard left (when it failed half-way) ends before
    the next starts: its pending requests are denied, and every task ends."""
    store = yard.store()
    try:
        for left in store.list_approvals(ApprovalStatus.PENDING):
            reason = ("--reason", "left pending by an earlier test")
            yard.cli("approvals", "reject", left.id, *reason, "--as", "cleanup", check=False)
        wait_for(
            lambda: all(t.status.terminal for t in store.list_tasks(TaskFilter(limit=500))),
            60,
            "every task of the earlier tests to end",
        )
    finally:
        store.close()


_DELIVERIES = itertools.count()


def authored_pull_request(world: World) -> dict[str, Any]:
    """The pull request delivery the tests' reviews start from: opened by `AUTHOR_LOGIN` (not
    the lead, who decides), and each one its own (GitHub's differ at least in their time): the
    same body again within the dedup window would be a replay, a duplicate at intake."""
    delivery = pull_request_delivery(world.head)
    delivery["sender"]["login"] = delivery["pull_request"]["user"]["login"] = AUTHOR_LOGIN
    delivery["pull_request"]["updated_at"] = f"2026-01-01T00:00:{next(_DELIVERIES):02d}Z"
    return delivery


def review_until_gated(world: World, yard: ScenarioYard) -> Gated:
    settle(yard)
    marks = Marks.of(world)
    event_id = yard.deliver("github", authored_pull_request(world), "pull_request")
    task = wait_task(yard, event_id, "awaiting_approval")
    waiting = pending(yard)
    assert [a["task_id"] for a in waiting] == [task["id"]]
    return Gated(marks, event_id, task, waiting[0], marks.sent(world))


def requests_to(sent: list[Recorded], where: tuple[str, str]) -> list[Recorded]:
    return [r for r in sent if (r.method, r.path) == where]


def slack_calls(sent: list[Recorded], method: str) -> list[dict[str, Any]]:
    found = [r.arguments() for r in sent if r.path.endswith(f"/{method}")]
    for args in found:
        if isinstance(args.get("blocks"), str):
            args["blocks"] = json.loads(args["blocks"])
    return found


def assert_waiting(world: World, gated: Gated) -> None:
    """One pending request for the merge, posted on all three channels; the review applied,
    the merge not sent."""
    task, approval, sent = gated.task, gated.approval, gated.sent
    assert task["route"] == "pr-review" and task["agent"] == "codex"
    assert task["status"] == "awaiting_approval"
    acts = actions_by_index(task)
    assert [(i, acts[i]["type"], acts[i]["status"]) for i in sorted(acts)] == [
        (-1, "react", "applied"),
        (0, "review", "applied"),
        (1, "merge_pr", "awaiting_approval"),
    ]
    assert acts[1]["reason"] == f"waiting for approval {approval['id']} (critical: merge-main)"
    # The shipped rules: a merge into master is critical by `merge-main`.
    assert (approval["action_type"], approval["risk"], approval["rule"]) == (
        "merge_pr",
        "critical",
        "merge-main",
    )
    assert approval["status"] == "pending" and approval["decided_by"] is None
    assert approval["details"]["roles"] == ["lead", "owner"]
    planned = [
        {k: r[k] for k in ("method", "path", "body")} for r in approval["details"]["requests"]
    ]
    assert planned == [{"method": MERGE[0], "path": MERGE[1], "body": {"merge_method": "squash"}}]
    github = sent["github"]
    assert requests_to(github, MERGE) == []
    (review,) = requests_to(github, REVIEWS)
    assert review.json()["event"] == "COMMENT" and github_problems(review) == []
    # GitHub: the request as a comment on the pull request, naming the lead.
    (asked,) = requests_to(github, COMMENTS)
    assert github_problems(asked) == []
    text = asked.json()["body"]
    assert approval["id"] in text and "`merge-main`" in text and "/approve" in text
    assert f"@{LEAD_LOGIN.lower()}" in text
    assert approval["channels"]["github"]["number"] == NUMBER
    # Linear: a sub-issue of the hub (the workspace refuses a parent it does not have).
    issue_id = approval_issue_id(approval["id"])
    created = [m for m in mutations(sent["linear"]) if m["query"] == mutation("issue_create")]
    assert [m["variables"]["input"]["id"] for m in created] == [issue_id]
    given = created[0]["variables"]["input"]
    assert (given["parentId"], given["teamId"], given["priority"]) == (HUB_ID, TEAM_ID, 1)
    assert given["labelIds"] == [world.approval_label]
    assert given["title"].startswith("[CRITICAL] Approval: merge_pr")
    issue = world.platforms.linear_ws.issue(issue_id)
    assert issue["parentId"] == HUB_ID and approval["channels"]["linear"]["issue_id"] == issue_id
    # Slack: a message with the two buttons, each carrying the request's id.
    (message,) = slack_calls(sent["slack"], "chat.postMessage")
    assert message["channel"] == APPROVALS_CHANNEL
    (buttons,) = [b for b in message["blocks"] if b["type"] == "actions"]
    assert [(e["action_id"], e["value"]) for e in buttons["elements"]] == [
        (APPROVE_ACTION, approval["id"]),
        (DENY_ACTION, approval["id"]),
    ]
    assert approval["channels"]["slack"]["channel"] == APPROVALS_CHANNEL


def assert_merged_once(
    world: World,
    yard: ScenarioYard,
    gated: Gated,
    decided_by: str,
    via: str,
    *,
    told: bool = True,
) -> dict[str, Any]:
    """The task resumed and succeeded; exactly one merge reached GitHub, nothing was sent
    twice; the request says who decided, and (`told`) the pull request says so. Returns the
    task."""
    task = wait_task(yard, gated.event_id, "succeeded")
    acts = actions_by_index(task)
    assert [(i, acts[i]["status"]) for i in sorted(acts)] == [
        (-1, "applied"),
        (0, "applied"),
        (1, "applied"),
    ]
    assert task["reason"] is None
    time.sleep(0.3)  # a report or a second merge still in flight would show up here
    sent = gated.marks.sent(world)
    github = sent["github"]
    (merge,) = requests_to(github, MERGE)
    assert merge.json() == {"merge_method": "squash"} and github_problems(merge) == []
    assert len(requests_to(github, REVIEWS)) == 1  # the review was not sent again
    (shown,) = status(yard, task["id"])
    assert (shown["status"], shown["decided_by"], shown["decided_via"]) == (
        "approved",
        decided_by,
        via,
    )
    assert pending(yard) == []
    # The decision started the task itself (not the dispatcher's next look, after a failure
    # to start it from inside the routing job's workflow).
    assert "resumed task not started at once" not in (yard.home / "serve.log").read_text()
    if not told:
        return task
    said = [r.json()["body"] for r in requests_to(github, COMMENTS)]
    outcome = [b for b in said if b.startswith("✅ approved by")]
    assert len(outcome) == 1 and gated.approval["id"] in outcome[0], said
    assert github.index(requests_to(github, COMMENTS)[0]) < github.index(merge)
    return task


def assert_told(world: World, gated: Gated, who: str) -> None:
    """The Slack request message shows the outcome instead of the buttons, and the Linear
    approval issue has a comment saying it was approved."""
    sent = gated.marks.sent(world)
    ref = gated.approval["channels"]["slack"]
    (update,) = slack_calls(sent["slack"], "chat.update")
    assert (update["channel"], update["ts"]) == (ref["channel"], ref["ts"])
    assert not [b for b in update["blocks"] if b["type"] in ("actions", "input")]
    assert f"✅ Approved by {who}" in json.dumps(update["blocks"], ensure_ascii=False)
    issue_id = gated.approval["channels"]["linear"]["issue_id"]
    notes = [c["body"] for c in world.platforms.linear_ws.comments_of(issue_id)]
    assert len(notes) == 1 and notes[0].startswith("✅ **Approved**"), notes


def approval_note(decisions: list[dict[str, Any]]) -> str:
    (decision,) = decisions
    assert (decision["route"], decision["decision"], decision["task_id"]) == (
        "approvals",
        "approval",
        None,
    )
    return str(decision["reason"])
