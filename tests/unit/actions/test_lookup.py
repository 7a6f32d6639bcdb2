"""PlatformLookup: what an in-doubt action already created, found by its hidden marker
(GitHub) or by the id taskyard gave it (Linear); everything else cannot be looked for."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from taskyard.actions.apply import apply_actions
from taskyard.actions.fakes import FakeWriter
from taskyard.actions.keys import marker
from taskyard.actions.lookup import PlatformLookup
from taskyard.actions.models import ParsedAction, Target, parse_action, parse_actions
from taskyard.actions.planner import PlatformPlanner
from taskyard.actions.policy import AllowListPolicy
from taskyard.exceptions import ActionError, PlatformTransientError
from taskyard.platforms.base import JSONObject
from taskyard.platforms.fakes import FakeGitHub, FakeLinear
from taskyard.platforms.linear_write import linear_uuid
from taskyard.platforms.writes import PlannedRequest, WriteResult
from taskyard.records import ActionRecord, ActionStatus
from taskyard.store import MemoryStore

ISSUE = Target("github", repo="acme/api", number=7, pull_request=False)
PULL = Target("github", repo="acme/api", number=9, pull_request=True, head_sha="abc")
LINEAR = Target("linear", issue_id="iss-1", team_id="team-1")
SLACK = Target("slack", channel="C1", thread_ts="1.1", message_ts="1.1", team_id="team-1")
Key = tuple[str, int]


@dataclass
class PostedGitHub(FakeGitHub):
    """FakeGitHub with what was posted: comments and reviews per thread, newest issues and
    pull requests per repository."""

    posted: dict[Key, list[JSONObject]] = field(default_factory=dict)
    reviews: dict[Key, list[JSONObject]] = field(default_factory=dict)
    recent: dict[str, list[JSONObject]] = field(default_factory=dict)
    recent_pulls: dict[str, list[JSONObject]] = field(default_factory=dict)

    async def all_issue_comments(
        self, repo: str, number: int, *, installation_id: int | None = None
    ) -> list[JSONObject]:
        await self._enter("all_issue_comments", repo, number)
        return self.posted.get((repo, number), [])

    async def pull_request_reviews(
        self, repo: str, number: int, *, installation_id: int | None = None
    ) -> list[JSONObject]:
        await self._enter("pull_request_reviews", repo, number)
        return self.reviews.get((repo, number), [])

    async def recent_issues(
        self, repo: str, *, pages: int = 3, installation_id: int | None = None
    ) -> list[JSONObject]:
        await self._enter("recent_issues", repo, pages)
        return self.recent.get(repo, [])

    async def recent_pull_requests(
        self, repo: str, *, pages: int = 3, installation_id: int | None = None
    ) -> list[JSONObject]:
        await self._enter("recent_pull_requests", repo, pages)
        return self.recent_pulls.get(repo, [])


@dataclass
class IdLinear(FakeLinear):
    """FakeLinear that knows objects by id."""

    by_id: dict[str, JSONObject] = field(default_factory=dict)
    comments_by_id: dict[str, JSONObject] = field(default_factory=dict)

    async def find_issue(self, issue_id: str) -> JSONObject | None:
        await self._enter("find_issue", issue_id)
        return self.by_id.get(issue_id)

    async def find_comment(self, comment_id: str) -> JSONObject | None:
        await self._enter("find_comment", comment_id)
        return self.comments_by_id.get(comment_id)


def act(kind: str, **params: Any) -> ParsedAction:
    parsed = parse_action("t1", 0, {"type": kind, "params": params})
    assert isinstance(parsed, ParsedAction), parsed
    return parsed


def planned(action: ParsedAction, target: Target) -> PlannedRequest:
    [request] = PlatformPlanner().plan(action.for_sending(target), target)
    return request


def item(item_id: int, body: str, number: int | None = None) -> JSONObject:
    return {"id": item_id, "number": number, "body": body, "html_url": f"https://gh/{item_id}"}


async def find(lookup: PlatformLookup, action: ParsedAction, target: Target) -> WriteResult | None:
    return await lookup.find(action, target, planned(action, target))


# --- GitHub -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "action",
    [act("comment", body="Looks wrong."), act("mention_users", users=["ann"], message="look")],
    ids=["comment", "mention_users"],
)
async def test_a_github_comment_is_found_by_its_marker(action: ParsedAction) -> None:
    other = act("comment", body="Something else.")
    github = PostedGitHub(
        posted={
            ("acme/api", 7): [
                item(1, "a person's comment"),
                item(2, f"earlier\n\n{marker(other.key)}"),
                item(3, f"ours\n\n{marker(action.key)}"),
            ]
        }
    )
    found = await find(PlatformLookup(github, None), action, ISSUE)
    assert found is not None
    assert (found.external_id, found.url) == ("3", "https://gh/3")
    assert github.calls == [("all_issue_comments", ("acme/api", 7))]


async def test_a_github_comment_not_there_is_none() -> None:
    github = PostedGitHub(posted={("acme/api", 7): [item(1, "no marker here")]})
    assert await find(PlatformLookup(github, None), act("comment", body="x"), ISSUE) is None


async def test_a_review_is_found_among_the_pull_requests_reviews() -> None:
    action = act("review", summary="Two problems.", verdict="request_changes")
    github = PostedGitHub(reviews={("acme/api", 9): [item(80, f"Two\n\n{marker(action.key)}")]})
    found = await find(PlatformLookup(github, None), action, PULL)
    assert found is not None and found.external_id == "80"


async def test_a_created_issue_is_found_by_its_number_in_the_newest_ones() -> None:
    action = act("create_issue", title="Flaky test", body="1 in 10")
    github = PostedGitHub(
        recent={"acme/api": [item(501, f"1 in 10\n\n{marker(action.key)}", number=42)]}
    )
    found = await find(PlatformLookup(github, None, pages=5), action, ISSUE)
    assert found is not None and (found.external_id, found.url) == ("42", "https://gh/501")
    assert github.calls == [("recent_issues", ("acme/api", 5))]


async def test_a_created_pull_request_is_found_by_its_number() -> None:
    action = act("create_pr", title="Fix", head="fix/x", base="main", body="Fixes #7")
    github = PostedGitHub(
        recent_pulls={"acme/api": [item(9001, f"Fixes #7\n\n{marker(action.key)}", number=12)]}
    )
    found = await find(PlatformLookup(github, None), action, ISSUE)
    assert found is not None and found.external_id == "12"
    assert github.calls == [("recent_pull_requests", ("acme/api", 3))]


async def test_a_request_without_the_marker_cannot_be_looked_for() -> None:
    action = act("comment", body="x")
    unmarked = PlatformPlanner().plan(action, ISSUE)[0]  # planned without `for_sending`
    with pytest.raises(ActionError, match="the request's body carries no marker"):
        await PlatformLookup(PostedGitHub(), None).find(action, ISSUE, unmarked)


async def test_a_request_that_does_not_create_what_the_action_makes_is_refused() -> None:
    action = act("comment", body="x")
    odd = PlannedRequest("github", "POST", "/repos/acme/api/issues/7/labels", {"body": "x"})
    with pytest.raises(ActionError, match="does not create comments"):
        await PlatformLookup(PostedGitHub(), None).find(action, ISSUE, odd)


async def test_without_github_credentials_it_cannot_look() -> None:
    with pytest.raises(ActionError, match="cannot look on github for comment: no GitHub"):
        await find(PlatformLookup(None, IdLinear()), act("comment", body="x"), ISSUE)


async def test_a_platform_failure_propagates() -> None:
    error = PlatformTransientError("github: timed out", platform="github")
    github = PostedGitHub(errors={"all_issue_comments": error})
    with pytest.raises(PlatformTransientError):
        await find(PlatformLookup(github, None), act("comment", body="x"), ISSUE)


# --- Linear -------------------------------------------------------------------------------


async def test_a_linear_issue_is_found_by_the_id_taskyard_gave_it() -> None:
    action = act("create_issue", title="Crash")
    chosen = linear_uuid(action.key)
    linear = IdLinear(by_id={chosen: {"id": chosen, "identifier": "ENG-7", "url": "https://l/7"}})
    found = await find(PlatformLookup(None, linear), action, LINEAR)
    assert found is not None and (found.external_id, found.url) == ("ENG-7", "https://l/7")
    assert linear.calls == [("find_issue", (chosen,))]


@pytest.mark.parametrize(
    "action",
    [act("comment", body="Triaged."), act("mention_users", users=["ann"], message="look")],
    ids=["comment", "mention_users"],
)
async def test_a_linear_comment_is_found_by_its_id(action: ParsedAction) -> None:
    chosen = linear_uuid(action.key)
    linear = IdLinear(comments_by_id={chosen: {"id": chosen, "url": "https://l/c"}})
    found = await find(PlatformLookup(None, linear), action, LINEAR)
    assert found is not None and (found.external_id, found.url) == (chosen, "https://l/c")


async def test_a_linear_object_that_is_not_there_is_none() -> None:
    linear = IdLinear()
    assert await find(PlatformLookup(None, linear), act("comment", body="x"), LINEAR) is None
    assert await find(PlatformLookup(None, linear), act("create_issue", title="t"), SLACK) is None


async def test_a_linear_create_without_an_id_cannot_be_looked_for() -> None:
    action = act("comment", body="x")
    request = planned(action, LINEAR)
    variables = {"input": {"issueId": "iss-1", "body": "x"}}
    bare = PlannedRequest("linear", "POST", "graphql", {**request.body, "variables": variables})
    with pytest.raises(ActionError, match="not a comment_create with an id taskyard chose"):
        await PlatformLookup(None, IdLinear()).find(action, LINEAR, bare)


async def test_without_a_linear_key_it_cannot_look() -> None:
    with pytest.raises(ActionError, match="cannot look on linear for comment: no Linear"):
        await find(PlatformLookup(PostedGitHub(), None), act("comment", body="x"), LINEAR)


# --- nowhere to look ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "target", "platform"),
    [
        (act("comment", body="x"), SLACK, "slack"),
        (act("post_channel", text="x"), SLACK, "slack"),
        (act("set_check", name="n", conclusion="success", title="t"), PULL, "github"),
        (act("merge_pr"), PULL, "github"),
    ],
    ids=["slack-comment", "post_channel", "set_check", "merge_pr"],
)
async def test_what_cannot_be_looked_for_says_so(
    action: ParsedAction, target: Target, platform: str
) -> None:
    lookup = PlatformLookup(PostedGitHub(), IdLinear())
    with pytest.raises(ActionError, match=f"cannot look on {platform} for {action.type}"):
        await find(lookup, action, target)


# --- with the apply step ------------------------------------------------------------------


class Applying:
    """The apply step with the real planner and lookup, a fake writer and GitHub."""

    def __init__(self) -> None:
        self.store, self.writer, self.github = MemoryStore(), FakeWriter("github"), PostedGitHub()

    async def apply(self) -> ActionRecord:
        [record] = await apply_actions(
            "t1",
            "pr-review",
            parse_actions("t1", [{"type": "comment", "params": {"body": "Looks wrong."}}]),
            ISSUE,
            planner=PlatformPlanner(),
            writers={"github": self.writer},
            policy=AllowListPolicy({"pr-review": ["comment"]}),
            store=self.store,
            dry_run=False,
            lookup=PlatformLookup(self.github, None),
        )
        return record


TIMEOUT = PlatformTransientError("github: timed out", platform="github")


async def test_an_in_doubt_github_comment_that_went_through_is_not_posted_again() -> None:
    a = Applying()
    a.writer.fail(TIMEOUT, took_effect=True)
    first = await a.apply()
    assert (first.status, first.in_doubt) == (ActionStatus.FAILED, True)
    [sent] = a.writer.applied
    a.github.posted[("acme/api", 7)] = [item(77, str(sent.body["body"]))]  # GitHub has it
    second = await a.apply()
    assert (second.status, second.external_id) == (ActionStatus.APPLIED, "77")
    assert len(a.writer.calls) == 1


async def test_an_in_doubt_github_comment_that_never_arrived_is_posted_once() -> None:
    a = Applying()
    a.writer.fail(TIMEOUT)
    assert (await a.apply()).in_doubt
    second = await a.apply()
    assert second.status is ActionStatus.APPLIED
    assert len(a.writer.calls) == 2 and len(a.writer.applied) == 1
