"""The Linear approval channel: each request is a sub-issue of the configured hub issue.

- `announce`: an issue under the hub issue (`LinearApprovalHub.hub_issue_id`), in the hub's
  team (`team_id`, else the hub issue's own), titled `[HIGH] Approval: <summary>`, its
  description saying what would change, why, the exact requests, the checklist, who may
  decide, until when and how; priority from the risk, labels from `hub.labels` (names the
  team does not know are left out). Its id is `approval_issue_id(approval.id)`, so a repeated
  announce cannot make a second issue: Linear refuses the taken id, and the issue is read
  back instead.
- `decision_in`: an `Issue` update of a sub-issue of the hub that moves it to
  `approved_state` / `denied_state`, or adds the `approved_label` / `denied_label` label
  (names compare ignoring case; a change that says both is no decision). The decider is the
  delivery's `actor`: a user by the email or id the approval policies name them by (email
  first), any other actor (an integration, an external user) by its id only, so it never
  borrows a person's email. A delivery without an actor is decided by `NO_ACTOR`, whom no
  policy names: it is refused and recorded. A state or label change carries no reason, so
  a comment on the approval issue decides too: `/approve [reason]`, `/deny <reason>` or
  `/question <question>` as its first line (`Comment.create`; its author decides), which is
  how a justification is given here.
- `decided`: a comment on the issue saying what came of it (approved, denied, expired, more
  information asked, or why a decision made here did not count). The issue is never moved.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Mapping
from typing import Any

from taskyard.actions.directory import LinearDirectory
from taskyard.approvals.channels.base import DecisionRequest, Lookup, parse_command
from taskyard.approvals.channels.markdown import block, code
from taskyard.approvals.policies import ApprovalPolicies, Identity
from taskyard.approvals.risk import RiskLevel
from taskyard.config import LinearApprovalHub
from taskyard.exceptions import PlatformError, PlatformPermanentError
from taskyard.models import Event
from taskyard.platforms.base import LinearReader
from taskyard.platforms.linear import LinearClient
from taskyard.platforms.linear_write import comment_create, issue_create, linear_uuid
from taskyard.platforms.writes import PlatformWriter
from taskyard.records import Approval, ApprovalStatus, Decision, DecisionOutcome

log = logging.getLogger(__name__)

NAME = "linear"
EVENT_TYPE = "linear:Issue.update"
COMMENT_CREATED = "linear:Comment.create"
NO_ACTOR = "(no actor in the delivery)"  # the decider of a delivery that names nobody
PRIORITY = {RiskLevel.CRITICAL: 1, RiskLevel.HIGH: 2, RiskLevel.MEDIUM: 3, RiskLevel.LOW: 4}
MAX_TITLE = 120
MAX_BLOCK = 4000


def approval_issue_id(approval_id: str) -> str:
    """The id of the Linear issue that asks for approval `approval_id` (always the same)."""
    return linear_uuid("approval:" + approval_id)


class LinearChannel:
    """Approval requests as Linear sub-issues (see the module docstring). `reader` finds the
    hub issue's team and reads back an issue already created; without one, the writer is
    used when it is a Linear client (`LinearWriter` is)."""

    name = NAME

    def __init__(
        self,
        writer: PlatformWriter | None,
        hub: LinearApprovalHub,
        policies: ApprovalPolicies,
        directory: LinearDirectory | None = None,
        *,
        reader: LinearReader | None = None,
    ) -> None:
        self._writer = writer
        self._hub = hub
        self._policies = policies
        self._directory = directory
        self._reader = reader if reader is not None else _as_reader(writer)
        self._team_id = hub.team_id

    def wants(self, approval: Approval) -> bool:
        return self._writer is not None and bool(self._hub.hub_issue_id)

    async def announce(self, approval: Approval) -> Mapping[str, Any]:
        """`{"issue_id", "identifier", "url", "team_id"}` of the request's issue."""
        writer, hub_issue = self._writer, self._hub.hub_issue_id
        if writer is None or not hub_issue:
            raise PlatformPermanentError("linear: no approval hub issue", platform=NAME)
        team_id = await self._team(hub_issue)
        issue_id = approval_issue_id(approval.id)
        request = issue_create(
            team_id,
            title_of(approval),
            request_text(approval, self._hub, self._policies),
            PRIORITY[RiskLevel(approval.risk)],
            await self._label_ids(team_id),
            id=issue_id,
            parent_id=hub_issue,
        )
        try:
            result = await writer.send(request)
        except PlatformPermanentError:
            found = await self._existing(issue_id)
            if found is None:
                raise
            log.info(
                "approval issue already posted",
                extra={"approval_id": approval.id, "issue_id": issue_id},
            )
            return _ref(found, issue_id, team_id)
        return _ref(_mapping(result.response.get("issue")), issue_id, team_id)

    def decision_in(self, event: Event, payload: Mapping[str, Any]) -> DecisionRequest | None:
        if event.type == COMMENT_CREATED:
            return self._comment_decision(payload)
        if event.type != EVENT_TYPE:
            return None
        data = _mapping(payload.get("data"))
        issue_id = data.get("id")
        if not isinstance(issue_id, str) or not self._under_hub(data):
            return None
        found = self._decision(data, _mapping(payload.get("updatedFrom")))
        if found is None:
            return None
        decision, how = found
        return DecisionRequest(
            lookup=Lookup(platform=NAME, key="issue_id", value=issue_id),
            decision=decision,
            who=self._identity(payload.get("actor")),
            reason=None,  # a state or label change carries none
            reply_to={"issue_id": issue_id, "how": how},
        )

    def _comment_decision(self, payload: Mapping[str, Any]) -> DecisionRequest | None:
        """A `/approve`, `/deny` or `/question` comment; only on an approval issue (a comment
        anywhere else is routed as usual), and never by taskyard itself (its comments
        start with an emoji, never a command)."""
        data = _mapping(payload.get("data"))
        issue_id = data.get("issueId") or _mapping(data.get("issue")).get("id")
        body = data.get("body")
        command = parse_command(body) if isinstance(body, str) else None
        if command is None or not isinstance(issue_id, str):
            return None
        actor = payload.get("actor")
        if not _mapping(actor):  # older deliveries name the author only by `userId`
            author = data.get("userId") or _mapping(data.get("user")).get("id")
            actor = {"id": author, "type": "user"} if isinstance(author, str) else None
        lookup = (
            Lookup(approval_id=command.approval_id)
            if command.approval_id
            else Lookup(platform=NAME, key="issue_id", value=issue_id)
        )
        return DecisionRequest(
            lookup=lookup,
            decision=command.decision,
            who=self._identity(actor),
            reason=command.reason,
            reply_to={"issue_id": issue_id, "how": "by comment"},
            only_if_known=True,
        )

    async def decided(
        self, approval: Approval, outcome: DecisionOutcome, request: DecisionRequest | None
    ) -> None:
        if self._writer is None:
            return
        posted = _mapping(approval.channels.get(NAME)).get("issue_id")
        issue_id = posted if isinstance(posted, str) else approval_issue_id(approval.id)
        status = outcome.approval.status
        if outcome.accepted:
            text = outcome_text(outcome.approval, request)
        else:
            text = refusal_text(outcome, request)
        # One comment per final outcome, however often it is told (questions may be many).
        final = outcome.accepted and status.decided
        comment_id = linear_uuid(f"approval:{approval.id}:{status}") if final else None
        try:
            await self._writer.send(comment_create(issue_id, text, id=comment_id))
        except PlatformPermanentError:
            if comment_id is None or self._reader is None:
                raise
            if await self._reader.find_comment(comment_id) is None:
                raise

    async def remind(self, approval: Approval, text: str) -> None:
        """A reminder as a comment on the approval issue (once: its id is fixed)."""
        posted = (approval.channels.get(NAME) or {}).get("issue_id")
        if self._writer is None or not isinstance(posted, str):
            return
        comment_id = linear_uuid(f"approval:{approval.id}:reminder")
        await self._writer.send(comment_create(posted, text, id=comment_id))

    # --- announcing ---

    async def _team(self, hub_issue: str) -> str:
        if self._team_id is None:
            if self._reader is None:
                raise PlatformPermanentError(
                    "linear: the approval hub names no team_id and there is no Linear reader "
                    "to find the hub issue's team",
                    platform=NAME,
                )
            self._team_id = await self._reader.issue_team(hub_issue)
        return self._team_id

    async def _label_ids(self, team_id: str) -> list[str]:
        wanted = list(self._hub.labels)
        if not wanted or self._directory is None:
            return []
        try:
            found = (await self._directory.load(team_id)).labels(team_id, wanted)
        except PlatformError as exc:
            log.warning(
                "approval issue labels not resolved", extra={"team_id": team_id, "error": str(exc)}
            )
            return []
        missing = [name for name in wanted if name not in found]
        if missing:
            log.warning(
                "approval issue labels unknown to the team",
                extra={"team_id": team_id, "labels": missing},
            )
        return list(dict.fromkeys(found.values()))

    async def _existing(self, issue_id: str) -> Mapping[str, Any] | None:
        return None if self._reader is None else await self._reader.find_issue(issue_id)

    # --- reading decisions ---

    def _under_hub(self, data: Mapping[str, Any]) -> bool:
        """A sub-issue of the hub. A hub named by its identifier (`OPS-12`) cannot be
        compared with the delivery's `parentId` (a UUID): then the store's lookup decides."""
        hub = self._hub.hub_issue_id
        if not hub:
            return False
        return data.get("parentId") == hub if _is_uuid(hub) else True

    def _decision(
        self, data: Mapping[str, Any], before: Mapping[str, Any]
    ) -> tuple[Decision, str] | None:
        hub = self._hub
        said: dict[Decision, str] = {}
        if "stateId" in before:
            state = _mapping(data.get("state")).get("name")
            for decision in _named(state, hub.approved_state, hub.denied_state):
                said[decision] = f"moved to {state}"
        if "labelIds" in before:
            previous = set(_strings(before.get("labelIds")))
            for label in _mappings(data.get("labels")):
                if label.get("id") in previous:
                    continue
                name = label.get("name")
                for decision in _named(name, hub.approved_label, hub.denied_label):
                    said.setdefault(decision, f"labelled {name}")
        if len(said) != 1:
            return None  # nothing decided, or approved and denied at once
        return next(iter(said.items()))

    def _identity(self, actor: Any) -> Identity:
        """The decider: a user by the email or id the policies name (email first), another
        actor by its id; `NO_ACTOR` when the delivery names nobody."""
        found = _mapping(actor)
        person = found.get("type") in (None, "user")
        names = [found.get("email") if person else None, found.get("id")]
        known = [Identity(NAME, n) for n in names if isinstance(n, str) and n.strip()]
        for identity in known:
            if self._policies.roles_of(identity):
                return identity
        return known[0] if known else Identity(NAME, NO_ACTOR)


# --- what is posted ------------------------------------------------------------------------


def title_of(approval: Approval) -> str:
    """`[HIGH] Approval: <summary>`, on one line, cut to `MAX_TITLE` characters."""
    title = f"[{approval.risk.upper()}] Approval: {' '.join(approval.summary.split())}"
    return title if len(title) <= MAX_TITLE else title[: MAX_TITLE - 1].rstrip() + "…"


def request_text(approval: Approval, hub: LinearApprovalHub, policies: ApprovalPolicies) -> str:
    """The issue's description (markdown): what, why, the exact requests, the checklist, who
    may decide, until when and how."""
    details = approval.details
    parts = [
        "taskyard wants to make the change below and needs a person's decision first.",
        f"**Summary:** {code(approval.summary)}  \n"
        f"**Risk:** {approval.risk} (rule {code(approval.rule)})  \n"
        f"**Task:** {code(approval.task_id)}, route {code(approval.route)}  \n"
        f"**Action:** {code(approval.action_type)} (key {code(approval.action_key)})  \n"
        f"**Approval:** {code(approval.id)}",
        "### Proposed change",
        "**Parameters**\n\n" + block(_json(details.get("params", {})), "json", MAX_BLOCK),
        _reasoning(details.get("reasoning")),
        _requests(details.get("requests")),
        _checklist(details.get("checklist")),
        "### Who may decide\n\n" + deciders(details.get("roles"), policies),
        f"**Expires:** {_utc(approval.expires_at)}. Nobody deciding by then is not a denial, "
        "but the change is not made.",
        _how(approval, hub),
    ]
    return "\n\n".join(p for p in parts if p)


def deciders(roles: Any, policies: ApprovalPolicies) -> str:
    """One line per role with its Linear users, e.g. `- **lead**: alice@example.com`."""
    named = [str(r) for r in roles] if isinstance(roles, list) else []
    if not named:
        return "No role is configured for this risk level: only an operator can decide."
    return "\n".join(f"- **{role}**: {_people(role, policies)}" for role in named)


def _people(role: str, policies: ApprovalPolicies) -> str:
    try:
        people = policies.people_of(role)[NAME]
    except KeyError:
        return "(the role is not defined)"
    listed = ", ".join(code(p) for p in people)
    return listed or "no Linear user is configured (they may decide on another channel)"


def _reasoning(reasoning: Any) -> str:
    if not isinstance(reasoning, str) or not reasoning.strip():
        return "**Reasoning:** (none given)"
    return "**Reasoning**\n\n" + block(reasoning.strip(), "text", MAX_BLOCK)


def _requests(requests: Any) -> str:
    shown = []
    for n, request in enumerate(_mappings(requests), start=1):
        call = code(
            f"{request.get('method', '?')} {request.get('platform', '?')} "
            f"{request.get('path', '?')}"
        )
        said = request.get("description")
        head = f"{n}. {call}" + (f" — {said}" if isinstance(said, str) and said else "")
        shown.append(head + "\n\n" + block(_json(request.get("body", {})), "json", MAX_BLOCK))
    return "**The requests it would send**\n\n" + ("\n\n".join(shown) or "(none recorded)")


def _checklist(checklist: Any) -> str:
    items = _strings(checklist)
    return "### Checklist\n\n" + "\n".join(f"- [ ] {c}" for c in items) if items else ""


def _how(approval: Approval, hub: LinearApprovalHub) -> str:
    text = (
        "### How to decide\n\n"
        f"- **Approve**: move this issue to **{hub.approved_state}**, or add the label "
        f"**{hub.approved_label}**.\n"
        f"- **Deny**: move this issue to **{hub.denied_state}**, or add the label "
        f"**{hub.denied_label}**.\n\n"
        "- **Or comment** with `/approve <reason>`, `/deny <reason>` or "
        "`/question <what you need to know>` as the first line (a question keeps the request "
        "open).\n\n"
        "A state or label change carries no reason: a comment gives one. A decision by "
        "someone without one of the roles above is refused and recorded."
    )
    if approval.details.get("justification_required") is True:
        text += (
            "\n\nThis risk level needs a written justification to approve, which a state or "
            "label change cannot give: approve by comment, `/approve <justification>`."
        )
    return text


def outcome_text(approval: Approval, request: DecisionRequest | None) -> str:
    """What came of the request (as stored after the decision), and how it was decided
    when it was decided here."""
    who = approval.decided_by or "someone"
    reason = " ".join((approval.reason or "").split())
    texts = {
        ApprovalStatus.APPROVED: f"✅ **Approved** by {code(who)}: the change is being made.",
        ApprovalStatus.DENIED: f"❌ **Denied** by {code(who)}: the change will not be made.",
        ApprovalStatus.EXPIRED: f"⌛ **Expired** at {_utc(approval.expires_at)} with no "
        "decision: the change will not be made.",
        ApprovalStatus.PENDING: f"❓ {code(who)} asks for more information: "
        f"{' '.join((approval.question or '').split()) or '(no question)'}",
    }
    text = texts[approval.status]
    how = _mapping(request.reply_to).get("how") if request is not None else None
    if request is not None and how != "by comment":
        text += f"\n\nDecided here ({how or 'on this issue'}); a state or label change carries "
        text += "no reason, so a comment may give it."
    elif reason and approval.status.decided:
        text += f"\n\nReason: {reason}"
    return text


def refusal_text(outcome: DecisionOutcome, request: DecisionRequest | None) -> str:
    """Why a decision made here did not count (the issue is left where it was moved)."""
    by = f" by {code(f'{request.who.platform}:{request.who.id}')}" if request else ""
    verb = f" {request.decision}" if request else ""
    return (
        f"⚠️ The{verb} decision{by} did not count: {outcome.why or 'it was refused'}. "
        f"The request is still **{outcome.approval.status}**; taskyard does not move this "
        "issue back."
    )


# --- helpers -------------------------------------------------------------------------------


def _ref(issue: Mapping[str, Any], issue_id: str, team_id: str) -> dict[str, Any]:
    return {
        "issue_id": str(issue.get("id") or issue_id),
        "identifier": issue.get("identifier"),
        "url": issue.get("url"),
        "team_id": team_id,
    }


def _as_reader(writer: PlatformWriter | None) -> LinearReader | None:
    return writer if isinstance(writer, LinearClient) else None


def _named(name: Any, approved: str, denied: str) -> list[Decision]:
    if not isinstance(name, str):
        return []
    wanted = name.strip().casefold()
    pairs = ((Decision.APPROVE, approved), (Decision.DENY, denied))
    return [d for d, said in pairs if said.strip().casefold() == wanted]


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _mappings(value: Any) -> list[Mapping[str, Any]]:
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


def _strings(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list | tuple) else []


def _utc(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts))


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)
