"""GitHub writes: planners (pure functions: what would be sent) and `GitHubWriter` (sends it).

Every planner returns a `PlannedRequest` whose `path` is the concrete REST path and whose
`body` is the JSON GitHub documents for the operation; `OPERATIONS` names each planner's
(method, path template), and a contract test checks both against GitHub's OpenAPI
description. The writer is a `GitHubClient` (same auth — token or App installation — same
retries, same error translation) that sends a planned request as it is."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any
from urllib.parse import quote

from taskyard.exceptions import PlatformPermanentError
from taskyard.platforms.github import GitHubClient, _split_repo
from taskyard.platforms.writes import PlannedRequest, WriteResult

PLATFORM = "github"

OPERATIONS: Mapping[str, tuple[str, str]] = {
    "add_labels": ("POST", "/repos/{owner}/{repo}/issues/{issue_number}/labels"),
    "remove_label": ("DELETE", "/repos/{owner}/{repo}/issues/{issue_number}/labels/{name}"),
    "comment": ("POST", "/repos/{owner}/{repo}/issues/{issue_number}/comments"),
    "create_issue": ("POST", "/repos/{owner}/{repo}/issues"),
    "close_issue": ("PATCH", "/repos/{owner}/{repo}/issues/{issue_number}"),
    "assign": ("POST", "/repos/{owner}/{repo}/issues/{issue_number}/assignees"),
    "review": ("POST", "/repos/{owner}/{repo}/pulls/{pull_number}/reviews"),
    "set_check": ("POST", "/repos/{owner}/{repo}/check-runs"),
    "commit_status": ("POST", "/repos/{owner}/{repo}/statuses/{sha}"),
    "add_reaction": ("POST", "/repos/{owner}/{repo}/issues/{issue_number}/reactions"),
    "add_comment_reaction": (
        "POST",
        "/repos/{owner}/{repo}/issues/comments/{comment_id}/reactions",
    ),
    "create_pr": ("POST", "/repos/{owner}/{repo}/pulls"),
    "merge_pr": ("PUT", "/repos/{owner}/{repo}/pulls/{pull_number}/merge"),
}


class ReviewEvent(StrEnum):
    APPROVE = "APPROVE"
    REQUEST_CHANGES = "REQUEST_CHANGES"
    COMMENT = "COMMENT"


class MergeMethod(StrEnum):
    MERGE = "merge"
    SQUASH = "squash"
    REBASE = "rebase"


class CheckConclusion(StrEnum):
    ACTION_REQUIRED = "action_required"
    CANCELLED = "cancelled"
    FAILURE = "failure"
    NEUTRAL = "neutral"
    SUCCESS = "success"
    SKIPPED = "skipped"
    TIMED_OUT = "timed_out"


class StatusState(StrEnum):
    ERROR = "error"
    FAILURE = "failure"
    PENDING = "pending"
    SUCCESS = "success"


class CheckStatus(StrEnum):
    QUEUED = "queued"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"


class Reaction(StrEnum):
    PLUS_ONE = "+1"
    MINUS_ONE = "-1"
    LAUGH = "laugh"
    CONFUSED = "confused"
    HEART = "heart"
    HOORAY = "hooray"
    ROCKET = "rocket"
    EYES = "eyes"


def _repo_path(repo: str) -> str:
    owner, name = _split_repo(repo)
    return f"/repos/{quote(owner, safe='')}/{quote(name, safe='')}"


def _plan(method: str, path: str, body: Mapping[str, Any], description: str) -> PlannedRequest:
    return PlannedRequest(PLATFORM, method, path, dict(body), description)


# --- planners ---------------------------------------------------------------------------


def add_labels(repo: str, number: int, labels: Sequence[str]) -> PlannedRequest:
    if not labels:
        raise ValueError("add_labels needs at least one label")
    path = f"{_repo_path(repo)}/issues/{number}/labels"
    text = f"add labels {', '.join(labels)} to {repo}#{number}"
    return _plan("POST", path, {"labels": list(labels)}, text)


def remove_label(repo: str, number: int, label: str) -> PlannedRequest:
    path = f"{_repo_path(repo)}/issues/{number}/labels/{quote(label, safe='')}"
    return _plan("DELETE", path, {}, f"remove label {label} from {repo}#{number}")


def comment(repo: str, number: int, body: str) -> PlannedRequest:
    path = f"{_repo_path(repo)}/issues/{number}/comments"
    return _plan("POST", path, {"body": body}, f"comment on {repo}#{number}")


def create_issue(
    repo: str, title: str, body: str = "", labels: Sequence[str] = ()
) -> PlannedRequest:
    payload: dict[str, Any] = {"title": title, "body": body}
    if labels:
        payload["labels"] = list(labels)
    return _plan("POST", f"{_repo_path(repo)}/issues", payload, f"open issue {title!r} in {repo}")


def close_issue(repo: str, number: int, reason: str = "completed") -> PlannedRequest:
    """`reason`: completed | not_planned (GitHub's `state_reason`)."""
    path = f"{_repo_path(repo)}/issues/{number}"
    body = {"state": "closed", "state_reason": reason}
    return _plan("PATCH", path, body, f"close {repo}#{number} ({reason})")


def assign(repo: str, number: int, logins: Sequence[str]) -> PlannedRequest:
    if not logins:
        raise ValueError("assign needs at least one login")
    path = f"{_repo_path(repo)}/issues/{number}/assignees"
    text = f"assign {', '.join(logins)} to {repo}#{number}"
    return _plan("POST", path, {"assignees": list(logins)}, text)


def _side(raw: Mapping[str, Any], key: str) -> str:
    side = str(raw.get(key) or "RIGHT")
    if side not in ("LEFT", "RIGHT"):
        raise ValueError(f"a review comment's {key} is LEFT or RIGHT, not {side!r}")
    return side


def _review_comment(raw: Mapping[str, Any]) -> dict[str, Any]:
    """One comment of a review: path, line, body, side (RIGHT unless told); for a range of
    lines (a multi-line suggestion) also start_line and start_side."""
    missing = {"path", "line", "body"} - set(raw)
    if missing:
        raise ValueError(f"a review comment needs {sorted(missing)}")
    side = _side(raw, "side")
    out = {"path": str(raw["path"]), "line": int(raw["line"]), "side": side, "body": raw["body"]}
    if raw.get("start_line") is not None:
        out |= {"start_line": int(raw["start_line"]), "start_side": _side(raw, "start_side")}
    return out


def review(
    repo: str,
    number: int,
    commit_id: str,
    body: str,
    event: ReviewEvent | str = ReviewEvent.COMMENT,
    comments: Sequence[Mapping[str, Any]] = (),
) -> PlannedRequest:
    """A submitted pull request review; `comments` are `{path, line, side?, body}`."""
    kind = ReviewEvent(event)
    payload: dict[str, Any] = {"commit_id": commit_id, "body": body, "event": kind.value}
    if comments:
        payload["comments"] = [_review_comment(c) for c in comments]
    path = f"{_repo_path(repo)}/pulls/{number}/reviews"
    return _plan("POST", path, payload, f"review {repo}#{number} ({kind.value})")


def set_check(
    repo: str,
    head_sha: str,
    name: str,
    *,
    status: CheckStatus | str = CheckStatus.COMPLETED,
    conclusion: CheckConclusion | str | None = None,
    title: str = "",
    summary: str = "",
) -> PlannedRequest:
    """A check run on `head_sha`. A conclusion implies status completed; completed needs one.
    (GitHub lets only GitHub Apps create check runs.)"""
    state = CheckStatus.COMPLETED if conclusion is not None else CheckStatus(status)
    if state is CheckStatus.COMPLETED and conclusion is None:
        raise ValueError("a completed check run needs a conclusion")
    payload: dict[str, Any] = {"name": name, "head_sha": head_sha, "status": state.value}
    if conclusion is not None:
        payload["conclusion"] = CheckConclusion(conclusion).value
    if title or summary:
        payload["output"] = {"title": title or name, "summary": summary}
    text = f"check {name!r} {payload.get('conclusion', state.value)} on {repo}@{head_sha[:12]}"
    return _plan("POST", f"{_repo_path(repo)}/check-runs", payload, text)


def commit_status(
    repo: str,
    sha: str,
    state: StatusState | str,
    context: str,
    description: str,
    target_url: str | None = None,
) -> PlannedRequest:
    """A commit status on `sha` (any token with `repo:status`, not only an App). GitHub keeps
    the last status of each `context`; a description longer than its 140 characters is cut."""
    kind = StatusState(state)
    payload: dict[str, Any] = {
        "state": kind.value,
        "context": context,
        "description": description[:140],
    }
    if target_url is not None:
        payload["target_url"] = target_url
    path = f"{_repo_path(repo)}/statuses/{quote(sha, safe='')}"
    text = f"status {context!r} {kind.value} on {repo}@{sha[:12]}"
    return _plan("POST", path, payload, text)


def add_reaction(
    repo: str,
    number: int | None = None,
    *,
    comment_id: int | None = None,
    content: Reaction | str = Reaction.EYES,
) -> PlannedRequest:
    """A reaction on an issue / pull request (`number`) or on an issue comment (`comment_id`)."""
    if (number is None) == (comment_id is None):
        raise ValueError("add_reaction needs exactly one of number and comment_id")
    emoji = Reaction(content).value
    if comment_id is not None:
        path = f"{_repo_path(repo)}/issues/comments/{comment_id}/reactions"
        return _plan("POST", path, {"content": emoji}, f"react {emoji} to comment {comment_id}")
    path = f"{_repo_path(repo)}/issues/{number}/reactions"
    return _plan("POST", path, {"content": emoji}, f"react {emoji} to {repo}#{number}")


def create_pr(repo: str, title: str, head: str, base: str, body: str = "") -> PlannedRequest:
    payload = {"title": title, "head": head, "base": base, "body": body}
    text = f"open pull request {head} → {base} in {repo}"
    return _plan("POST", f"{_repo_path(repo)}/pulls", payload, text)


def merge_pr(
    repo: str, number: int, method: MergeMethod | str = MergeMethod.SQUASH
) -> PlannedRequest:
    how = MergeMethod(method).value
    path = f"{_repo_path(repo)}/pulls/{number}/merge"
    return _plan("PUT", path, {"merge_method": how}, f"{how}-merge {repo}#{number}")


# --- sending ----------------------------------------------------------------------------


def _repo_of(path: str) -> str | None:
    """`owner/repo` of a `/repos/{owner}/{repo}/...` path (to pick the App installation)."""
    parts = path.split("/")
    return f"{parts[2]}/{parts[3]}" if len(parts) > 3 and parts[1] == "repos" else None


def write_result(body: Any) -> WriteResult:
    """The changed object's id (an issue's number, else `id`, else a merge's `sha`) and URL."""
    if not isinstance(body, Mapping):
        return WriteResult(response={"items": body} if isinstance(body, list) else {})
    found = next((body[k] for k in ("number", "id", "sha") if body.get(k) is not None), None)
    url = body.get("html_url")
    return WriteResult(
        external_id=None if found is None else str(found),
        url=url if isinstance(url, str) else None,
        response=dict(body),
    )


class GitHubWriter(GitHubClient):
    """Sends planned GitHub requests, as a token or an App installation (the one given, the
    configured one, or the one installed on the path's repository)."""

    platform = PLATFORM

    async def send(
        self, request: PlannedRequest, *, installation_id: int | None = None
    ) -> WriteResult:
        if request.platform != PLATFORM:
            raise PlatformPermanentError(
                f"github: cannot send a {request.platform} request", platform=PLATFORM
            )
        gh, inst = await self._client(repo=_repo_of(request.path), installation_id=installation_id)
        what = f"{request.method} {request.path}"
        json_body = dict(request.body) if request.body else None
        response = await self._send(
            what,
            lambda: gh.arequest(request.method, request.path, json=json_body),
            inst,
            write=True,
        )
        if not response.content:
            return WriteResult()
        try:
            return write_result(response.json())
        except ValueError:
            raise PlatformPermanentError(
                f"github: {what} answered with a body that is not JSON", platform=PLATFORM
            ) from None
