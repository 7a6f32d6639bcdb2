"""The real tools of a task: one per registered action type, and optional reads.

`ActionTools` is the `ToolHandler` the worker serves on the task's tool socket. An action tool
(`add_labels`, `comment`, … one per entry of `taskyard.actions.models.REGISTRY`) takes the
action's params, plus an optional `reasoning`, and hands them to the injected `ApplyOne`,
which validates, asks the policy, and applies (or records a dry run); the stored
`ActionRecord` it returns becomes the agent's answer:

| record | answer |
|---|---|
| applied | ok, "applied: <type>[ — <url>]" |
| dry_run | ok, "recorded in dry-run mode (nothing was sent): <planned requests>" |
| skipped as already applied | ok, "already applied earlier in this task: <url or key>" |
| skipped as invalid (invalid params, unknown type) | not ok, "invalid <type>: <why>" |
| skipped otherwise (the policy's reason, a denial) | not ok, "not allowed: <why>" |
| failed | not ok, "failed: <why>" |
| proposed | not ok, "in progress" |

Input schemas are the params models' JSON schemas with every `$ref` inlined (some agent CLIs
reject references). `ReadTools` adds `get_issue`, `search_issues` and `get_pr_diff` on the
task's GitHub repository and Linear workspace, through the platform readers.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from taskyard.actions.models import REGISTRY, ActionSpec, Registry, Target
from taskyard.actions.service import TaskActions
from taskyard.exceptions import PlatformError
from taskyard.platforms.base import GitHubReader, JSONObject, LinearReader
from taskyard.platforms.clients import Platforms
from taskyard.records import ActionRecord, ActionStatus, SkipKind
from taskyard.tools.base import ToolAnswer, ToolHandler, ToolSpec
from taskyard.util.untrusted import clean_json, clean_text

ApplyOne = Callable[[str, dict[str, Any], str], Awaitable[ActionRecord]]
"""`(action type, params, reasoning) -> the stored ActionRecord` after validation, policy and
apply (or dry run)."""

REASONING = "reasoning"
_REASONING_SCHEMA: Mapping[str, Any] = {
    "type": "string",
    "description": "One sentence: why you take this action.",
}

# One sentence per action type: what it does and where (see taskyard.actions.planner).
DESCRIPTIONS: Mapping[str, str] = {
    "add_labels": "Add labels to the task's GitHub issue or pull request, or to its Linear "
    "issue (label names of the issue's team, or label ids).",
    "remove_labels": "Remove labels from the task's GitHub issue or pull request (GitHub only).",
    "set_priority": "Set the priority of the task's Linear issue, P0 (urgent) to P3 (low) "
    "(Linear only).",
    "set_state": "Move the task's Linear issue to a workflow state, by name (e.g. Done) or id "
    "(Linear only).",
    "assign": "Assign the task's GitHub issue or pull request to GitHub logins, or the task's "
    "Linear issue to one user (name or id).",
    "comment": "Post a comment on the task's GitHub issue or pull request or Linear issue, or "
    "reply in the task's Slack thread.",
    "create_issue": "Open a new issue: in the task's GitHub repository for a GitHub task, "
    "otherwise in the task's (or the configured default) Linear team.",
    "review": "Submit a review (summary, verdict, optional inline comments) on the task's "
    "GitHub pull request (GitHub only).",
    "set_check": "Report a check run (name, conclusion, title, summary) on the task's GitHub "
    "head commit (GitHub only).",
    "close_issue": "Close the task's GitHub issue with a reason (GitHub only; on Linear use "
    "set_state).",
    "create_pr": "Open a pull request (a draft unless draft is false) from a pushed branch in "
    "the task's GitHub repository (GitHub only).",
    "merge_pr": "Merge the task's GitHub pull request (squash unless method says otherwise; "
    "GitHub only).",
    "mention_users": "Mention users with a message: a comment on the task's GitHub or Linear "
    "issue, or a reply in its Slack thread.",
    "post_channel": "Post a message to a Slack channel: the one named in channel, or else the "
    "task's own Slack channel.",
    "react": "React with an emoji to the task's GitHub issue or pull request, or to its Slack "
    "message (GitHub allows +1, -1, laugh, confused, heart, hooray, rocket, eyes).",
    "run_command": "Run a command as an action (taskyard runs none: run commands yourself "
    "during the task instead).",
}

# Where a params model accepts more than its generated schema says (a `mode="before"`
# validator parses it), the property as the agent should see it.
PROPERTY_SCHEMAS: Mapping[tuple[str, str], Mapping[str, Any]] = {
    ("set_priority", "priority"): {
        "type": "string",
        "enum": ["P0", "P1", "P2", "P3"],
        "description": "P0 is the most urgent, P3 the least.",
    },
    ("create_issue", "priority"): {
        "type": "string",
        "enum": ["P0", "P1", "P2", "P3"],
        "description": "Linear only: P0 is the most urgent, P3 the least.",
    },
    ("react", "emoji"): {
        "type": "string",
        "minLength": 1,
        "description": "An emoji name such as eyes or +1, with or without colons.",
    },
}


# --- schemas ---------------------------------------------------------------------------


def inline_refs(schema: Mapping[str, Any]) -> dict[str, Any]:
    """`schema` with every `{"$ref": "#/$defs/X"}` replaced by the definition of X (merged
    with the reference's sibling keywords) and `$defs` dropped. Raises ValueError for a
    reference elsewhere or a recursive definition, which cannot be inlined."""
    defs = schema.get("$defs") or {}

    def resolve(node: Any, seen: tuple[str, ...]) -> Any:
        if isinstance(node, list):
            return [resolve(item, seen) for item in node]
        if not isinstance(node, Mapping):
            return node
        out: dict[str, Any] = {}
        ref = node.get("$ref")
        if ref is not None:
            name = str(ref).removeprefix("#/$defs/")
            if name == ref or name not in defs:
                raise ValueError(f"cannot inline the schema reference {ref!r}")
            if name in seen:
                raise ValueError(f"cannot inline the recursive schema {name!r}")
            out.update(resolve(defs[name], (*seen, name)))
        for key, value in node.items():
            if key not in ("$ref", "$defs"):
                out[key] = resolve(value, seen)
        return out

    resolved: dict[str, Any] = resolve(schema, ())
    return resolved


def action_schema(spec: ActionSpec) -> dict[str, Any]:
    """The input schema of `spec`'s tool: its params, inlined, plus `reasoning`."""
    schema = inline_refs(spec.params.model_json_schema())
    properties = dict(schema.get("properties") or {})
    if REASONING in properties:
        raise ValueError(f"{spec.type} params may not have a field named {REASONING!r}")
    for name in properties:
        override = PROPERTY_SCHEMAS.get((spec.type, name))
        if override is not None:
            properties[name] = dict(override)
    schema["properties"] = {**properties, REASONING: dict(_REASONING_SCHEMA)}
    schema.pop("title", None)
    return schema


def action_tool(spec: ActionSpec) -> ToolSpec:
    description = DESCRIPTIONS.get(spec.type, f"Propose a {spec.type} action.")
    return ToolSpec(spec.type, description, action_schema(spec))


# --- answers ---------------------------------------------------------------------------


def _data(record: ActionRecord) -> dict[str, Any]:
    return {
        "key": record.key,
        "status": str(record.status),
        "external_id": record.external_id,
        "url": record.url,
        "reason": record.reason,
    }


def _applied(record: ActionRecord) -> ToolAnswer:
    where = f" — {record.url}" if record.url else ""
    return ToolAnswer(True, f"applied: {record.type}{where}", _data(record))


def _request_words(request: Mapping[str, Any]) -> str:
    described = request.get("description")
    if described:
        return str(described)
    return " ".join(str(request.get(k, "")) for k in ("platform", "method", "path")).strip()


def _dry_run(record: ActionRecord) -> ToolAnswer:
    planned = "; ".join(_request_words(r) for r in record.requests) or "no requests"
    return ToolAnswer(
        True, f"recorded in dry-run mode (nothing was sent): {planned}", _data(record)
    )


def _skipped(record: ActionRecord) -> ToolAnswer:
    reason = record.reason or ""
    if record.skipped_as is SkipKind.ALREADY_APPLIED:
        where = record.url or record.key
        return ToolAnswer(True, f"already applied earlier in this task: {where}", _data(record))
    if record.skipped_as is SkipKind.INVALID:
        why = reason.removeprefix(f"invalid params for {record.type}: ")
        return ToolAnswer(False, f"invalid {record.type}: {why}", _data(record))
    refused = ToolAnswer.refused(reason or "the policy refused it")
    return ToolAnswer(refused.ok, refused.text, _data(record))


def _failed(record: ActionRecord) -> ToolAnswer:
    return ToolAnswer(False, f"failed: {record.reason or 'no reason recorded'}", _data(record))


def _proposed(record: ActionRecord) -> ToolAnswer:
    return ToolAnswer(False, "in progress", _data(record))


_ANSWERS: Mapping[ActionStatus, Callable[[ActionRecord], ToolAnswer]] = {
    ActionStatus.APPLIED: _applied,
    ActionStatus.DRY_RUN: _dry_run,
    ActionStatus.SKIPPED: _skipped,
    ActionStatus.FAILED: _failed,
    ActionStatus.PROPOSED: _proposed,
}


def record_answer(record: ActionRecord) -> ToolAnswer:
    """What the agent is told about its action, from the stored record."""
    return _ANSWERS[record.status](record)


# --- the handler -----------------------------------------------------------------------


class ActionTools:
    """The `ToolHandler` of a task: its action tools, and the read tools when `reads` is
    given. Arguments arrive valid for the tool's schema (the bridge checks them)."""

    def __init__(
        self, apply_one: ApplyOne, reads: ReadTools | None = None, registry: Registry = REGISTRY
    ) -> None:
        self._apply_one = apply_one
        self._reads = reads
        self._types = frozenset(registry)
        specs = [action_tool(spec) for spec in registry.values()]
        read_specs = reads.tools() if reads is not None else []
        clash = self._types & {s.name for s in read_specs}
        if clash:
            raise ValueError(f"action types clash with read tools: {sorted(clash)}")
        self._specs = (*specs, *read_specs)

    def tools(self) -> list[ToolSpec]:
        return list(self._specs)

    async def call(self, name: str, arguments: dict[str, Any]) -> ToolAnswer:
        if name in self._types:
            params = dict(arguments)
            reasoning = params.pop(REASONING, None)
            record = await self._apply_one(name, params, str(reasoning or ""))
            return record_answer(record)
        if self._reads is not None:
            return await self._reads.call(name, arguments)
        return ToolAnswer(False, f"unknown tool: {name}")


# --- reads -----------------------------------------------------------------------------

GET_ISSUE = ToolSpec(
    "get_issue",
    "Read a GitHub issue or pull request of the task's repository (with its comments) by "
    "number, or a Linear issue by id; without arguments, the task's own issue.",
    {
        "type": "object",
        "properties": {
            "number": {
                "type": "integer",
                "minimum": 1,
                "description": "A GitHub issue or pull request number in the task's repository.",
            },
            "id": {
                "type": "string",
                "minLength": 1,
                "description": "A Linear issue id or identifier, e.g. ENG-123.",
            },
        },
        "additionalProperties": False,
    },
)
SEARCH_ISSUES = ToolSpec(
    "search_issues",
    "Search Linear issues by text (in the task's Linear team when it has one), e.g. for "
    "duplicates; answers the best few matches.",
    {
        "type": "object",
        "properties": {
            "query": {"type": "string", "minLength": 1, "description": "Words to search for."},
            "limit": {
                "type": "integer",
                "minimum": 1,
                "maximum": 50,
                "description": "At most this many issues (taskyard may return fewer).",
            },
            "platform": {
                "type": "string",
                "enum": ["linear", "github"],
                "description": "Where to search (default: the task's platform, or Linear).",
            },
        },
        "required": ["query"],
        "additionalProperties": False,
    },
)
GET_PR_DIFF = ToolSpec(
    "get_pr_diff",
    "Read the unified diff of a pull request in the task's GitHub repository (default: the "
    "task's own pull request).",
    {
        "type": "object",
        "properties": {
            "number": {
                "type": "integer",
                "minimum": 1,
                "description": "The pull request number.",
            }
        },
        "additionalProperties": False,
    },
)
DEFAULT_SEARCH_LIMIT = 5
T = TypeVar("T")


class _Unanswerable(Exception):
    """A read that cannot be made; never leaves `ReadTools.call` (the text is the answer)."""


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


class ReadTools:
    """Reads for the agent: GitHub issues and pull request diffs in the task's repository,
    Linear issues and search. A platform without a reader (no credentials) answers "not
    available"; a platform error answers its message (which never holds a credential).
    Answers are cut at `max_chars` characters, with a note."""

    def __init__(
        self,
        target: Target,
        github: GitHubReader | None,
        linear: LinearReader | None,
        max_chars: int = 60_000,
        *,
        installation_id: int | None = None,
    ) -> None:
        if max_chars < 1:
            raise ValueError("max_chars must be positive")
        self.target = target
        self.github = github
        self.linear = linear
        self.max_chars = max_chars
        self.installation_id = installation_id
        self._handlers: Mapping[str, Callable[[dict[str, Any]], Awaitable[ToolAnswer]]] = {
            GET_ISSUE.name: self._get_issue,
            SEARCH_ISSUES.name: self._search_issues,
            GET_PR_DIFF.name: self._get_pr_diff,
        }

    def tools(self) -> list[ToolSpec]:
        return [GET_ISSUE, SEARCH_ISSUES, GET_PR_DIFF]

    async def call(self, name: str, arguments: dict[str, Any]) -> ToolAnswer:
        handler = self._handlers.get(name)
        if handler is None:
            return ToolAnswer(False, f"unknown tool: {name}")
        try:
            return await handler(arguments)
        except _Unanswerable as exc:
            return ToolAnswer(False, str(exc))
        except PlatformError as exc:
            return ToolAnswer(False, str(exc))

    # --- the tools ---

    async def _get_issue(self, args: dict[str, Any]) -> ToolAnswer:
        if "id" in args and "number" in args:
            raise _Unanswerable("give number (GitHub) or id (Linear), not both")
        if "id" in args:
            return await self._linear_issue(str(args["id"]))
        if "number" in args:
            return await self._github_issue(int(args["number"]))
        if self.target.platform == "linear":
            return await self._linear_issue(self._own("id", "Linear issue", self.target.issue_id))
        if self.target.platform == "github":
            return await self._github_issue(
                self._own("number", "GitHub issue or pull request", self.target.number)
            )
        raise _Unanswerable(
            "give number (an issue of the task's GitHub repository) or id (a Linear issue): "
            f"the task's {self.target.platform} event has no issue"
        )

    async def _github_issue(self, number: int) -> ToolAnswer:
        github, repo = self._github(), self._repo()
        issue = await github.issue(repo, number, installation_id=self.installation_id)
        comments = await github.issue_comments(repo, number, installation_id=self.installation_id)
        return self._json({"repo": repo, "issue": issue, "comments": comments.get("comments")})

    async def _linear_issue(self, issue_id: str) -> ToolAnswer:
        return self._json(await self._linear().issue(issue_id))

    async def _search_issues(self, args: dict[str, Any]) -> ToolAnswer:
        query = str(args["query"]).strip()
        if not query:
            raise _Unanswerable("give a query: it is empty")
        limit = int(args.get("limit") or DEFAULT_SEARCH_LIMIT)
        default = self.target.platform if self.target.platform == "github" else "linear"
        platform = str(args.get("platform") or default)
        if platform == "github":
            return await self._search_github(query, limit)
        if platform != "linear":
            raise _Unanswerable(
                f"not available: search_issues searches GitHub or Linear, not {platform}"
            )
        found = await self._linear().related(
            self.target.issue_id or "", title=query, team_id=self.target.team_id
        )
        issues = found.get("issues")
        hits = list(issues)[:limit] if isinstance(issues, list) else []
        return self._json({"platform": "linear", "query": query, "issues": hits})

    async def _search_github(self, query: str, limit: int) -> ToolAnswer:
        """The repository's newest issues and pull requests (a few hundred) whose title or
        body holds every word of the query."""
        repo = self._repo()
        words = [w.lower() for w in query.split()]
        recent = await self._github().recent_issues(repo, installation_id=self.installation_id)
        hits = []
        for issue in recent:
            text = f"{issue.get('title') or ''} {issue.get('body') or ''}".lower()
            if all(w in text for w in words):
                hits.append({k: issue.get(k) for k in ("number", "title", "state", "html_url")})
        result = {"platform": "github", "repo": repo, "query": query, "issues": hits[:limit]}
        return self._json(result)

    async def _get_pr_diff(self, args: dict[str, Any]) -> ToolAnswer:
        if "number" in args:
            number = int(args["number"])
        else:
            own = self.target.number if self.target.platform == "github" else None
            number = self._own("number", "GitHub pull request", own)
            if self.target.pull_request is False:
                raise _Unanswerable(
                    f"give number: the task's #{number} is an issue, not a pull request"
                )
        github, repo = self._github(), self._repo()
        found = await github.pull_request_diff(repo, number, installation_id=self.installation_id)
        return self._diff(repo, number, found)

    # --- helpers ---

    def _github(self) -> GitHubReader:
        if self.github is None:
            raise _Unanswerable("not available: github has no credentials configured")
        return self.github

    def _linear(self) -> LinearReader:
        if self.linear is None:
            raise _Unanswerable("not available: linear has no credentials configured")
        return self.linear

    def _repo(self) -> str:
        if self.target.repo is None:
            raise _Unanswerable("not available: the task has no GitHub repository")
        return self.target.repo

    def _own(self, param: str, what: str, value: T | None) -> T:
        """The task's own `what`, when the agent did not give `param`."""
        if value is None:
            raise _Unanswerable(f"give {param}: the task's event names no {what}")
        return value

    def _cut(self, text: str) -> tuple[str, bool]:
        if len(text) <= self.max_chars:
            return text, False
        note = f"\n[taskyard cut this answer: {self.max_chars} of {len(text)} characters shown]"
        return text[: self.max_chars] + note, True

    def _json(self, value: JSONObject) -> ToolAnswer:
        value = clean_json(value)  # hidden text out, as in context/ (taskyard.util.untrusted)
        text, cut = self._cut(_compact(value))
        return ToolAnswer(True, text, {"truncated": True} if cut else value)

    def _diff(self, repo: str, number: int, found: JSONObject) -> ToolAnswer:
        diff = clean_text(str(found.get("diff") or ""), mark=True)
        text, cut = self._cut(diff) if diff else ("(the pull request changes nothing)", False)
        if found.get("truncated") and not cut:
            text += f"\n[only the first part of the {found.get('bytes')}-byte diff was read]"
        truncated = cut or bool(found.get("truncated"))
        data = {"repo": repo, "number": number, "bytes": found.get("bytes"), "truncated": truncated}
        return ToolAnswer(True, text, data)


def tools_for(platforms: Platforms) -> Callable[[TaskActions], ToolHandler]:
    """The MCP tools of one task: its action types (through the task's `TaskActions`) and
    the read tools on its target."""

    def build(acts: TaskActions) -> ToolHandler:
        reads = ReadTools(acts.target, platforms.github, platforms.linear)
        return ActionTools(acts.apply_tool_call, reads)

    return build
