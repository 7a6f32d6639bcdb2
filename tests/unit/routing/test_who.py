"""may_trigger: bots, allowlists and GitHub permissions, with a fake permission lookup."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from taskyard.routing import RouteMatch, RoutingSettings, default_routes, select_routes
from taskyard.routing.who import may_trigger, parse_permission
from tests.unit.routing.events import event_for, load, route, slack_message

SETTINGS = RoutingSettings(slack_bugs_channel="C0BUGS", bot_user="taskyard-bot")
REPO = "Codertocat/Hello-World"


class FakeLookup:
    """Answers from tables, and counts the questions (API calls) it was asked."""

    def __init__(
        self, permissions: dict[str, str] | None = None, teams: dict[str, set[str]] | None = None
    ) -> None:
        self.permissions = permissions or {}
        self.teams = teams or {}
        self.calls: list[tuple[str, ...]] = []

    async def permission(self, repo_full_name: str, login: str) -> str | None:
        self.calls.append(("permission", repo_full_name, login))
        return self.permissions.get(login)

    async def in_team(self, org: str, team_slug: str, login: str) -> bool:
        self.calls.append(("in_team", org, team_slug, login))
        return login in self.teams.get(f"{org}/{team_slug}", set())


@pytest.fixture(scope="module")
def webhooks(shared_dir: Path) -> Path:
    return shared_dir / "webhooks"


def pr_opened(webhooks: Path, association: str = "OWNER", **who: Any) -> RouteMatch:
    payload = load(webhooks, "github/pull_request.opened.json")
    payload["pull_request"]["author_association"] = association
    review = route(name="pr-review", on="github:pull_request.opened", who=who)
    [match] = select_routes(
        event_for("github", payload, "pull_request"), payload, [review], SETTINGS
    ).matched
    return match


async def test_owner_may_trigger_without_any_lookup(webhooks: Path) -> None:
    verdict = await may_trigger(pr_opened(webhooks), None)
    assert verdict.allowed and verdict.reason == f"Codertocat is OWNER of {REPO}"


async def test_contributor_is_forbidden_without_a_lookup(webhooks: Path) -> None:
    verdict = await may_trigger(pr_opened(webhooks, "CONTRIBUTOR"), None)
    assert not verdict.allowed
    assert verdict.reason == f"Codertocat (CONTRIBUTOR) lacks write permission on {REPO}"


async def test_contributor_with_write_permission_per_lookup_is_allowed(webhooks: Path) -> None:
    lookup = FakeLookup({"Codertocat": "write"})
    verdict = await may_trigger(pr_opened(webhooks, "CONTRIBUTOR"), lookup)
    assert verdict.allowed and verdict.reason == f"Codertocat has write permission on {REPO}"
    assert lookup.calls == [("permission", REPO, "Codertocat")]


async def test_read_permission_is_not_enough(webhooks: Path) -> None:
    verdict = await may_trigger(pr_opened(webhooks, "NONE"), FakeLookup({"Codertocat": "read"}))
    assert not verdict.allowed
    assert (
        verdict.reason == f"Codertocat has read permission on {REPO}; route pr-review needs write"
    )


async def test_lookup_is_not_asked_when_the_association_suffices(webhooks: Path) -> None:
    lookup = FakeLookup()
    assert (await may_trigger(pr_opened(webhooks, "COLLABORATOR"), lookup)).allowed
    assert lookup.calls == []


async def test_admin_route_asks_the_lookup_for_a_member(webhooks: Path) -> None:
    lookup = FakeLookup({"Codertocat": "maintain"})
    match = pr_opened(webhooks, "MEMBER", min_permission="admin")
    verdict = await may_trigger(match, lookup)
    assert not verdict.allowed
    assert verdict.reason.endswith("route pr-review needs admin")
    owner = await may_trigger(pr_opened(webhooks, "OWNER", min_permission="admin"), lookup)
    assert owner.allowed and lookup.calls == [("permission", REPO, "Codertocat")]


async def test_another_authors_association_does_not_count_for_the_pusher(webhooks: Path) -> None:
    payload = load(webhooks, "github/pull_request.synchronize.json")
    payload["sender"] = {"login": "mallory", "id": 7, "type": "User"}
    review = route(name="pr-review", on="github:pull_request.synchronize")
    [match] = select_routes(
        event_for("github", payload, "pull_request"), payload, [review], SETTINGS
    ).matched
    assert match.author_association is None  # the OWNER association is the PR author's
    refused = await may_trigger(match, None)
    assert refused.reason == f"mallory (association unknown) lacks write permission on {REPO}"
    assert (await may_trigger(match, FakeLookup({"mallory": "admin"}))).allowed


def bot_pr(webhooks: Path, **who: Any) -> RouteMatch:
    payload = load(webhooks, "github/pull_request.opened.json")
    bot = {"login": "dependabot[bot]", "id": 49699333, "type": "Bot"}
    payload["sender"] = bot
    payload["pull_request"]["user"] = bot
    payload["pull_request"]["author_association"] = "CONTRIBUTOR"
    review = route(name="pr-review", on="github:pull_request.opened", who=who)
    [match] = select_routes(
        event_for("github", payload, "pull_request"), payload, [review], SETTINGS
    ).matched
    return match


async def test_bots_are_ignored_unless_allowed_or_listed(webhooks: Path) -> None:
    refused = await may_trigger(bot_pr(webhooks), FakeLookup({"dependabot[bot]": "write"}))
    assert not refused.allowed
    assert refused.reason == "dependabot[bot] is a bot; route pr-review does not allow bots"
    assert (await may_trigger(bot_pr(webhooks, allow_bots=True), None)).allowed
    listed = await may_trigger(bot_pr(webhooks, users=["dependabot[bot]"]), None)
    assert listed.allowed and "listed" in listed.reason


async def test_taskyard_own_bot_user_is_a_bot(webhooks: Path) -> None:
    payload = load(webhooks, "github/issue_comment.created.json")
    payload["sender"]["login"] = "taskyard-bot"
    payload["comment"]["user"]["login"] = "taskyard-bot"
    payload["comment"]["body"] = "/review"
    cmd = route(name="cmd", on="github:issue_comment.created", command="/review")
    [match] = select_routes(
        event_for("github", payload, "issue_comment"), payload, [cmd], SETTINGS
    ).matched
    verdict = await may_trigger(match, None)
    assert not verdict.allowed and "is a bot" in verdict.reason


async def test_users_allowlist_decides_alone_unless_a_permission_is_set(webhooks: Path) -> None:
    outsider = await may_trigger(pr_opened(webhooks, users=["alice"]), None)
    assert not outsider.allowed
    assert outsider.reason == "Codertocat is not in the allowlist of route pr-review"
    listed = await may_trigger(pr_opened(webhooks, "CONTRIBUTOR", users=["codertocat"]), None)
    assert listed.allowed
    assert listed.reason == "Codertocat is listed in the users of route pr-review"
    both = pr_opened(webhooks, "CONTRIBUTOR", users=["Codertocat"], min_permission="write")
    assert not (await may_trigger(both, None)).allowed


async def test_team_allowlist_asks_the_lookup(webhooks: Path) -> None:
    match = pr_opened(webhooks, "CONTRIBUTOR", teams=["acme/platform", "acme/infra"])
    member = FakeLookup(teams={"acme/infra": {"Codertocat"}})
    verdict = await may_trigger(match, member)
    assert verdict.allowed and verdict.reason == "Codertocat is in team acme/infra"
    assert [c[0] for c in member.calls] == ["in_team", "in_team"]
    stranger = await may_trigger(match, FakeLookup())
    assert stranger.reason == (
        "Codertocat is in none of the teams of route pr-review (acme/platform, acme/infra)"
    )
    blind = await may_trigger(match, None)
    assert not blind.allowed and "without a GitHub lookup" in blind.reason


async def test_slack_human_allowed_bot_refused_and_users_by_id() -> None:
    routes = default_routes()
    human = slack_message()
    [match] = select_routes(event_for("slack", human), human, routes, SETTINGS).matched
    verdict = await may_trigger(match, None)
    assert verdict.allowed and verdict.reason == "slack events need no repository permission"

    bot = slack_message(subtype="bot_message", bot_id="B123", username="deploy-bot")
    del bot["event"]["user"]
    [bot_match] = select_routes(event_for("slack", bot), bot, routes, SETTINGS).matched
    refused = await may_trigger(bot_match, None)
    assert (
        refused.reason == "an unknown actor is a bot; route slack-bug-analysis does not allow bots"
    )

    only = route(name="only-bob", on="slack:message.*", who={"users": ["U0BOB"]})
    [listed] = select_routes(event_for("slack", human), human, [only], SETTINGS).matched
    assert not (await may_trigger(listed, None)).allowed
    human["event"]["user"] = "U0BOB"
    [bob] = select_routes(event_for("slack", human), human, [only], SETTINGS).matched
    assert (await may_trigger(bob, None)).allowed


async def test_linear_integration_actor_is_a_bot(shared_dir: Path) -> None:
    payload = load(shared_dir / "webhooks", "linear/issue.update.state_change.json")
    payload["actor"] = {"id": "int-1", "service": "github", "type": "integration"}
    [match] = select_routes(
        event_for("linear", payload), payload, default_routes(), SETTINGS
    ).matched
    assert not (await may_trigger(match, None)).allowed
    payload["actor"] = {"id": "u-1", "name": "Ada", "email": "ada@example.com", "type": "user"}
    [human] = select_routes(
        event_for("linear", payload), payload, default_routes(), SETTINGS
    ).matched
    assert (await may_trigger(human, None)).allowed


async def test_sentry_itself_is_no_bot(shared_dir: Path) -> None:
    payload = load(shared_dir / "webhooks", "sentry/docs.issue.created.json")
    [match] = select_routes(
        event_for("sentry", payload, "issue"), payload, default_routes(), SETTINGS
    ).matched
    assert (await may_trigger(match, None)).allowed


@pytest.mark.parametrize(
    ("answer", "expected"),
    [("admin", "admin"), ("push", "write"), ("READ", "read"), (None, "none"), ("owner?", "none")],
)
def test_lookup_answers_are_read_leniently(answer: str | None, expected: str) -> None:
    assert parse_permission(answer).label == expected


async def test_taskyard_own_linear_user_is_a_bot(shared_dir: Path) -> None:
    payload = load(shared_dir / "webhooks", "linear/issue.update.state_change.json")
    payload["actor"] = {"id": "u-9", "name": "Taskyard", "email": "bot@acme.dev", "type": "user"}
    mine = RoutingSettings(linear_bot_user="BOT@acme.dev")
    [match] = select_routes(event_for("linear", payload), payload, default_routes(), mine).matched
    verdict = await may_trigger(match, None)
    assert verdict.reason == "Taskyard is a bot; route linear-triage does not allow bots"
