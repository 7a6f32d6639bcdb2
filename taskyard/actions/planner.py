"""`PlatformPlanner`: each typed action turned into the platform requests that carry it out.

Pure like the platform planners it calls (`github_write`, `linear_write`, `slack_write`):
it sends nothing. The table `_PLANS` maps an action type to one handler per target
platform (`ANY`: whatever the target); a combination not in the table, or a target that
lacks what the action needs, raises `ActionError` with a sentence saying what to do instead.

What goes where:

| action | github | linear | slack | any other target |
|---|---|---|---|---|
| add_labels | labels by name | `addedLabelIds` | no | no |
| remove_labels | one DELETE per label | `removedLabelIds` | no | no |
| set_priority | no (use labels) | P0..P3 → urgent..low | no | no |
| set_state | no (use close_issue) | `stateId` | no | no |
| assign | logins | one `assigneeId` | no | no |
| comment | issue comment | comment (id: `linear_uuid`) | reply in the thread | no |
| mention_users | comment "@a @b text" | comment (id: `linear_uuid`) | reply "<@U1> text" | no |
| create_issue | issue in the repo | in `team_id` (id: `linear_uuid`) | as linear | as linear |
| review, merge_pr | pull request only | no | no | no |
| set_check, create_pr | on the repo | no | no | no |
| close_issue | close with the reason | no (use set_state) | no | no |
| post_channel | params.channel | params.channel | the channel, no thread | params.channel |
| react | reaction on the issue / PR | no (use comment) | `reactions.add` on the message | no |
| run_command | not configured | | | |

Linear wants ids for labels, states and users. A value that is already an id (a UUID) is
used as it is; a name is resolved with the injected lookup `(team_id, names) -> {name: id}`
for the names it knows (`taskyard.actions.directory` builds them from the Linear API). No
lookup, no team, or an unknown name: `ActionError`. A dry-run planner (`unresolved=True`)
never fails for want of a lookup or a team (no Linear API key yet): it plans the request
with the names unresolved, as placeholders `<label:Bug>`, `<state:Done>`, `<user:ana>`.

What Linear creates gets the id `linear_uuid(action.key)`: sent twice, the second is refused
instead of making a duplicate, and the apply step can look for it by that id.

`react` takes a GitHub reaction name or a Slack emoji name: GitHub accepts only its eight
(`+1 -1 laugh confused heart hooray rocket eyes`; Slack's names of the same emoji, e.g.
`thumbsup` or `tada`, are translated); Slack gets any emoji name (GitHub's `hooray` and `laugh`
as `tada` and `smile`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

from taskyard.actions.models import (
    ActionParams,
    AddLabels,
    Assign,
    CloseIssue,
    Comment,
    CreateIssue,
    CreatePr,
    MentionUsers,
    MergePr,
    ParsedAction,
    PostChannel,
    React,
    Review,
    SetCheck,
    SetPriority,
    SetState,
    Target,
)
from taskyard.exceptions import ActionError
from taskyard.models import Priority
from taskyard.platforms import github_write as gh
from taskyard.platforms import linear_write as lin
from taskyard.platforms import slack_write as sl
from taskyard.platforms.writes import PlannedRequest

ANY = "*"  # a handler for any target platform

IdLookup = Callable[[str, Sequence[str]], Mapping[str, str]]
"""`(team_id, names) -> {name: id}` for the names the Linear team has (may raise
PlatformError, which the apply step records as "cannot plan")."""

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
_SLACK_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
# Linear: 1 urgent, 2 high, 3 medium, 4 low (0 is "no priority").
_LINEAR_PRIORITY: Mapping[Priority, int] = {
    Priority.P0: 1,
    Priority.P1: 2,
    Priority.P2: 3,
    Priority.P3: 4,
}
# Slack's names for GitHub's reactions, both ways (the rest are the same name on both).
_GITHUB_REACTION: Mapping[str, str] = {
    "thumbsup": "+1",
    "thumbsdown": "-1",
    "tada": "hooray",
    "smile": "laugh",
}
_SLACK_EMOJI: Mapping[str, str] = {"hooray": "tada", "laugh": "smile"}
_REVIEW_EVENT: Mapping[str, gh.ReviewEvent] = {
    "comment": gh.ReviewEvent.COMMENT,
    "approve": gh.ReviewEvent.APPROVE,
    "request_changes": gh.ReviewEvent.REQUEST_CHANGES,
}
NOT_CONFIGURED = (
    "run_command is not configured: taskyard runs no commands as actions; "
    "have the agent run it during its task instead"
)

P = TypeVar("P", bound=ActionParams)


@dataclass(frozen=True, slots=True)
class PlatformPlanner:
    """The real `Planner` (see `taskyard.actions.apply`). The lookups resolve Linear names
    to ids; without them, Linear actions accept ids only."""

    label_ids: IdLookup | None = None
    state_ids: IdLookup | None = None
    user_ids: IdLookup | None = None
    unresolved: bool = False  # dry run: names that cannot be looked up become placeholders

    def plan(self, action: ParsedAction, target: Target) -> list[PlannedRequest]:
        handlers = _PLANS.get(action.type)
        if handlers is None:
            raise ActionError(f"taskyard cannot apply {action.type!r} actions")
        handler = handlers.get(target.platform) or handlers.get(ANY)
        if handler is None:
            raise ActionError(_why_not(action.type, target.platform, handlers))
        try:
            return handler(self, action, target)
        except ValueError as exc:  # a platform planner refused a value
            raise ActionError(f"{action.type}: {exc}") from exc

    def linear_ids(self, kind: str, target: Target, names: Sequence[str]) -> list[str]:
        """Linear ids for `names` (labels, states or users), in order."""
        lookup = {"label": self.label_ids, "state": self.state_ids, "user": self.user_ids}[kind]
        wanted = [n for n in names if not _UUID.match(n)]
        if not wanted:
            return list(names)
        listed = ", ".join(repr(n) for n in wanted)
        if self.unresolved and (lookup is None or target.team_id is None):
            return [n if _UUID.match(n) else unresolved_name(kind, n) for n in names]
        if lookup is None:
            raise ActionError(
                f"Linear {kind} names need TASKYARD_LINEAR_API_KEY to be resolved to ids "
                f"({listed}); set it, or give the {kind} ids instead"
            )
        if target.team_id is None:
            raise ActionError(
                f"cannot look up Linear {kind}s {listed}: the task's event names no team"
            )
        found = lookup(target.team_id, wanted)
        missing = [n for n in wanted if n not in found]
        if missing:
            names_missing = ", ".join(repr(n) for n in missing)
            raise ActionError(f"Linear team {target.team_id} has no {kind} {names_missing}")
        return [n if _UUID.match(n) else found[n] for n in names]


def unresolved_name(kind: str, name: str) -> str:
    """What a dry run records for a Linear name it could not resolve to an id."""
    return f"<{kind}:{name}>"


Handler = Callable[[PlatformPlanner, ParsedAction, Target], list[PlannedRequest]]

# Why a combination is missing, when the default sentence would not help.
_WHY_NOT: Mapping[tuple[str, str], str] = {
    ("set_priority", "github"): (
        "no priorities on GitHub issues; use add_labels with a priority label instead"
    ),
    ("set_state", "github"): (
        "GitHub issues have no workflow states; use close_issue to close one, or add_labels"
    ),
    ("close_issue", "linear"): (
        "a Linear issue is closed by moving it to a done state; use set_state with the "
        "state's name (e.g. Done)"
    ),
    ("react", "linear"): (
        "react is not applied to Linear issues (a comment is not a reaction); Linear: use "
        "comment to answer on the issue"
    ),
}


def _why_not(action: str, platform: str, handlers: Mapping[str, Handler]) -> str:
    known = _WHY_NOT.get((action, platform))
    if known is not None:
        return known
    where = ", ".join(sorted(handlers))
    return f"{action} cannot be applied to a {platform} target; it works on {where} targets"


def _as(params: ActionParams, kind: type[P]) -> P:
    if not isinstance(params, kind):
        raise ActionError(f"expected {kind.__name__} params, not {type(params).__name__}")
    return params


# --- what a target must carry ---------------------------------------------------------


def _issue(target: Target, what: str) -> tuple[str, int]:
    if target.repo is None or target.number is None:
        only = f" (only the repository {target.repo})" if target.repo else ""
        raise ActionError(
            f"{what} needs a GitHub issue or pull request, and the task's event names none{only}"
        )
    return target.repo, target.number


def _pull(target: Target, what: str) -> tuple[str, int]:
    repo, number = _issue(target, what)
    if target.pull_request is False:
        raise ActionError(f"{what} needs a pull request, and {repo}#{number} is an issue")
    return repo, number


def _repo(target: Target, what: str) -> str:
    if target.repo is None:
        raise ActionError(f"{what} needs a GitHub repository, and the task's event names none")
    return target.repo


def _linear_issue(target: Target, what: str) -> str:
    if target.issue_id is None:
        raise ActionError(f"{what} needs a Linear issue, and the task's event names none")
    return target.issue_id


def _channel(target: Target, what: str) -> str:
    if target.channel is None:
        raise ActionError(f"{what} needs a Slack channel, and the task's event names none")
    return target.channel


def _team(target: Target, what: str) -> str:
    if target.team_id is None:
        raise ActionError(
            f"{what} needs a Linear team: the task's event names none and no default "
            "Linear team is configured"
        )
    return target.team_id


# --- labels, priority, state, assignees ------------------------------------------------


def _github_add_labels(p: PlatformPlanner, a: ParsedAction, t: Target) -> list[PlannedRequest]:
    repo, number = _issue(t, "add_labels")
    return [gh.add_labels(repo, number, _as(a.params, AddLabels).labels)]


def _github_remove_labels(p: PlatformPlanner, a: ParsedAction, t: Target) -> list[PlannedRequest]:
    repo, number = _issue(t, "remove_labels")
    return [gh.remove_label(repo, number, label) for label in _as(a.params, AddLabels).labels]


def _linear_add_labels(p: PlatformPlanner, a: ParsedAction, t: Target) -> list[PlannedRequest]:
    issue = _linear_issue(t, "add_labels")
    ids = p.linear_ids("label", t, _as(a.params, AddLabels).labels)
    return [lin.issue_update(issue, added_label_ids=ids)]


def _linear_remove_labels(p: PlatformPlanner, a: ParsedAction, t: Target) -> list[PlannedRequest]:
    issue = _linear_issue(t, "remove_labels")
    ids = p.linear_ids("label", t, _as(a.params, AddLabels).labels)
    return [lin.issue_update(issue, removed_label_ids=ids)]


def _linear_priority(p: PlatformPlanner, a: ParsedAction, t: Target) -> list[PlannedRequest]:
    issue = _linear_issue(t, "set_priority")
    priority = _LINEAR_PRIORITY[_as(a.params, SetPriority).priority]
    return [lin.issue_update(issue, priority=priority)]


def _linear_state(p: PlatformPlanner, a: ParsedAction, t: Target) -> list[PlannedRequest]:
    issue = _linear_issue(t, "set_state")
    (state,) = p.linear_ids("state", t, [_as(a.params, SetState).state])
    return [lin.issue_update(issue, state_id=state)]


def _github_assign(p: PlatformPlanner, a: ParsedAction, t: Target) -> list[PlannedRequest]:
    repo, number = _issue(t, "assign")
    logins = [name.removeprefix("@") for name in _as(a.params, Assign).assignees]
    return [gh.assign(repo, number, logins)]


def _linear_assign(p: PlatformPlanner, a: ParsedAction, t: Target) -> list[PlannedRequest]:
    issue = _linear_issue(t, "assign")
    names = _as(a.params, Assign).assignees
    if len(names) != 1:
        raise ActionError(f"a Linear issue has one assignee; name one, not {len(names)}")
    (user,) = p.linear_ids("user", t, names)
    return [lin.issue_update(issue, assignee_id=user)]


# --- comments and messages -------------------------------------------------------------


def _github_comment(p: PlatformPlanner, a: ParsedAction, t: Target) -> list[PlannedRequest]:
    repo, number = _issue(t, "comment")
    return [gh.comment(repo, number, _as(a.params, Comment).body)]


def _linear_comment(p: PlatformPlanner, a: ParsedAction, t: Target) -> list[PlannedRequest]:
    issue = _linear_issue(t, "comment")
    return [lin.comment_create(issue, _as(a.params, Comment).body, id=lin.linear_uuid(a.key))]


def _slack_comment(p: PlatformPlanner, a: ParsedAction, t: Target) -> list[PlannedRequest]:
    channel = _channel(t, "comment")
    return [sl.post_message(channel, _as(a.params, Comment).body, thread_ts=t.thread_ts)]


def _mentions(users: Sequence[str], slack: bool = False) -> str:
    def one(user: str) -> str:
        name = user.removeprefix("@")
        return f"<@{name}>" if slack and _SLACK_USER_ID.match(name) else f"@{name}"

    return " ".join(one(u) for u in users)


def _github_mention(p: PlatformPlanner, a: ParsedAction, t: Target) -> list[PlannedRequest]:
    repo, number = _issue(t, "mention_users")
    m = _as(a.params, MentionUsers)
    return [gh.comment(repo, number, f"{_mentions(m.users)} {m.message}")]


def _linear_mention(p: PlatformPlanner, a: ParsedAction, t: Target) -> list[PlannedRequest]:
    issue = _linear_issue(t, "mention_users")
    m = _as(a.params, MentionUsers)
    text = f"{_mentions(m.users)} {m.message}"
    return [lin.comment_create(issue, text, id=lin.linear_uuid(a.key))]


def _slack_mention(p: PlatformPlanner, a: ParsedAction, t: Target) -> list[PlannedRequest]:
    channel = _channel(t, "mention_users")
    m = _as(a.params, MentionUsers)
    text = f"{_mentions(m.users, slack=True)} {m.message}"
    return [sl.post_message(channel, text, thread_ts=t.thread_ts)]


def _post_channel(p: PlatformPlanner, a: ParsedAction, t: Target) -> list[PlannedRequest]:
    post = _as(a.params, PostChannel)
    channel = post.channel or (t.channel if t.platform == sl.PLATFORM else None)
    if channel is None:
        raise ActionError(
            f"post_channel needs a Slack channel: name one in params.channel "
            f"(the task's {t.platform} event has none)"
        )
    return [sl.post_message(channel, post.text)]


# --- issues and pull requests ----------------------------------------------------------


def _github_create_issue(p: PlatformPlanner, a: ParsedAction, t: Target) -> list[PlannedRequest]:
    issue = _as(a.params, CreateIssue)
    repo = _repo(t, "create_issue")
    if issue.priority is not None:
        raise ActionError(
            "create_issue: GitHub issues have no priority; leave it out, or add a priority label"
        )
    return [gh.create_issue(repo, issue.title, issue.body, issue.labels)]


def _linear_create_issue(p: PlatformPlanner, a: ParsedAction, t: Target) -> list[PlannedRequest]:
    issue = _as(a.params, CreateIssue)
    team = _team(t, "create_issue")
    labels = p.linear_ids("label", t, issue.labels)
    priority = None if issue.priority is None else _LINEAR_PRIORITY[issue.priority]
    planned = lin.issue_create(
        team,
        issue.title,
        description=issue.body,
        priority=priority,
        label_ids=labels,
        id=lin.linear_uuid(a.key),
    )
    return [planned]


def _github_close(p: PlatformPlanner, a: ParsedAction, t: Target) -> list[PlannedRequest]:
    repo, number = _issue(t, "close_issue")
    return [gh.close_issue(repo, number, _as(a.params, CloseIssue).reason)]


def _without(request: PlannedRequest, field: str) -> PlannedRequest:
    return replace(request, body={k: v for k, v in request.body.items() if k != field})


def _github_review(p: PlatformPlanner, a: ParsedAction, t: Target) -> list[PlannedRequest]:
    repo, number = _pull(t, "review")
    r = _as(a.params, Review)
    comments = [c.model_dump() for c in r.comments]
    event = _REVIEW_EVENT[r.verdict]
    planned = gh.review(repo, number, t.head_sha or "", r.summary, event, comments)
    # Without a known head commit GitHub reviews the pull request's latest one.
    return [planned if t.head_sha else _without(planned, "commit_id")]


def _github_check(p: PlatformPlanner, a: ParsedAction, t: Target) -> list[PlannedRequest]:
    repo = _repo(t, "set_check")
    if t.head_sha is None:
        raise ActionError("set_check needs a commit, and the task's event names no head commit")
    c = _as(a.params, SetCheck)
    return [
        gh.set_check(
            repo, t.head_sha, c.name, conclusion=c.conclusion, title=c.title, summary=c.summary
        )
    ]


def _github_create_pr(p: PlatformPlanner, a: ParsedAction, t: Target) -> list[PlannedRequest]:
    pr = _as(a.params, CreatePr)
    planned = gh.create_pr(_repo(t, "create_pr"), pr.title, pr.head, pr.base, pr.body)
    return [replace(planned, body={**planned.body, "draft": pr.draft})]


def _github_merge(p: PlatformPlanner, a: ParsedAction, t: Target) -> list[PlannedRequest]:
    repo, number = _pull(t, "merge_pr")
    return [gh.merge_pr(repo, number, _as(a.params, MergePr).method)]


# --- reactions -------------------------------------------------------------------------


def _github_react(p: PlatformPlanner, a: ParsedAction, t: Target) -> list[PlannedRequest]:
    repo, number = _issue(t, "react")
    emoji = _as(a.params, React).emoji
    content = _GITHUB_REACTION.get(emoji, emoji)
    allowed = [r.value for r in gh.Reaction]
    if content not in allowed:
        raise ActionError(
            f"react: GitHub has no {emoji!r} reaction; use one of {', '.join(allowed)}"
        )
    return [gh.add_reaction(repo, number, content=content)]


def _slack_react(p: PlatformPlanner, a: ParsedAction, t: Target) -> list[PlannedRequest]:
    channel = _channel(t, "react")
    if t.message_ts is None:
        raise ActionError("react needs a Slack message, and the task's event names none")
    emoji = _as(a.params, React).emoji
    return [sl.add_reaction(channel, t.message_ts, _SLACK_EMOJI.get(emoji, emoji))]


def _run_command(p: PlatformPlanner, a: ParsedAction, t: Target) -> list[PlannedRequest]:
    raise ActionError(NOT_CONFIGURED)


_GH, _LIN, _SL = gh.PLATFORM, lin.PLATFORM, sl.PLATFORM
_PLANS: Mapping[str, Mapping[str, Handler]] = {
    "add_labels": {_GH: _github_add_labels, _LIN: _linear_add_labels},
    "remove_labels": {_GH: _github_remove_labels, _LIN: _linear_remove_labels},
    "set_priority": {_LIN: _linear_priority},
    "set_state": {_LIN: _linear_state},
    "assign": {_GH: _github_assign, _LIN: _linear_assign},
    "comment": {_GH: _github_comment, _LIN: _linear_comment, _SL: _slack_comment},
    "create_issue": {_GH: _github_create_issue, ANY: _linear_create_issue},
    "review": {_GH: _github_review},
    "set_check": {_GH: _github_check},
    "close_issue": {_GH: _github_close},
    "create_pr": {_GH: _github_create_pr},
    "merge_pr": {_GH: _github_merge},
    "mention_users": {_GH: _github_mention, _LIN: _linear_mention, _SL: _slack_mention},
    "post_channel": {ANY: _post_channel},
    "react": {_GH: _github_react, _SL: _slack_react},
    "run_command": {ANY: _run_command},
}
