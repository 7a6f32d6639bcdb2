"""Linear writes: planners (pure: the GraphQL mutation and its variables) and `LinearWriter`.

Every mutation is a file in `queries/mutations/`; a contract test validates each document and
each planner's variables against Linear's published schema. The writer is a `LinearClient`
(same auth header, retries and error rules: GraphQL `errors` by `extensions.code`, RATELIMITED
waits, INTERNAL_SERVER_ERROR transient, the rest permanent) that posts the planned body; a
mutation answering `success: false` is permanent too.

Creations carry an id taskyard chooses (`linear_uuid` of the action's idempotency key), so a
create sent twice cannot make two objects, and one whose answer was lost can be looked up by
that id (`taskyard.actions.lookup`)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping, Sequence
from functools import cache
from importlib import resources
from typing import Any

from taskyard.exceptions import PlatformPermanentError
from taskyard.platforms.linear import LinearClient
from taskyard.platforms.retry import with_retries
from taskyard.platforms.writes import PlannedRequest, WriteResult

PLATFORM = "linear"
PATH = "graphql"
# planner name -> (mutation file, the payload field of its answer, the object in that payload)
MUTATIONS: Mapping[str, tuple[str, str, str]] = {
    "issue_update": ("issue_update", "issueUpdate", "issue"),
    "issue_create": ("issue_create", "issueCreate", "issue"),
    "comment_create": ("comment_create", "commentCreate", "comment"),
    "reaction_create": ("reaction_create", "reactionCreate", "reaction"),
}
_PAYLOADS = {field: obj for _, field, obj in MUTATIONS.values()}


@cache
def mutation(name: str) -> str:
    """The GraphQL document `queries/mutations/<name>.graphql` shipped with taskyard."""
    root = resources.files("taskyard.platforms").joinpath("queries", "mutations")
    return root.joinpath(f"{name}.graphql").read_text()


def linear_uuid(key: str) -> str:
    """A UUID in version 4 format, the same for the same `key`: the first 16 bytes of the
    key's SHA-256 with the version (4) and variant (RFC 4122) bits set, as Linear's `id`
    inputs ask ("UUID v4 format")."""
    digest = hashlib.sha256(key.encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def _plan(name: str, variables: Mapping[str, Any], description: str) -> PlannedRequest:
    body = {"query": mutation(MUTATIONS[name][0]), "variables": dict(variables)}
    return PlannedRequest(PLATFORM, "POST", PATH, body, description)


def _priority(priority: int) -> int:
    """Linear's priorities: 0 none, 1 urgent, 2 high, 3 medium (normal), 4 low."""
    if priority not in range(5):
        raise ValueError(f"a Linear priority is 0..4, not {priority}")
    return priority


def issue_update(
    issue_id: str,
    *,
    label_ids: Sequence[str] | None = None,
    added_label_ids: Sequence[str] | None = None,
    removed_label_ids: Sequence[str] | None = None,
    priority: int | None = None,
    state_id: str | None = None,
    assignee_id: str | None = None,
) -> PlannedRequest:
    """Change the given fields only. `label_ids` replaces the labels; `added_label_ids` adds
    to them and `removed_label_ids` takes off."""
    fields: dict[str, Any] = {
        "labelIds": None if label_ids is None else list(label_ids),
        "addedLabelIds": None if added_label_ids is None else list(added_label_ids),
        "removedLabelIds": None if removed_label_ids is None else list(removed_label_ids),
        "priority": None if priority is None else _priority(priority),
        "stateId": state_id,
        "assigneeId": assignee_id,
    }
    update = {k: v for k, v in fields.items() if v is not None}
    if not update:
        raise ValueError("issue_update needs at least one field to change")
    text = f"update Linear issue {issue_id}: {', '.join(sorted(update))}"
    return _plan("issue_update", {"id": issue_id, "input": update}, text)


def _id(value: str | None) -> dict[str, str]:
    if value is None:
        return {}
    try:
        uuid.UUID(value)
    except ValueError:
        raise ValueError(f"a Linear id is a UUID, not {value!r}") from None
    return {"id": value}


def comment_create(issue_id: str, body: str, *, id: str | None = None) -> PlannedRequest:
    """A comment on the issue; `id` (a UUID) is the comment's, when the caller chooses it."""
    variables = {"input": {**_id(id), "issueId": issue_id, "body": body}}
    return _plan("comment_create", variables, f"comment on Linear issue {issue_id}")


def issue_create(
    team_id: str,
    title: str,
    description: str = "",
    priority: int | None = None,
    label_ids: Sequence[str] = (),
    *,
    id: str | None = None,
    parent_id: str | None = None,
) -> PlannedRequest:
    """An issue in the team; `id` (a UUID) is the issue's, when the caller chooses it;
    `parent_id` makes it a sub-issue of that issue."""
    fields: dict[str, Any] = {**_id(id), "teamId": team_id, "title": title}
    if parent_id is not None:
        fields["parentId"] = parent_id
    if description:
        fields["description"] = description
    if priority is not None:
        fields["priority"] = _priority(priority)
    if label_ids:
        fields["labelIds"] = list(label_ids)
    return _plan("issue_create", {"input": fields}, f"open Linear issue {title!r}")


def reaction_create(
    emoji: str, *, issue_id: str | None = None, comment_id: str | None = None
) -> PlannedRequest:
    """A reaction (`emoji` by name, e.g. "eyes") on an issue or on a comment."""
    if (issue_id is None) == (comment_id is None):
        raise ValueError("reaction_create needs exactly one of issue_id and comment_id")
    target = {"issueId": issue_id} if issue_id is not None else {"commentId": comment_id}
    text = f"react {emoji} to Linear {'issue' if issue_id else 'comment'} {issue_id or comment_id}"
    return _plan("reaction_create", {"input": {"emoji": emoji, **target}}, text)


def write_result(data: Mapping[str, Any], what: str) -> WriteResult:
    """The created/changed object of a mutation answer: issue → identifier + url, comment or
    reaction → id (+ url). `success: false` is a permanent failure."""
    field = next((k for k in data if k in _PAYLOADS), None)
    payload = data.get(field) if field else None
    if not isinstance(payload, Mapping) or payload.get("success") is not True:
        raise PlatformPermanentError(
            f"linear: {what} did not succeed ({field or 'no mutation payload'})",
            platform=PLATFORM,
        )
    obj = payload.get(_PAYLOADS[str(field)])
    obj = obj if isinstance(obj, Mapping) else {}
    ident = obj.get("identifier") or obj.get("id")
    url = obj.get("url")
    return WriteResult(
        external_id=None if ident is None else str(ident),
        url=url if isinstance(url, str) else None,
        response=dict(payload),
    )


class LinearWriter(LinearClient):
    """Sends planned Linear mutations with the API key."""

    platform = PLATFORM

    async def send(self, request: PlannedRequest) -> WriteResult:
        if request.platform != PLATFORM:
            raise PlatformPermanentError(
                f"linear: cannot send a {request.platform} request", platform=PLATFORM
            )
        what = request.description or "mutation"
        payload = dict(request.body)

        async def once() -> dict[str, Any]:
            response = await self._http.request(
                "POST", self._url, what, check_status=False, json=payload
            )
            return self._data(response, what)

        data = await with_retries(
            once,
            policy=self._retry,
            sleep=self._sleep,
            what=what,
            write=True,
            platform=PLATFORM,
        )
        return write_result(data, what)
