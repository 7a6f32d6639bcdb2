"""A small Linear for tests: `LinearWorkspace` holds teams (labels, workflow states,
members), workspace labels, issues, comments and reactions, and answers GraphQL documents
EXECUTED against Linear's published schema (shared/platforms/linear-schema.graphql) with
graphql-core, one resolver per top-level field (`root()`):

| field | answer |
|---|---|
| `issue(id)` | the issue, by id or identifier (relations: state, team, labels, comments…) |
| `comment(id)` | the comment |
| `team(id)` | the team, by id or key, with its labels, states and members |
| `searchIssues(term, first, teamId)` | issues sharing words with `term`, most shared first |
| `issueLabels(first, filter)` | every label, or the workspace's (`team: {null: true}`) |
| `issuePriorityValues` | Linear's five priorities |
| `issueUpdate(id, input)` | the issue changed (labels, added/removed labels, priority, …) |
| `issueCreate(input)` | a new issue, with the id given (a UUID) or a new one, under `parentId` |
| `commentCreate(input)` | a new comment on the issue |
| `reactionCreate(input)` | a new reaction on the issue or comment |

What Linear refuses is refused the same way, as a `LinearRefusal` (a GraphQL error with
`extensions.code` INVALID_INPUT and Linear's `userPresentableMessage`): an unknown id
("Entity not found: Issue" / "Could not find referenced Issue."), an id already taken, a
comment without a body. `add_delivered_issue(payload)` seeds the workspace from a real
`Issue` webhook so that reads agree with the delivery. `sample_root()` is the answer without
a workspace: every mutation succeeds with a sample object (ENG-123), every read finds nothing.

`graphql_problems(body)` is the contract check: the document parses and validates against
the schema, has one operation, and its variables coerce to their declared types.
`tests/platform_servers.py` serves all this over HTTP (`linear_server`)."""

from __future__ import annotations

import itertools
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from graphql import GraphQLError, GraphQLSchema, build_schema, parse, validate
from graphql.execution.values import get_variable_values
from graphql.language import DocumentNode, OperationDefinitionNode

LINEAR_SCHEMA = (
    Path(__file__).resolve().parents[2] / "shared" / "platforms" / "linear-schema.graphql"
)


# --- the schema --------------------------------------------------------------------------


@cache
def linear_schema() -> GraphQLSchema:
    if not LINEAR_SCHEMA.is_file():
        raise FileNotFoundError(f"Linear's schema is not at {LINEAR_SCHEMA}")
    return build_schema(LINEAR_SCHEMA.read_text(encoding="utf-8"))


def parse_request(body: Any) -> tuple[DocumentNode | None, list[str]]:
    """The parsed document of a GraphQL request body, or why there is none."""
    if not isinstance(body, Mapping) or not isinstance(body.get("query"), str):
        return None, ["the body is not a GraphQL request ({query, variables})"]
    try:
        document = parse(body["query"])
    except GraphQLError as exc:
        return None, [f"syntax: {exc.message}"]
    errors = [e.message for e in validate(linear_schema(), document)]
    return (None, errors) if errors else (document, [])


def graphql_problems(body: Any) -> list[str]:
    """What Linear's schema says is wrong with a GraphQL request body (empty: nothing): the
    document does not parse or validate, it has not exactly one operation, or its variables
    do not coerce to their declared types."""
    document, problems = parse_request(body)
    if document is None:
        return problems
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if len(operations) != 1:
        return [f"{len(operations)} operations in one document"]
    variables = body.get("variables") or {}
    if not isinstance(variables, Mapping):
        return ["variables must be an object"]
    schema, defined = linear_schema(), operations[0].variable_definitions or ()
    coerced = get_variable_values(schema, defined, dict(variables))
    return [e.message for e in coerced] if isinstance(coerced, list) else []


def operation_name(body: Any) -> str:
    """The name of a GraphQL request's operation (for messages), else its first characters."""
    query = str(body.get("query", "")) if isinstance(body, Mapping) else ""
    found = re.search(r"\b(query|mutation)\s+(\w+)", query)
    return found.group(2) if found else query[:60]


# --- the workspace -----------------------------------------------------------------------


class LinearRefusal(Exception):
    """What Linear answers when it refuses a request: a GraphQL error with Linear's
    `extensions` (code, userPresentableMessage). Not a problem: a real answer."""

    def __init__(self, message: str, shown: str, code: str = "INVALID_INPUT") -> None:
        super().__init__(message)
        self.extensions = {"type": "invalid input", "code": code, "userPresentableMessage": shown}


def _not_found(kind: str) -> LinearRefusal:
    return LinearRefusal(f"Entity not found: {kind}", f"Could not find referenced {kind}.")


def stable_id(*parts: str) -> str:
    """A UUID made from `parts`: the same parts give the same id, so tests can name ids."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "linear:" + "/".join(parts)))


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:60] or "issue"


WORKFLOW = (
    ("Backlog", "backlog"),
    ("Todo", "unstarted"),
    ("In Progress", "started"),
    ("Done", "completed"),
    ("Canceled", "canceled"),
)
PRIORITIES = ((0, "No priority"), (1, "Urgent"), (2, "High"), (3, "Medium"), (4, "Low"))


def _connection(items: Sequence[dict[str, Any]], first: int | None = None) -> dict[str, Any]:
    """A Linear connection (nodes, edges, pageInfo) of `items`, the first `first`."""
    shown = list(items)[: first if first is not None else None]
    return {
        "nodes": shown,
        "edges": [{"node": n, "cursor": str(n.get("id", i))} for i, n in enumerate(shown)],
        "pageInfo": {
            "hasNextPage": len(shown) < len(items),
            "hasPreviousPage": False,
            "startCursor": None,
            "endCursor": None,
        },
    }


@dataclass
class LinearWorkspace:
    """A small Linear workspace (see the module docstring). Every team has every user as a
    member; an issue's identifier is `{team key}-{number}`; its url
    `https://linear.app/{url_key}/issue/{identifier}/{slug}`. Stored objects are plain dicts
    named as Linear's fields, references by id (`teamId`, `stateId`, `labelIds`, …)."""

    url_key: str = "acme"
    teams: dict[str, dict[str, Any]] = field(default_factory=dict)
    labels: dict[str, dict[str, Any]] = field(default_factory=dict)
    states: dict[str, dict[str, Any]] = field(default_factory=dict)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    issues: dict[str, dict[str, Any]] = field(default_factory=dict)
    comments: dict[str, dict[str, Any]] = field(default_factory=dict)
    reactions: dict[str, dict[str, Any]] = field(default_factory=dict)
    _sync: Iterator[int] = field(default_factory=lambda: itertools.count(1000))
    _lock: threading.RLock = field(default_factory=threading.RLock)

    # --- seeding ---

    def add_team(
        self, team_id: str, key: str, name: str, workflow: Iterable[tuple[str, str]] = WORKFLOW
    ) -> str:
        self.teams[team_id] = {"id": team_id, "key": key, "name": name}
        for name_, kind in workflow:
            self.add_state(team_id, name_, kind)
        return team_id

    def add_state(self, team_id: str, name: str, kind: str, state_id: str | None = None) -> str:
        """A workflow state; an existing state of that name in the team is replaced (so a
        delivered state's id wins over the default one)."""
        position = float(sum(s["teamId"] == team_id for s in self.states.values()))
        for old in [s for s in self.states.values() if s["teamId"] == team_id]:
            if old["name"] == name:
                position = self.states.pop(old["id"])["position"]
        state_id = state_id or stable_id(team_id, "state", name)
        self.states[state_id] = {
            "id": state_id,
            "name": name,
            "type": kind,
            "position": position,
            "color": "#bec2c8",
            "teamId": team_id,
        }
        return state_id

    def add_label(
        self,
        name: str,
        team_id: str | None = None,
        *,
        parent: str | None = None,
        group: bool = False,
        label_id: str | None = None,
    ) -> str:
        """A label of `team_id`, or of the workspace (no team); `parent` is a group's id."""
        label_id = label_id or stable_id(team_id or "workspace", "label", name)
        self.labels[label_id] = {
            "id": label_id,
            "name": name,
            "color": "#5e6ad2",
            "description": None,
            "isGroup": group,
            "parentId": parent,
            "teamId": team_id,
        }
        return label_id

    def add_user(self, user_id: str, name: str, email: str | None = None) -> str:
        self.users[user_id] = {
            "id": user_id,
            "name": name,
            "displayName": name.split("@")[0].split()[0].lower(),
            "email": email or (name if "@" in name else f"{_slug(name)}@example.com"),
            "active": True,
        }
        return user_id

    def add_issue(
        self,
        team_id: str,
        title: str,
        *,
        issue_id: str | None = None,
        number: int | None = None,
        description: str | None = None,
        priority: int = 0,
        state_id: str | None = None,
        label_ids: Sequence[str] = (),
        creator_id: str | None = None,
        url: str | None = None,
        parent_id: str | None = None,
    ) -> dict[str, Any]:
        team = self._team(team_id)
        number = number or 1 + max(
            (i["number"] for i in self.issues.values() if i["teamId"] == team["id"]), default=0
        )
        identifier = f"{team['key']}-{number}"
        issue_id = issue_id or str(uuid.uuid4())
        issue = {
            "id": issue_id,
            "number": number,
            "identifier": identifier,
            "title": title,
            "description": description,
            "priority": priority,
            "teamId": team["id"],
            "stateId": state_id or self._first_state(team["id"]),
            "labelIds": list(label_ids),
            "assigneeId": None,
            "creatorId": creator_id,
            "parentId": parent_id,
            "createdAt": _now(),
            "updatedAt": _now(),
            "url": url or f"https://linear.app/{self.url_key}/issue/{identifier}/{_slug(title)}",
        }
        self.issues[issue_id] = issue
        return issue

    def add_delivered_issue(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """The issue of a Linear `Issue` webhook, with its team, state, labels and creator
        (whatever is missing is added), so reads answer what the delivery says."""
        data = payload["data"]
        team = data.get("team") or {"id": data["teamId"], "key": "ENG", "name": "Engineering"}
        if team["id"] not in self.teams:
            self.add_team(team["id"], team["key"], team["name"])
        state = data.get("state")
        if state:
            self.add_state(team["id"], state["name"], state["type"], state["id"])
        for label in data.get("labels") or []:
            self.add_label(label["name"], team["id"], label_id=label["id"])
        for user in (data.get("creator"), data.get("assignee")):
            if user and user.get("id") not in self.users:
                self.add_user(user["id"], user.get("name") or "someone")
        if data.get("creatorId") and data["creatorId"] not in self.users:
            self.add_user(data["creatorId"], "Issue Creator")
        issue = self.add_issue(
            team["id"],
            data["title"],
            issue_id=data["id"],
            number=data.get("number"),
            description=data.get("description"),
            priority=int(data.get("priority") or 0),
            state_id=data.get("stateId"),
            label_ids=data.get("labelIds") or [],
            creator_id=data.get("creatorId"),
            url=payload.get("url"),
        )
        issue["createdAt"] = data.get("createdAt", issue["createdAt"])
        issue["updatedAt"] = data.get("updatedAt", issue["updatedAt"])
        return issue

    # --- lookups for tests ---

    def label_id(self, name: str, team_id: str | None = None) -> str:
        """The id of the label `name` of `team_id` (or of the workspace)."""
        for label in self.labels.values():
            if label["name"] == name and label["teamId"] == team_id:
                return str(label["id"])
        raise KeyError(f"no label {name!r} in {team_id or 'the workspace'}")

    def issue(self, key: str) -> dict[str, Any]:
        """An issue by id or identifier (like Linear's `issue(id:)`)."""
        found = self.issues.get(key) or next(
            (i for i in self.issues.values() if i["identifier"] == key), None
        )
        if found is None:
            raise _not_found("Issue")
        return found

    def comments_of(self, issue_id: str) -> list[dict[str, Any]]:
        return [c for c in self.comments.values() if c["issueId"] == issue_id]

    def _team(self, key: str) -> dict[str, Any]:
        found = self.teams.get(key) or next(
            (t for t in self.teams.values() if t["key"] == key), None
        )
        if found is None:
            raise _not_found("Team")
        return found

    def _first_state(self, team_id: str) -> str:
        states = sorted(
            (s for s in self.states.values() if s["teamId"] == team_id),
            key=lambda s: s["position"],
        )
        if not states:
            raise LinearRefusal("team has no workflow states", "The team has no workflow states.")
        return str(states[0]["id"])

    # --- GraphQL objects (relations resolved lazily, arguments honoured where it matters) ---

    def _issue_object(self, issue: Mapping[str, Any]) -> dict[str, Any]:
        labels = [self._label_object(self.labels[i]) for i in issue["labelIds"]]
        children = [i for i in self.issues.values() if i["parentId"] == issue["id"]]
        comments = [self._comment_object(c) for c in self.comments_of(issue["id"])]
        parent = self.issues.get(issue["parentId"] or "")
        return {
            **{k: v for k, v in issue.items() if not k.endswith("Id") and k != "labelIds"},
            "priority": float(issue["priority"]),
            "priorityLabel": dict(PRIORITIES)[issue["priority"]],
            "estimate": None,
            "dueDate": None,
            "project": None,
            "cycle": None,
            "state": lambda info, **a: self._state_object(self.states[issue["stateId"]]),
            "team": lambda info, **a: self._team_object(self.teams[issue["teamId"]]),
            "assignee": lambda info, **a: self._user_object(issue["assigneeId"]),
            "creator": lambda info, **a: self._user_object(issue["creatorId"]),
            "parent": lambda info, **a: self._issue_object(parent) if parent else None,
            "labels": lambda info, first=None, **a: _connection(labels, first),
            "children": lambda info, first=None, **a: _connection(
                [self._issue_object(c) for c in children], first
            ),
            "comments": lambda info, first=None, **a: _connection(comments, first),
        }

    def _team_object(self, team: Mapping[str, Any]) -> dict[str, Any]:
        labels = [self._label_object(x) for x in self.labels.values() if x["teamId"] == team["id"]]
        states = sorted(
            (s for s in self.states.values() if s["teamId"] == team["id"]),
            key=lambda s: s["position"],
        )
        members = [dict(u) for u in self.users.values()]
        return {
            **team,
            "labels": lambda info, first=None, **a: _connection(labels, first),
            "states": lambda info, first=None, **a: _connection(
                [self._state_object(s) for s in states], first
            ),
            "members": lambda info, first=None, **a: _connection(members, first),
        }

    def _label_object(self, label: Mapping[str, Any]) -> dict[str, Any]:
        parent = self.labels.get(label["parentId"] or "")
        return {
            **{k: v for k, v in label.items() if k not in ("parentId", "teamId")},
            "parent": lambda info, **a: self._label_object(parent) if parent else None,
        }

    def _state_object(self, state: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in state.items() if k != "teamId"}

    def _user_object(self, user_id: str | None) -> dict[str, Any] | None:
        return dict(self.users[user_id]) if user_id in self.users else None

    def _comment_object(self, comment: Mapping[str, Any]) -> dict[str, Any]:
        return {
            **{k: v for k, v in comment.items() if k not in ("issueId", "userId")},
            "user": lambda info, **a: self._user_object(comment["userId"]),
            "issue": lambda info, **a: self._issue_object(self.issues[comment["issueId"]]),
        }

    # --- the operations: one resolver per top-level field ---

    def root(self) -> dict[str, Any]:
        """The root value graphql-core executes documents on."""
        return {
            "issue": lambda info, id: self._issue_object(self.issue(id)),
            "comment": self._comment,
            "team": lambda info, id: self._team_object(self._team(id)),
            "searchIssues": self._search,
            "issueLabels": self._issue_labels,
            "issuePriorityValues": lambda info: [
                {"priority": p, "label": label} for p, label in PRIORITIES
            ],
            "issueUpdate": self._issue_update,
            "issueCreate": self._issue_create,
            "commentCreate": self._comment_create,
            "reactionCreate": self._reaction_create,
        }

    def _comment(self, info: Any, id: str | None = None, hash: str | None = None) -> Any:
        found = self.comments.get(id or "")
        if found is None:
            raise _not_found("Comment")
        return self._comment_object(found)

    def _search(
        self, info: Any, term: str, first: int | None = None, teamId: str | None = None, **_: Any
    ) -> dict[str, Any]:
        """Issues sharing words (of 3 letters or more) with `term`, most shared first."""
        words = {w for w in re.findall(r"\w+", term.lower()) if len(w) > 2}
        scored = []
        for issue in self.issues.values():
            if teamId is not None and issue["teamId"] != self._team(teamId)["id"]:
                continue
            text = set(re.findall(r"\w+", f"{issue['title']} {issue['description'] or ''}".lower()))
            if words & text:
                scored.append((-len(words & text), issue["number"], issue))
        found = [self._issue_object(i) for _, _, i in sorted(scored, key=lambda s: s[:2])]
        page = _connection(found, first)
        return {**page, "totalCount": float(len(found)), "archivePayload": {}}

    def _issue_labels(
        self, info: Any, first: int | None = None, filter: Mapping[str, Any] | None = None, **_: Any
    ) -> dict[str, Any]:
        """All labels, or with `filter: {team: {null: true}}` the workspace's, or with
        `filter: {team: {id: {eq: ID}}}` a team's; other filters are not implemented."""
        labels = list(self.labels.values())
        team = dict((filter or {}).get("team") or {})
        if set(filter or {}) - {"team"} or set(team) - {"null", "id"}:
            raise NotImplementedError(f"issueLabels filter {filter} is not implemented")
        if team.get("null") is True:
            labels = [x for x in labels if x["teamId"] is None]
        elif team.get("id"):
            labels = [x for x in labels if x["teamId"] == team["id"].get("eq")]
        return _connection([self._label_object(x) for x in labels], first)

    def _payload(self, name: str, obj: Any) -> dict[str, Any]:
        return {"success": True, "lastSyncId": float(next(self._sync)), name: obj}

    def _new_id(self, given: str | None, taken: Mapping[str, Any], kind: str) -> str:
        if given is None:
            return str(uuid.uuid4())
        try:
            uuid.UUID(given)
        except ValueError:
            raise LinearRefusal(f"{kind} id must be a UUID", "Argument Validation Error") from None
        if given in taken:
            raise LinearRefusal(
                f"{kind} with id {given} already exists", f"The {kind.lower()} already exists."
            )
        return given

    def _check_labels(self, team_id: str, ids: Iterable[str]) -> list[str]:
        for label_id in ids:
            label = self.labels.get(label_id)
            if label is None or label["teamId"] not in (None, team_id) or label["isGroup"]:
                raise _not_found("IssueLabel")
        return list(ids)

    def _issue_update(self, info: Any, id: str, input: Mapping[str, Any]) -> dict[str, Any]:
        with self._lock:
            issue = self.issue(id)
            team = issue["teamId"]
            labels = list(issue["labelIds"])
            if input.get("labelIds") is not None:
                labels = self._check_labels(team, input["labelIds"])
            added = self._check_labels(team, input.get("addedLabelIds") or [])
            removed = set(input.get("removedLabelIds") or [])
            labels = [x for x in labels + [a for a in added if a not in labels] if x not in removed]
            if input.get("stateId") is not None and input["stateId"] not in self.states:
                raise _not_found("WorkflowState")
            if input.get("assigneeId") is not None and input["assigneeId"] not in self.users:
                raise _not_found("User")
            issue["labelIds"] = labels
            for key in ("priority", "stateId", "assigneeId", "title", "description"):
                if input.get(key) is not None:
                    issue[key] = input[key]
            issue["updatedAt"] = _now()
            return self._payload("issue", self._issue_object(issue))

    def _issue_create(self, info: Any, input: Mapping[str, Any]) -> dict[str, Any]:
        with self._lock:
            team = self._team(input["teamId"])
            parent = self.issue(input["parentId"])["id"] if input.get("parentId") else None
            issue = self.add_issue(
                team["id"],
                input.get("title") or "",
                issue_id=self._new_id(input.get("id"), self.issues, "Issue"),
                description=input.get("description"),
                priority=int(input.get("priority") or 0),
                state_id=input.get("stateId"),
                label_ids=self._check_labels(team["id"], input.get("labelIds") or []),
                parent_id=parent,
            )
            return self._payload("issue", self._issue_object(issue))

    def _comment_create(self, info: Any, input: Mapping[str, Any]) -> dict[str, Any]:
        with self._lock:
            if not input.get("issueId"):
                raise LinearRefusal("issueId is required", "A comment needs an issue.")
            if not input.get("body"):
                raise LinearRefusal("body is required", "A comment needs a body.")
            issue = self.issue(input["issueId"])
            comment_id = self._new_id(input.get("id"), self.comments, "Comment")
            self.comments[comment_id] = {
                "id": comment_id,
                "body": input["body"],
                "issueId": issue["id"],
                "userId": None,
                "createdAt": _now(),
                "url": f"{issue['url']}#comment-{comment_id[:8]}",
            }
            return self._payload("comment", self._comment_object(self.comments[comment_id]))

    def _reaction_create(self, info: Any, input: Mapping[str, Any]) -> dict[str, Any]:
        with self._lock:
            if input.get("issueId"):
                on = {"issueId": self.issue(input["issueId"])["id"]}
            elif input.get("commentId") in self.comments:
                on = {"commentId": input["commentId"]}
            else:
                raise _not_found("Comment")
            reaction_id = self._new_id(input.get("id"), self.reactions, "Reaction")
            self.reactions[reaction_id] = {"id": reaction_id, "emoji": input["emoji"], **on}
            return self._payload("reaction", {"id": reaction_id, "emoji": input["emoji"]})


_SAMPLE_ISSUE = {
    "id": "9cfb482a-81e3-4154-b5b9-2c805e70a02d",
    "identifier": "ENG-123",
    "url": "https://linear.app/acme/issue/ENG-123",
}


def sample_root() -> dict[str, Any]:
    """Without a workspace: every mutation succeeds with a sample object; reads find nothing."""

    def payload(name: str, obj: Mapping[str, Any]) -> Callable[..., dict[str, Any]]:
        return lambda info, **a: {"success": True, "lastSyncId": 1.0, name: dict(obj)}

    def missing(kind: str) -> Callable[..., Any]:
        def read(info: Any, **a: Any) -> Any:
            raise _not_found(kind)

        return read

    comment = {
        "id": "c0a8b1e2-0000-4000-8000-000000000001",
        "url": "https://linear.app/acme/issue/ENG-123#comment-c0a8b1e2",
    }
    return {
        "issue": missing("Issue"),
        "comment": missing("Comment"),
        "team": missing("Team"),
        "issueUpdate": payload("issue", _SAMPLE_ISSUE),
        "issueCreate": payload("issue", _SAMPLE_ISSUE),
        "commentCreate": payload("comment", comment),
        "reactionCreate": payload(
            "reaction", {"id": "r0a8b1e2-0000-4000-8000-000000000002", "emoji": "eyes"}
        ),
    }
