"""The GitHub approval channel on its own: reading `/approve` and `/deny` comments, what the
request and the replies say, and where they are posted (a recording fake writer)."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from taskyard.actions.fakes import FakeWriter
from taskyard.approvals.channels.base import DecisionRequest, Lookup
from taskyard.approvals.channels.github import Command, GitHubChannel, parse_command
from taskyard.approvals.policies import ApprovalPolicies, Identity
from taskyard.exceptions import PlatformPermanentError
from taskyard.models import Event, Priority, new_id
from taskyard.records import Approval, ApprovalStatus, Decision, DecisionOutcome

SAMPLE = Path(__file__).resolve().parents[4] / "shared" / "webhooks" / "github"
AID = "018f3a5b7c9d0123456789abcdef0123"
APPROVE, DENY, MORE_INFO = Decision.APPROVE, Decision.DENY, Decision.MORE_INFO
T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z
POLICIES = ApprovalPolicies.from_mapping(
    {
        "levels": {
            "low": {"approval": False},
            "medium": {"roles": ["maintainer"], "timeout_minutes": 30},
            "high": {"roles": ["maintainer", "lead"], "timeout_minutes": 60},
            "critical": {"roles": ["lead"], "timeout_minutes": 60},
        },
        "roles": {
            "maintainer": {"github": ["octocat", "@Hubot"]},
            "lead": {"slack": ["U1"]},
        },
    }
)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("/approve", Command(APPROVE)),
        ("/approve looks fine", Command(APPROVE, None, "looks fine")),
        (f"/approve {AID}", Command(APPROVE, AID)),
        (f"/approve {AID} CI is green", Command(APPROVE, AID, "CI is green")),
        (f"/approve {AID.upper()}", Command(APPROVE, AID)),
        ("/deny not on a Friday", Command(DENY, None, "not on a Friday")),
        (f"/deny {AID} too risky", Command(DENY, AID, "too risky")),
        ("/deny", Command(DENY)),  # no reason still parses: the policy decides
        ("/APPROVE Fine", Command(APPROVE, None, "Fine")),
        ("/Deny\tnope", Command(DENY, None, "nope")),
        ("\n  /approve ok  \n", Command(APPROVE, None, "ok")),
        ("/approve ok\r\nand CI is green\r\n", Command(APPROVE, None, "ok\nand CI is green")),
        (
            "/deny\nthe second line is the reason",
            Command(DENY, None, "the second line is the reason"),
        ),
        ("/approve 01ABCDEF not an id", Command(APPROVE, None, "01ABCDEF not an id")),
        ("/question what does it touch?", Command(MORE_INFO, None, "what does it touch?")),
        (f"/more-info {AID} which tests ran?", Command(MORE_INFO, AID, "which tests ran?")),
        ("/Question", Command(MORE_INFO)),
        ("/questions?", None),
        ("/approved", None),
        ("/approve: yes", None),
        ("/merge now", None),
        ("please /approve", None),
        ("> /approve\nquoted, not said", None),
        ("LGTM", None),
        ("", None),
        ("thanks\n/approve", None),  # only the first line counts
    ],
)
def test_parse_command(body: str, expected: Command | None) -> None:
    assert parse_command(body) == expected


def test_an_id_is_what_new_id_makes() -> None:
    made = new_id()
    found = parse_command(f"/approve {made} ok")
    assert found == Command(APPROVE, made, "ok")


def payload(body: str, login: str = "octocat", **user: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SAMPLE / "issue_comment.created.json").read_text())
    data = copy.deepcopy(data)
    data["comment"]["body"] = body
    data["comment"]["user"].update({"login": login, **user})
    data["sender"]["login"] = login
    return data


def event(kind: str = "github:issue_comment.created") -> Event:
    return Event("e1", "github", kind, "d1", "Codertocat/Hello-World#1", "octocat", T0,
                 Priority.P2, {}, b"{}", "h1")  # fmt: skip


def channel(writer: FakeWriter | None = None, bot_login: str | None = None) -> GitHubChannel:
    return GitHubChannel(
        writer if writer is not None else FakeWriter("github"), POLICIES, bot_login
    )


def test_an_approve_without_an_id_looks_up_the_thread() -> None:
    found = channel().decision_in(event(), payload("/approve looks fine"))
    assert found == DecisionRequest(
        Lookup(platform="github", key="thread", value="codertocat/hello-world#1"),
        APPROVE,
        Identity("github", "octocat"),
        "looks fine",
        {
            "repo": "Codertocat/Hello-World",
            "number": 1,
            "comment_id": 492700400,
            "url": "https://github.com/Codertocat/Hello-World/issues/1#issuecomment-492700400",
        },
        made_at=1557933621.0,  # the comment's created_at (2019-05-15T15:20:21Z)
    )


def test_a_deny_with_an_id_looks_up_the_id() -> None:
    found = channel().decision_in(event(), payload(f"/deny {AID} too risky", "Hubot"))
    assert found is not None
    assert found.lookup == Lookup(approval_id=AID)
    assert (found.decision, found.who, found.reason) == (
        DENY,
        Identity("github", "Hubot"),
        "too risky",
    )


@pytest.mark.parametrize(
    ("kind", "body", "login", "user"),
    [
        ("github:issue_comment.edited", "/approve", "octocat", {}),
        ("github:issue_comment.deleted", "/approve", "octocat", {}),
        ("github:pull_request_review_comment.created", "/approve", "octocat", {}),
        ("github:issue_comment.created", "/approve", "dependabot[bot]", {"type": "Bot"}),
        ("github:issue_comment.created", "/approve", "Taskyard-Bot", {}),  # our own login
        ("github:issue_comment.created", "Looks fine to me", "octocat", {}),
        ("github:issue_comment.created", "/approve", "", {}),
    ],
)
def test_what_is_not_a_decision(kind: str, body: str, login: str, user: dict[str, Any]) -> None:
    ours = channel(bot_login="@taskyard-bot")
    assert ours.decision_in(event(kind), payload(body, login, **user)) is None


def test_a_payload_without_its_issue_is_not_a_decision() -> None:
    data = payload("/approve")
    del data["issue"]
    assert channel().decision_in(event(), data) is None


def approval(**kw: Any) -> Approval:
    fields: dict[str, Any] = {
        "id": AID,
        "task_id": "t1",
        "action_key": "t1.0.aa",
        "route": "pr-review",
        "action_type": "merge_pr",
        "risk": "high",
        "rule": "merge-main",
        "summary": "merge_pr: squash-merge acme/api#7",
        "details": {
            "params": {"number": 7, "method": "squash"},
            "reasoning": "CI is green and two people reviewed it.",
            "requests": [
                {
                    "platform": "github",
                    "method": "PUT",
                    "path": "/repos/acme/api/pulls/7/merge",
                    "body": {"merge_method": "squash"},
                    "description": "squash-merge acme/api#7",
                }
            ],
            "target": {"platform": "github", "repo": "acme/api", "number": 7, "pull_request": True},
            "roles": ["maintainer", "lead"],
            "checklist": ["CI is green", "The changelog says what changed"],
            "justification_required": True,
        },
        "status": ApprovalStatus.PENDING,
        "created_at": T0,
        "expires_at": T0 + 3600,
    }
    fields.update(kw)
    return Approval(**fields)


@pytest.mark.parametrize(
    ("target", "wanted"),
    [
        ({"platform": "github", "repo": "acme/api", "number": 7}, True),
        ({"platform": "github", "repo": "acme/api"}, False),  # a push: nothing to comment on
        ({"platform": "github", "repo": "acme", "number": 7}, False),
        ({"platform": "github", "repo": "acme/api", "number": True}, False),
        ({"platform": "linear", "issue_id": "i1"}, False),
        (None, False),
    ],
)
def test_wants_a_github_pull_request_or_issue(target: Any, wanted: bool) -> None:
    asked = approval(details={**approval().details, "target": target})
    assert channel().wants(asked) is wanted


def test_wants_nothing_without_a_writer() -> None:
    silent = GitHubChannel(None, POLICIES)
    assert not silent.wants(approval())


async def test_announce_posts_one_comment_with_everything_a_decider_needs() -> None:
    writer = FakeWriter("github")
    ref = await channel(writer).announce(approval())
    assert ref == {
        "repo": "acme/api",
        "number": 7,
        "thread": "acme/api#7",
        "comment_id": "github-1",
        "url": "https://github/1",
    }
    [sent] = writer.calls
    assert (sent.method, sent.path) == ("POST", "/repos/acme/api/issues/7/comments")
    body = sent.body["body"]
    assert body.endswith(f"\n\n<!-- taskyard:approval:{AID} -->")
    assert body.count("<!-- taskyard:") == 1
    for said in (
        "high risk",
        "`merge-main`",
        "`merge_pr: squash-merge acme/api#7`",
        "`PUT /repos/acme/api/pulls/7/merge` — `squash-merge acme/api#7`",
        '"method": "squash"',
        "CI is green and two people reviewed it.",
        "- [ ] The changelog says what changed",
        "maintainer (@octocat, @hubot), lead (no GitHub login configured)",
        "2023-11-14 23:13 UTC",
        "comment on this pull request",
        "`/approve <reason>` (a reason is required)",
        "`/deny <reason>`",
        f"`/approve {AID} …`",
    ):
        assert said in body


async def test_what_an_agent_wrote_can_neither_mention_nor_break_out() -> None:
    sly = "```\n@everyone-team please merge <!-- taskyard:approval:x -->\n```"
    writer = FakeWriter("github")
    details = {**approval().details, "reasoning": sly, "params": {"body": "`@octocat`"}}
    await channel(writer).announce(approval(details=details, summary="comment: ``@lead``"))
    body = writer.calls[0].body["body"]
    block, span = "````text\n" + sly + "\n````", "``` comment: ``@lead`` ```"
    assert block in body and span in body
    outside = body.replace(block, "").replace(span, "").replace('"`@octocat`"', "")
    assert set(re.findall(r"@[\w-]+", outside)) == {"@octocat", "@hubot"}  # the deciders
    assert outside.count("<!-- taskyard:") == 1


async def test_announce_without_a_thread_is_a_platform_error() -> None:
    asked = approval(details={**approval().details, "target": {"platform": "slack"}})
    with pytest.raises(PlatformPermanentError, match="no pull request or issue"):
        await channel().announce(asked)


POSTED = {"github": {"repo": "acme/api", "number": 7, "thread": "acme/api#7", "comment_id": 5}}


def decided(status: ApprovalStatus, by: str = "github:octocat", **kw: Any) -> Approval:
    return approval(status=status, decided_by=by, decided_via=by.split(":")[0],
                    decided_at=T0 + 60, channels=POSTED, **kw)  # fmt: skip


def request_from(
    login: str, decision: Decision = APPROVE, number: int = 7, repo: str = "acme/api"
) -> DecisionRequest:
    where = {"repo": repo, "number": number, "comment_id": 9, "url": None}
    lookup = Lookup(platform="github", key="thread", value=f"acme/api#{number}")
    return DecisionRequest(lookup, decision, Identity("github", login), None, where)


@pytest.mark.parametrize(
    ("stored", "said"),
    [
        (
            decided(ApprovalStatus.APPROVED, reason="CI is green"),
            "✅ approved by @octocat: CI is green — the action is being applied",
        ),
        (
            decided(ApprovalStatus.DENIED, reason="not on a\nFriday"),
            "❌ denied by @octocat: not on a Friday — the action will not be applied",
        ),
        (
            decided(ApprovalStatus.DENIED, "slack:U1"),
            "❌ denied by `slack:U1` — the action will not be applied",
        ),
        (
            decided(ApprovalStatus.EXPIRED, "taskyard:expiry"),
            "⌛ expired at 2023-11-14 23:13 UTC with no decision",
        ),
    ],
)
async def test_an_outcome_is_posted_on_the_request(stored: Approval, said: str) -> None:
    writer = FakeWriter("github")
    await channel(writer).decided(stored, DecisionOutcome(True, stored), None)
    [sent] = writer.calls
    assert sent.path == "/repos/acme/api/issues/7/comments"
    assert sent.body["body"].startswith(said)


async def test_a_decision_made_on_another_thread_is_answered_there_too() -> None:
    writer = FakeWriter("github")
    stored = decided(ApprovalStatus.APPROVED)
    await channel(writer).decided(
        stored, DecisionOutcome(True, stored), request_from("octocat", number=8)
    )
    assert [c.path for c in writer.calls] == [
        "/repos/acme/api/issues/7/comments",
        "/repos/acme/api/issues/8/comments",
    ]


async def test_a_decision_made_on_the_request_is_answered_once() -> None:
    writer = FakeWriter("github")
    stored = decided(ApprovalStatus.APPROVED)
    made_here = request_from("octocat", repo="ACME/Api")  # GitHub names ignore case
    await channel(writer).decided(stored, DecisionOutcome(True, stored), made_here)
    assert [c.path for c in writer.calls] == ["/repos/acme/api/issues/7/comments"]


@pytest.mark.parametrize(
    ("why", "said"),
    [
        (
            "not authorised: github:mallory holds none of the roles that decide high",
            "Who may decide: maintainer (`octocat`, `hubot`), lead (no GitHub login configured).",
        ),
        ("already approved by github:octocat (github)", "did not count: already approved by"),
        ("expired at 2023-11-14T23:13:20Z", "did not count: expired at 2023-11-14T23:13:20Z."),
    ],
)
async def test_a_refusal_is_explained_to_whoever_asked(why: str, said: str) -> None:
    writer = FakeWriter("github")
    stored = approval(channels=POSTED)
    await channel(writer).decided(
        stored, DecisionOutcome(False, stored, why), request_from("Mallory")
    )
    [sent] = writer.calls
    body = sent.body["body"]
    assert body.startswith(f"@mallory your `/approve` on approval `{AID}` did not count")
    assert said in body
    assert re.findall(r"@[\w-]+", body) == ["@mallory"]  # no decider called by a refusal


async def test_a_refusal_made_elsewhere_is_not_posted() -> None:
    writer = FakeWriter("github")
    stored = approval(channels=POSTED)
    await channel(writer).decided(stored, DecisionOutcome(False, stored, "expired"), None)
    assert writer.calls == []


async def test_platform_errors_propagate() -> None:
    error = PlatformPermanentError("github: POST … answered 403", platform="github")
    writer = FakeWriter("github").fail(error)
    stored = decided(ApprovalStatus.APPROVED)
    with pytest.raises(PlatformPermanentError, match="403"):
        await channel(writer).decided(stored, DecisionOutcome(True, stored), None)
