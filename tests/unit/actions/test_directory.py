"""LinearDirectory / TeamDirectory: Linear names resolved to ids for the planner, from one
request per team, kept for the TTL."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from taskyard.actions.directory import LinearDirectory, TeamDirectory, planner_for
from taskyard.actions.models import ParsedAction, Target, parse_action
from taskyard.exceptions import ActionError, PlatformPermanentError
from taskyard.platforms.base import JSONObject
from taskyard.platforms.fakes import FakeLinear

TEAM = "team-1"
LINEAR = Target("linear", issue_id="iss-1", team_id=TEAM)


def member(user_id: str, name: str, display: str, email: str, **extra: Any) -> JSONObject:
    return {"id": user_id, "name": name, "displayName": display, "email": email, **extra}


RAW: JSONObject = {
    "id": TEAM,
    "key": "ENG",
    "labels": [
        {"id": "l-bug", "name": "Bug", "isGroup": False},
        {"id": "l-type", "name": "Type", "isGroup": True},
        {"id": "l-ws-bug", "name": "bug", "isGroup": False},  # a workspace label, listed after
        {"id": "l-sec", "name": "Security", "isGroup": False},
    ],
    "states": [{"id": "s-todo", "name": "Todo"}, {"id": "s-done", "name": "Done"}],
    "members": [
        member("u-ann", "Ann Lee", "ann", "ann@example.com", active=True),
        member("u-bob", "Bob Stone", "bob", "bob@example.com", active=True),
        member("u-bob2", "Bob Stone", "bstone", "b.stone@example.com", active=True),
        member("u-gone", "Carl Old", "carl", "carl@example.com", active=False),
    ],
}


@dataclass
class DirectoryLinear(FakeLinear):
    """FakeLinear with team directories."""

    directories: dict[str, JSONObject] = field(default_factory=dict)

    async def team_directory(self, team_id: str) -> JSONObject:
        await self._enter("team_directory", team_id)
        if team_id not in self.directories:
            raise self._missing(f"team {team_id} directory")
        return self.directories[team_id]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def team() -> TeamDirectory:
    return TeamDirectory.from_json(TEAM, RAW)


def test_labels_match_case_insensitively_team_labels_first(team: TeamDirectory) -> None:
    assert team.labels(TEAM, ["BUG", " security ", "nope"]) == {
        "BUG": "l-bug",
        " security ": "l-sec",
    }


def test_group_labels_are_not_labels_to_put_on_an_issue(team: TeamDirectory) -> None:
    assert team.labels(TEAM, ["Type"]) == {}


def test_states_by_name(team: TeamDirectory) -> None:
    assert team.states(TEAM, ["done", "In Review"]) == {"done": "s-done"}


@pytest.mark.parametrize(
    ("name", "user"),
    [
        ("ann", "u-ann"),
        ("@Ann", "u-ann"),
        ("Ann Lee", "u-ann"),
        ("ANN@example.com", "u-ann"),
        ("bob", "u-bob"),  # a display name is one member's, though two share "Bob Stone"
        ("b.stone@example.com", "u-bob2"),
    ],
)
def test_users_by_email_display_name_or_name(team: TeamDirectory, name: str, user: str) -> None:
    assert team.users(TEAM, [name]) == {name: user}


def test_a_name_two_members_share_is_refused(team: TeamDirectory) -> None:
    with pytest.raises(ActionError, match="has 2 members called 'Bob Stone'; name one by email"):
        team.users(TEAM, ["Bob Stone"])


def test_inactive_members_are_not_found(team: TeamDirectory) -> None:
    assert team.users(TEAM, ["carl"]) == {}


def test_another_teams_names_are_not_answered(team: TeamDirectory) -> None:
    with pytest.raises(ActionError, match="loaded is team team-1's, not team team-2's"):
        team.labels("team-2", ["Bug"])


def act(kind: str, **params: Any) -> ParsedAction:
    parsed = parse_action("t1", 0, {"type": kind, "params": params})
    assert isinstance(parsed, ParsedAction)
    return parsed


def test_planner_for_a_directory_resolves_names(team: TeamDirectory) -> None:
    planner = planner_for(team)
    [labels] = planner.plan(act("add_labels", labels=["bug", "Security"]), LINEAR)
    assert labels.body["variables"]["input"] == {"addedLabelIds": ["l-bug", "l-sec"]}
    [state] = planner.plan(act("set_state", state="Done"), LINEAR)
    assert state.body["variables"]["input"] == {"stateId": "s-done"}
    [assign] = planner.plan(act("assign", assignee="ann@example.com"), LINEAR)
    assert assign.body["variables"]["input"] == {"assigneeId": "u-ann"}
    with pytest.raises(ActionError, match="Linear team team-1 has no label 'wontfix'"):
        planner.plan(act("add_labels", labels=["wontfix"]), LINEAR)


def test_planner_without_a_directory_says_what_is_missing() -> None:
    with pytest.raises(ActionError, match="need TASKYARD_LINEAR_API_KEY to be resolved to ids"):
        planner_for(None).plan(act("add_labels", labels=["bug"]), LINEAR)


async def test_one_request_per_team_until_the_ttl() -> None:
    linear = DirectoryLinear(directories={TEAM: RAW, "team-2": {**RAW, "id": "team-2"}})
    clock = Clock()
    directory = LinearDirectory(linear, 60.0, clock=clock)
    first = await directory.load(TEAM)
    assert first.labels(TEAM, ["bug"]) == {"bug": "l-bug"}
    clock.now += 59
    assert await directory.load(TEAM) is first
    await directory.load("team-2")
    clock.now += 1
    await directory.load(TEAM)
    assert linear.calls == [
        ("team_directory", (TEAM,)),
        ("team_directory", ("team-2",)),
        ("team_directory", (TEAM,)),
    ]


async def test_a_failed_load_is_raised_and_not_kept() -> None:
    linear = DirectoryLinear()
    directory = LinearDirectory(linear, 60.0, clock=Clock())
    with pytest.raises(PlatformPermanentError):
        await directory.load(TEAM)
    linear.directories[TEAM] = RAW
    assert (await directory.load(TEAM)).states(TEAM, ["Todo"]) == {"Todo": "s-todo"}
