"""In-memory platform clients for tests, populated with dicts.

A missing record answers like the platform's 404 (`PlatformPermanentError`, status 404).
`errors[method]` makes a method raise; `delays[method]` makes it wait first (for timeouts).
`calls` records every call as (method, args)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from taskyard.exceptions import PlatformError, PlatformPermanentError
from taskyard.platforms.base import JSONObject

Key = tuple[str, int]


@dataclass
class _Recorder:
    platform: str = ""
    errors: dict[str, PlatformError] = field(default_factory=dict)
    delays: dict[str, float] = field(default_factory=dict)
    calls: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)
    closed: bool = False

    async def _enter(self, method: str, *args: Any) -> None:
        self.calls.append((method, args))
        if method in self.delays:
            await asyncio.sleep(self.delays[method])
        if method in self.errors:
            raise self.errors[method]

    def _missing(self, what: str) -> PlatformPermanentError:
        return PlatformPermanentError(
            f"{self.platform}: {what} answered 404 (not found; permanent)",
            platform=self.platform,
            status=404,
        )

    async def aclose(self) -> None:
        self.closed = True


@dataclass
class FakeGitHub(_Recorder):
    platform: str = "github"
    pulls: dict[Key, JSONObject] = field(default_factory=dict)
    diffs: dict[Key, str] = field(default_factory=dict)
    files: dict[Key, list[JSONObject]] = field(default_factory=dict)
    issues: dict[Key, JSONObject] = field(default_factory=dict)
    comments: dict[Key, list[JSONObject]] = field(default_factory=dict)
    reviews: dict[Key, list[JSONObject]] = field(default_factory=dict)
    permissions: dict[tuple[str, str], str] = field(default_factory=dict)  # (repo, login)
    teams: dict[tuple[str, str], set[str]] = field(default_factory=dict)  # (org, slug) → logins

    async def pull_request(
        self, repo: str, number: int, *, installation_id: int | None = None
    ) -> JSONObject:
        await self._enter("pull_request", repo, number, installation_id)
        if (repo, number) not in self.pulls:
            raise self._missing(f"GET /repos/{repo}/pulls/{number}")
        return self.pulls[(repo, number)]

    async def pull_request_diff(
        self, repo: str, number: int, *, installation_id: int | None = None
    ) -> JSONObject:
        await self._enter("pull_request_diff", repo, number, installation_id)
        if (repo, number) not in self.diffs:
            raise self._missing(f"GET /repos/{repo}/pulls/{number} (diff)")
        diff = self.diffs[(repo, number)]
        return {
            "repo": repo,
            "number": number,
            "diff": diff,
            "bytes": len(diff.encode()),
            "truncated": False,
        }

    async def pull_request_files(
        self, repo: str, number: int, *, installation_id: int | None = None
    ) -> JSONObject:
        await self._enter("pull_request_files", repo, number, installation_id)
        if (repo, number) not in self.files:
            raise self._missing(f"GET /repos/{repo}/pulls/{number}/files")
        files = self.files[(repo, number)]
        return {"repo": repo, "number": number, "files": files, "truncated": False}

    async def issue(
        self, repo: str, number: int, *, installation_id: int | None = None
    ) -> JSONObject:
        await self._enter("issue", repo, number, installation_id)
        if (repo, number) not in self.issues:
            raise self._missing(f"GET /repos/{repo}/issues/{number}")
        return self.issues[(repo, number)]

    async def issue_comments(
        self, repo: str, number: int, *, installation_id: int | None = None
    ) -> JSONObject:
        await self._enter("issue_comments", repo, number, installation_id)
        comments = self.comments.get((repo, number), [])
        return {"repo": repo, "number": number, "comments": comments, "truncated": False}

    async def all_issue_comments(
        self, repo: str, number: int, *, installation_id: int | None = None
    ) -> list[JSONObject]:
        await self._enter("all_issue_comments", repo, number, installation_id)
        return list(self.comments.get((repo, number), []))

    async def pull_request_reviews(
        self, repo: str, number: int, *, installation_id: int | None = None
    ) -> list[JSONObject]:
        await self._enter("pull_request_reviews", repo, number, installation_id)
        return list(self.reviews.get((repo, number), []))

    async def recent_issues(
        self, repo: str, *, pages: int = 3, installation_id: int | None = None
    ) -> list[JSONObject]:
        await self._enter("recent_issues", repo, pages, installation_id)
        found = [i for (r, _), i in self.issues.items() if r == repo]
        return sorted(found, key=lambda i: -int(i.get("number", 0)))

    async def recent_pull_requests(
        self, repo: str, *, pages: int = 3, installation_id: int | None = None
    ) -> list[JSONObject]:
        await self._enter("recent_pull_requests", repo, pages, installation_id)
        found = [p for (r, _), p in self.pulls.items() if r == repo]
        return sorted(found, key=lambda p: -int(p.get("number", 0)))

    async def permission(
        self, repo_full_name: str, login: str, *, installation_id: int | None = None
    ) -> str | None:
        await self._enter("permission", repo_full_name, login, installation_id)
        return self.permissions.get((repo_full_name, login))

    async def in_team(
        self, org: str, team_slug: str, login: str, *, installation_id: int | None = None
    ) -> bool:
        await self._enter("in_team", org, team_slug, login, installation_id)
        return login in self.teams.get((org, team_slug), set())


@dataclass
class FakeLinear(_Recorder):
    platform: str = "linear"
    issues: dict[str, JSONObject] = field(default_factory=dict)
    related_issues: dict[str, list[JSONObject]] = field(default_factory=dict)
    teams: dict[str, JSONObject] = field(default_factory=dict)
    directories: dict[str, JSONObject] = field(default_factory=dict)  # team id → directory
    comment_refs: dict[str, JSONObject] = field(default_factory=dict)  # comment id → {id, url}

    async def issue(self, issue_id: str) -> JSONObject:
        await self._enter("issue", issue_id)
        if issue_id not in self.issues:
            raise self._missing(f"issue {issue_id}")
        return self.issues[issue_id]

    async def related(
        self, issue_id: str, *, title: str | None = None, team_id: str | None = None
    ) -> JSONObject:
        await self._enter("related", issue_id, title, team_id)
        hits = self.related_issues.get(issue_id, [])
        return {"issue_id": issue_id, "term": title, "issues": hits[:5]}

    async def issue_team(self, issue_id: str) -> str:
        await self._enter("issue_team", issue_id)
        team = (self.issues.get(issue_id) or {}).get("team") or {}
        if "id" not in team:
            raise self._missing(f"issue {issue_id}")
        return str(team["id"])

    async def team(self, team_id: str) -> JSONObject:
        await self._enter("team", team_id)
        if team_id not in self.teams:
            raise self._missing(f"team {team_id}")
        return self.teams[team_id]

    async def team_directory(self, team_id: str) -> JSONObject:
        await self._enter("team_directory", team_id)
        if team_id not in self.directories:
            raise self._missing(f"team {team_id}")
        return self.directories[team_id]

    async def find_issue(self, issue_id: str) -> JSONObject | None:
        await self._enter("find_issue", issue_id)
        issue = self.issues.get(issue_id)
        if issue is None:
            return None
        return {k: issue.get(k) for k in ("id", "identifier", "url")}

    async def find_comment(self, comment_id: str) -> JSONObject | None:
        await self._enter("find_comment", comment_id)
        return self.comment_refs.get(comment_id)


@dataclass
class FakeSlack(_Recorder):
    platform: str = "slack"
    threads: dict[tuple[str, str], list[JSONObject]] = field(default_factory=dict)

    async def thread(self, channel: str, thread_ts: str) -> JSONObject:
        await self._enter("thread", channel, thread_ts)
        if (channel, thread_ts) not in self.threads:
            raise self._missing(f"conversations.replies {channel} {thread_ts}")
        messages = self.threads[(channel, thread_ts)]
        return {"channel": channel, "thread_ts": thread_ts, "messages": messages, "has_more": False}


@dataclass
class FakeSentry(_Recorder):
    platform: str = "sentry"
    issues: dict[str, JSONObject] = field(default_factory=dict)
    events: dict[str, JSONObject] = field(default_factory=dict)  # issue id → latest event

    async def issue(self, issue_id: str, *, organization: str | None = None) -> JSONObject:
        await self._enter("issue", issue_id, organization)
        if issue_id not in self.issues:
            raise self._missing(f"GET /api/0/issues/{issue_id}/")
        return self.issues[issue_id]

    async def latest_event(self, issue_id: str, *, organization: str | None = None) -> JSONObject:
        await self._enter("latest_event", issue_id, organization)
        if issue_id not in self.events:
            raise self._missing(f"GET /api/0/issues/{issue_id}/events/latest/")
        return self.events[issue_id]
