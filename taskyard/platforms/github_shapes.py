"""What taskyard keeps of GitHub's REST answers: compact JSON objects for `context/*.json`.

Read tolerantly (`.get`), because GitHub's own published examples omit fields its schema
calls required (githubkit's strict models reject them); the contract tests feed these
functions the examples of GitHub's OpenAPI description."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from taskyard.platforms.base import JSONObject


def _obj(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else []


def user(value: Any) -> str | None:
    login = _obj(value).get("login")
    return login if isinstance(login, str) else None


def _label_names(value: Any) -> list[str]:
    names = (_obj(label).get("name") if isinstance(label, Mapping) else label for label in value)
    return [n for n in names if isinstance(n, str)]


def _ref(value: Any) -> JSONObject:
    ref = _obj(value)
    return {
        "ref": ref.get("ref"),
        "sha": ref.get("sha"),
        "repo": _obj(ref.get("repo")).get("full_name"),
    }


def pull_request(raw: Mapping[str, Any]) -> JSONObject:
    keys = ("number", "title", "body", "state", "draft", "merged", "html_url", "created_at")
    summary: JSONObject = {key: raw.get(key) for key in keys}
    summary.update(
        author=user(raw.get("user")),
        author_association=raw.get("author_association"),
        labels=_label_names(_list(raw.get("labels"))),
        head=_ref(raw.get("head")),
        base=_ref(raw.get("base")),
        requested_reviewers=[user(u) for u in _list(raw.get("requested_reviewers"))],
        updated_at=raw.get("updated_at"),
        mergeable=raw.get("mergeable"),
        commits=raw.get("commits"),
        additions=raw.get("additions"),
        deletions=raw.get("deletions"),
        changed_files=raw.get("changed_files"),
    )
    return summary


def changed_file(raw: Mapping[str, Any]) -> JSONObject:
    keys = ("filename", "status", "additions", "deletions", "changes", "previous_filename")
    summary: JSONObject = {key: raw.get(key) for key in keys if key in raw}
    summary["patch"] = raw.get("patch")
    return summary


def issue(raw: Mapping[str, Any]) -> JSONObject:
    keys = ("number", "title", "body", "state", "state_reason", "html_url", "created_at")
    summary: JSONObject = {key: raw.get(key) for key in keys}
    summary.update(
        author=user(raw.get("user")),
        author_association=raw.get("author_association"),
        labels=_label_names(_list(raw.get("labels"))),
        assignees=[user(u) for u in _list(raw.get("assignees"))],
        comments=raw.get("comments"),
        updated_at=raw.get("updated_at"),
        is_pull_request="pull_request" in raw,
    )
    return summary


def comment(raw: Mapping[str, Any]) -> JSONObject:
    return {
        "id": raw.get("id"),
        "author": user(raw.get("user")),
        "author_association": raw.get("author_association"),
        "body": raw.get("body"),
        "created_at": raw.get("created_at"),
        "updated_at": raw.get("updated_at"),  # later than created_at once edited
        "html_url": raw.get("html_url"),
    }
