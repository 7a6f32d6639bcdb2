"""GitHub as an approval channel: the request as a comment on the task's pull request or issue,
decisions as `/approve` and `/deny` comments there, the outcome as a reply.

A decision is a new comment (`issue_comment.created`; edits never decide) whose first line is

    /approve [APPROVAL-ID] [reason…]
    /deny [APPROVAL-ID] <reason…>
    /question [APPROVAL-ID] <question…>      (also `/more-info`: more information required)

(any case). The id (32 hex characters, as `taskyard.models.new_id` makes them) may be left out:
the request is then the one pending on that pull request or issue, found by the `thread`
(`owner/repo#N`, lower case) stored with the post; with several pending there, the decision is
refused and the answer lists their ids (`ApprovalChannels`), and so is one whose only pending
request was created after the comment was written (its writer cannot have seen it: the
request they meant was decided meanwhile, and another took its place). The reason is the
rest of the line and the lines after it. Comments by bots (`user.type == "Bot"`) and by
taskyard's own login are never decisions. Who may decide is the policies' business
(`Decisions`), not this channel's: a comment by anyone is read, and a refusal is answered
on the thread.

Everything posted goes through `github_write.comment` and the writer; errors propagate as
PlatformError (the composite `ApprovalChannels` logs them). Text an agent wrote (params,
reasoning, the summary) is shown inside code spans and blocks, so it can neither mention
people nor forge markup.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from taskyard.actions.keys import with_marker
from taskyard.approvals.channels.base import (
    APPROVAL_ID,
    Command,
    DecisionRequest,
    Lookup,
    parse_command,
)
from taskyard.approvals.channels.markdown import block, code
from taskyard.approvals.policies import ApprovalPolicies, Identity
from taskyard.exceptions import PlatformPermanentError
from taskyard.models import Event
from taskyard.platforms import github_write
from taskyard.platforms.screen import parse_time
from taskyard.platforms.writes import PlatformWriter
from taskyard.records import Approval, ApprovalStatus, Decision, DecisionOutcome

NAME = "github"
COMMENT_CREATED = "github:issue_comment.created"
__all__ = ["APPROVAL_ID", "Command", "GitHubChannel", "parse_command"]
THREAD_KEY = "thread"  # the key of the stored ref a decision without an id is found by
MAX_BLOCK = 20_000  # characters of params or reasoning shown (a comment holds 65,536)

_VERB_OF = {Decision.APPROVE: "approve", Decision.DENY: "deny", Decision.MORE_INFO: "question"}


def thread_key(repo: str, number: int) -> str:
    """`owner/repo#N` in lower case (GitHub names ignore case), as stored and looked up."""
    return f"{repo.lower()}#{number}"


@dataclass(frozen=True, slots=True)
class Thread:
    """A pull request or issue to comment on."""

    repo: str
    number: int

    @classmethod
    def of(cls, raw: Any) -> Thread | None:
        """From a mapping with `repo` and `number` (a ref, a `reply_to`, a task's target)."""
        if not isinstance(raw, Mapping):
            return None
        repo, number = raw.get("repo"), raw.get("number")
        if not isinstance(repo, str) or repo.count("/") != 1:
            return None
        if isinstance(number, bool) or not isinstance(number, int) or number <= 0:
            return None
        return cls(repo, number)

    @property
    def key(self) -> str:
        return thread_key(self.repo, self.number)


class GitHubChannel:
    """The `Channel` on the pull request or issue a task came from."""

    name = NAME

    def __init__(
        self,
        writer: PlatformWriter | None,
        policies: ApprovalPolicies,
        bot_login: str | None = None,
    ) -> None:
        self.writer = writer
        self.policies = policies
        self.bot_login = _login(bot_login) if bot_login else None

    def wants(self, approval: Approval) -> bool:
        return self.writer is not None and _target(approval) is not None

    async def announce(self, approval: Approval) -> Mapping[str, Any]:
        thread = _target(approval)
        if self.writer is None or thread is None:
            raise PlatformPermanentError(
                f"github: approval {approval.id} has no pull request or issue to post on",
                platform=NAME,
            )
        body = with_marker(request_text(approval, self.policies), f"approval:{approval.id}")
        sent = await self.writer.send(github_write.comment(thread.repo, thread.number, body))
        comment_id = sent.external_id
        return {
            "repo": thread.repo,
            "number": thread.number,
            THREAD_KEY: thread.key,
            "comment_id": int(comment_id) if comment_id and comment_id.isdigit() else comment_id,
            "url": sent.url,
        }

    def decision_in(self, event: Event, payload: Mapping[str, Any]) -> DecisionRequest | None:
        if event.type != COMMENT_CREATED:
            return None
        comment = _mapping(payload.get("comment"))
        user = _mapping(comment.get("user"))
        login, body = user.get("login"), comment.get("body")
        if not isinstance(login, str) or not login.strip() or not isinstance(body, str):
            return None
        if user.get("type") == "Bot" or _login(login) == self.bot_login:
            return None
        command = parse_command(body)
        repo = _mapping(payload.get("repository")).get("full_name")
        thread = Thread.of({"repo": repo, "number": _mapping(payload.get("issue")).get("number")})
        if command is None or thread is None:
            return None
        lookup = (
            Lookup(approval_id=command.approval_id)
            if command.approval_id
            else Lookup(platform=NAME, key=THREAD_KEY, value=thread.key)
        )
        reply_to = {
            "repo": thread.repo,
            "number": thread.number,
            "comment_id": comment.get("id"),
            "url": comment.get("html_url"),
        }
        who = Identity(NAME, login.strip())
        made_at = parse_time(comment.get("created_at"))
        return DecisionRequest(
            lookup, command.decision, who, command.reason, reply_to, made_at=made_at
        )

    async def decided(
        self, approval: Approval, outcome: DecisionOutcome, request: DecisionRequest | None
    ) -> None:
        writer = self.writer
        here = Thread.of(request.reply_to) if request is not None else None
        if writer is None:
            return
        if not outcome.accepted:
            if request is not None and here is not None:
                await _comment(
                    writer, here, refusal_text(approval, outcome, request, self.policies)
                )
            return
        text = outcome_text(outcome.approval)
        posted = Thread.of(approval.channels.get(NAME))
        threads: dict[str, Thread] = {}  # where it was announced, then where it was decided
        for thread in (posted, here):
            if thread is not None and threads.setdefault(thread.key, thread) is thread:
                await _comment(writer, thread, text)

    async def remind(self, approval: Approval, text: str) -> None:
        """A reminder on the pull request the request was posted on."""
        thread = Thread.of(approval.channels.get(NAME))
        if self.writer is not None and thread is not None:
            await _comment(self.writer, thread, text)


async def _comment(writer: PlatformWriter, thread: Thread, body: str) -> None:
    await writer.send(github_write.comment(thread.repo, thread.number, body))


# --- what is posted ----------------------------------------------------------------------


def request_text(approval: Approval, policies: ApprovalPolicies) -> str:
    """The request as a comment: what, why, what it would send, what to check, who decides,
    until when, and how."""
    details = approval.details
    where = "pull request" if _mapping(details.get("target")).get("pull_request") else "issue"
    parts = [
        f"### 🔐 Approval needed: {approval.risk} risk `{approval.action_type}`",
        f"taskyard wants to do this and needs a person's decision first.\n\n"
        f"**Summary:** {code(approval.summary)}  \n"
        f"**Risk:** {approval.risk}, by rule {code(approval.rule)}  \n"
        f"**Approval:** `{approval.id}` (task `{approval.task_id}`, route {code(approval.route)})",
        _requests_section(details.get("requests")),
        "**Parameters**\n\n" + block(_json(details.get("params", {})), "json", MAX_BLOCK),
        _reasoning_section(details.get("reasoning")),
        _checklist_section(details.get("checklist")),
        f"**Who may decide:** {deciders(details.get('roles'), policies)}  \n"
        f"**Expires:** {_utc(approval.expires_at)} (nobody deciding by then means it is not "
        "applied)",
        _how_section(where, approval),
    ]
    return "\n\n".join(p for p in parts if p)


def deciders(roles: Any, policies: ApprovalPolicies, *, mention: bool = True) -> str:
    """`maintainer (@octocat, @hubot), lead (no GitHub login configured)`; without `mention`
    the logins as code (a refusal answers whoever asked without calling the deciders)."""
    named = [str(r) for r in roles] if isinstance(roles, list) else []
    if not named:
        return "no role is configured for this risk level (only an operator can decide)"
    return ", ".join(f"{role} ({_people(role, policies, mention)})" for role in named)


def _people(role: str, policies: ApprovalPolicies, mention: bool) -> str:
    try:
        logins = policies.people_of(role)[NAME]
    except KeyError:
        logins = ()
    shown = [f"@{_login(p)}" if mention else f"`{_login(p)}`" for p in logins]
    return ", ".join(shown) or "no GitHub login configured"


def _requests_section(requests: Any) -> str:
    rows = []
    for raw in requests if isinstance(requests, list) else []:
        request = _mapping(raw)
        call = code(f"{request.get('method', '?')} {request.get('path', '?')}")
        said = request.get("description")
        rows.append(f"- {call} — {code(said)}" if isinstance(said, str) and said else f"- {call}")
    return "**Requests it would send**\n\n" + ("\n".join(rows) or "- (none recorded)")


def _reasoning_section(reasoning: Any) -> str:
    if not isinstance(reasoning, str) or not reasoning.strip():
        return "**Reasoning:** (none given)"
    return "**Reasoning**\n\n" + block(reasoning.strip(), "text", MAX_BLOCK)


def _checklist_section(checklist: Any) -> str:
    items = [str(c) for c in checklist] if isinstance(checklist, list) else []
    return "**Checklist**\n\n" + "\n".join(f"- [ ] {c}" for c in items) if items else ""


def _how_section(where: str, approval: Approval) -> str:
    justify = approval.details.get("justification_required") is True
    approve = "`/approve <reason>` (a reason is required)" if justify else "`/approve [reason]`"
    return (
        f"**To decide**, comment on this {where} with {approve} or `/deny <reason>` as its "
        "first line; `/question <what you need to know>` asks the agent's side for more "
        "information and keeps the request open. If more than one request is pending here, "
        f"name this one: `/approve {approval.id} …` or `/deny {approval.id} …`."
    )


def outcome_text(approval: Approval) -> str:
    """What came of the request, as stored after the decision."""
    said = _OUTCOMES.get(approval.status)
    text = said(approval) if said else f"Approval `{approval.id}` is now {approval.status}."
    return f"{text}\n\n<sub>approval `{approval.id}`: {code(approval.summary)}</sub>"


def _decided(mark: str, verb: str, then: str) -> Callable[[Approval], str]:
    def text(a: Approval) -> str:
        reason = " ".join((a.reason or "").split())
        because = f": {reason}" if reason else ""
        return f"{mark} {verb} by {_actor(a.decided_by)}{because} — the action {then}"

    return text


def _expired(a: Approval) -> str:
    return f"⌛ expired at {_utc(a.expires_at)} with no decision — the action will not be applied"


def _asked(a: Approval) -> str:
    question = " ".join((a.question or "").split())
    return f"❓ {_actor(a.decided_by)} asks for more information: {question or '(no question)'}"


_OUTCOMES: Mapping[ApprovalStatus, Callable[[Approval], str]] = {
    ApprovalStatus.APPROVED: _decided("✅", "approved", "is being applied"),
    ApprovalStatus.DENIED: _decided("❌", "denied", "will not be applied"),
    ApprovalStatus.EXPIRED: _expired,
    ApprovalStatus.PENDING: _asked,  # an accepted MORE_INFO keeps the request pending
}


def refusal_text(
    approval: Approval,
    outcome: DecisionOutcome,
    request: DecisionRequest,
    policies: ApprovalPolicies,
) -> str:
    """The answer to a decision that did not count, to the person who made it."""
    why = outcome.why or "it was refused"
    text = (
        f"@{_login(request.who.id)} your `/{_VERB_OF[request.decision]}` on approval "
        f"`{approval.id}` "
        f"did not count: {why}."
    )
    if why.startswith("not authorised"):
        who = deciders(approval.details.get("roles"), policies, mention=False)
        text += f"\n\nWho may decide: {who}."
    return text


# --- helpers -----------------------------------------------------------------------------


def _target(approval: Approval) -> Thread | None:
    target = _mapping(approval.details.get("target"))
    return Thread.of(target) if target.get("platform") == NAME else None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _login(login: str) -> str:
    return login.strip().removeprefix("@").lower()


def _actor(decided_by: str | None) -> str:
    """`github:octocat` → `@octocat`; another platform's id as code."""
    if decided_by is None:
        return "someone"
    platform, _, who = decided_by.partition(":")
    return f"@{who}" if platform == NAME and who else code(decided_by)


def _utc(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts))


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)
