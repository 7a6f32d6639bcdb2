"""The Slack approval channel: a message with Approve / Deny buttons in one configured channel.

- `announce`: `chat.postMessage` with Block Kit blocks (`request_blocks`): what would change,
  why, the exact requests, the checklist, who may decide (mentioned), an optional reason
  field and the two buttons, whose `value` is the approval id. The stored reference is
  `{"channel", "ts"}` with the channel id Slack answered (a name is not enough to update).
- `decision_in`: a button press arrives as a signed, form-encoded interaction that intake
  stores as `slack:interaction.block_actions`; the button names the decision, its value the
  request, `user.id` the decider (a Slack user id, as the policies name people), and the
  message's reason field (`state.values`), if filled in, the reason or justification.
- `decided`: an accepted decision (or an expiry) rewrites the request message with the
  outcome in place of the buttons (`chat.update`); a decision refused here is explained to
  the one who pressed the button only (`chat.postEphemeral`).

Text that is not ours (summaries, reasoning, paths) is escaped, so it can neither mention
(`<!channel>`) nor link; message parts are trimmed to Slack's limits.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from taskyard.approvals.channels.base import DecisionRequest, Lookup
from taskyard.approvals.policies import ApprovalPolicies, Identity
from taskyard.exceptions import PlatformPermanentError
from taskyard.models import Event
from taskyard.platforms import slack_write
from taskyard.platforms.writes import PlatformWriter
from taskyard.records import Approval, ApprovalStatus, Decision, DecisionOutcome

NAME = "slack"
INTERACTION = "slack:interaction.block_actions"  # the event type intake gives a button press
APPROVE_ACTION = "taskyard_approve"
DENY_ACTION = "taskyard_deny"
ACTIONS_BLOCK = "taskyard_decision"
REASON_BLOCK = "taskyard_reason"  # the input block (and its element's action id)
DENIED_HERE = "denied in Slack"  # a denial's reason when the reason field was left empty
DECISIONS = {APPROVE_ACTION: Decision.APPROVE, DENY_ACTION: Decision.DENY}

# Slack's limits: header text 150, section text 3000, a field 2000, button text 75.
_HEADER_MAX = 150
_SECTION_MAX = 3000
_FIELD_MAX = 2000
_REQUESTS_MAX = 2500  # the code block of requests, before it is cut
_REQUEST_LINES = 15
_USER_ID = re.compile(r"[UW][A-Z0-9]{2,}")
_WORDS = {Decision.APPROVE: "approval", Decision.DENY: "denial"}


@dataclass
class SlackChannel:
    """The `Channel` for Slack (see the module docstring). Without a channel or a writer it
    posts nothing (`wants` is False), and a button press is still read."""

    writer: PlatformWriter | None
    channel: str | None
    policies: ApprovalPolicies
    name: str = field(default=NAME, init=False)

    def wants(self, approval: Approval) -> bool:
        return bool(self.channel) and self.writer is not None

    async def remind(self, approval: Approval, text: str) -> None:
        """A reminder in the request message's thread."""
        where, ts = _posted(approval, None)
        if self.writer is not None and where is not None and ts is not None:
            await self.writer.send(slack_write.post_message(where, escape(text), ts))

    async def announce(self, approval: Approval) -> Mapping[str, Any]:
        writer, channel = self._writer(), self.channel
        if not channel:
            raise PlatformPermanentError("slack approvals: no channel configured", platform=NAME)
        blocks = request_blocks(approval, self.policies)
        result = await writer.send(
            slack_write.post_message(channel, fallback_text(approval), None, blocks)
        )
        if not result.external_id:
            raise PlatformPermanentError("slack: chat.postMessage answered no ts", platform=NAME)
        return {"channel": str(result.response.get("channel") or channel), "ts": result.external_id}

    def decision_in(self, event: Event, payload: Mapping[str, Any]) -> DecisionRequest | None:
        return decision_of(event, payload)

    async def decided(
        self, approval: Approval, outcome: DecisionOutcome, request: DecisionRequest | None
    ) -> None:
        if outcome.accepted:
            await self._rewrite(outcome.approval, request)
        elif request is not None:
            await self._explain(outcome, request)

    async def _rewrite(self, approval: Approval, request: DecisionRequest | None) -> None:
        """The request message with the outcome in place of the buttons (a question asked
        while the request stays pending goes to the message's thread instead)."""
        channel, ts = _posted(approval, request)
        if channel is None or ts is None:
            return
        if approval.status is ApprovalStatus.PENDING:
            if approval.question:
                text = f"❓ More information asked: {escape(approval.question)}"
                await self._writer().send(slack_write.post_message(channel, text, ts))
            return
        blocks = outcome_blocks(approval, self.policies)
        text = f"{outcome_text(approval)} — {escape(approval.summary)}"
        await self._writer().send(slack_write.update_message(channel, ts, text, blocks))

    async def _explain(self, outcome: DecisionOutcome, request: DecisionRequest) -> None:
        """Only the person whose decision was refused hears why."""
        reply = request.reply_to or {}
        channel = reply.get("channel") or _posted(outcome.approval, None)[0]
        if not isinstance(channel, str) or not channel:
            return
        what = _WORDS.get(request.decision, str(request.decision))
        text = (
            f"Your {what} of “{escape(outcome.approval.summary)}” did not count: "
            f"{escape(outcome.why or 'refused')}"
        )
        await self._writer().send(slack_write.post_ephemeral(channel, request.who.id, text))

    def _writer(self) -> PlatformWriter:
        if self.writer is None:
            raise PlatformPermanentError("slack approvals: no Slack writer", platform=NAME)
        return self.writer


# --- reading a button press ---------------------------------------------------------------


def decision_of(event: Event, payload: Mapping[str, Any]) -> DecisionRequest | None:
    """The decision a stored `block_actions` interaction carries: the first of its actions
    that is one of our buttons, pressed by a known user. None for anything else."""
    if event.type != INTERACTION or payload.get("type") != "block_actions":
        return None
    user = _text(payload, "user", "id")
    pressed = _our_action(payload.get("actions"))
    if user is None or pressed is None:
        return None
    decision, approval_id = pressed
    reason = _reason(payload)
    if decision is Decision.DENY and reason is None:
        reason = DENIED_HERE
    reply = {
        "channel": _text(payload, "channel", "id") or _text(payload, "container", "channel_id"),
        "ts": _text(payload, "container", "message_ts") or _text(payload, "message", "ts"),
        "response_url": _text(payload, "response_url"),
    }
    return DecisionRequest(
        lookup=Lookup(approval_id=approval_id),
        decision=decision,
        who=Identity(NAME, user),
        reason=reason,
        reply_to={k: v for k, v in reply.items() if v is not None},
    )


def _our_action(actions: Any) -> tuple[Decision, str] | None:
    for action in actions if isinstance(actions, list) else []:
        if not isinstance(action, Mapping):
            continue
        decision = DECISIONS.get(str(action.get("action_id")))
        value = action.get("value")
        if decision is not None and isinstance(value, str) and value.strip():
            return decision, value.strip()
    return None


def _reason(payload: Mapping[str, Any]) -> str | None:
    """What was typed in the message's reason field before the button was pressed."""
    typed = _text(payload, "state", "values", REASON_BLOCK, REASON_BLOCK, "value")
    if typed is None or not typed.strip():
        return None
    return typed.strip()


def _text(data: Any, *keys: str) -> str | None:
    for key in keys:
        data = data.get(key) if isinstance(data, Mapping) else None
    return data if isinstance(data, str) and data else None


# --- the messages ---------------------------------------------------------------------------


def request_blocks(approval: Approval, policies: ApprovalPolicies) -> list[dict[str, Any]]:
    """The request: what, why, the exact requests, the checklist, who decides, the buttons."""
    details = approval.details
    justify = bool(details.get("justification_required"))
    return [
        *_description(approval, policies),
        {
            "type": "input",
            "block_id": REASON_BLOCK,
            "optional": True,
            "label": _plain(
                "Justification (required to approve)" if justify else "Reason (optional)"
            ),
            "element": {
                "type": "plain_text_input",
                "action_id": REASON_BLOCK,
                "multiline": True,
                "max_length": 2000,
                "placeholder": _plain("Why approve or deny: kept with the decision"),
            },
        },
        {
            "type": "actions",
            "block_id": ACTIONS_BLOCK,
            "elements": [
                _button("Approve", APPROVE_ACTION, approval.id, "primary"),
                _button("Deny", DENY_ACTION, approval.id, "danger"),
            ],
        },
    ]


def outcome_blocks(approval: Approval, policies: ApprovalPolicies) -> list[dict[str, Any]]:
    """The request as it was shown, with the outcome where the buttons were."""
    outcome = {"type": "section", "text": _mrkdwn(_cut(outcome_text(approval), _SECTION_MAX))}
    return [*_description(approval, policies), outcome]


def outcome_text(approval: Approval) -> str:
    if approval.status is ApprovalStatus.EXPIRED:
        return "⌛ Expired — not applied"
    who = mention(approval.decided_by)
    reason = f": {escape(approval.reason)}" if approval.reason else ""
    if approval.status is ApprovalStatus.APPROVED:
        return f"✅ Approved by {who}{reason}"
    if approval.status is ApprovalStatus.DENIED:
        return f"❌ Denied by {who}{reason}"
    return "⏳ Waiting for a decision"


def fallback_text(approval: Approval) -> str:
    """What notifications show (and clients that cannot show blocks)."""
    return _cut(f"Approval needed ({approval.risk} risk): {escape(approval.summary)}", 1000)


def _description(approval: Approval, policies: ApprovalPolicies) -> list[dict[str, Any]]:
    details = approval.details
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": _plain(f"Approval needed: {approval.risk} risk")},
        {
            "type": "section",
            "text": _mrkdwn(_cut(f"*{escape(approval.summary)}*", _SECTION_MAX)),
            "fields": [
                _field("Route", f"`{escape(approval.route)}`"),
                _field("Task", f"`{escape(approval.task_id)}`"),
                _field("Rule", f"`{escape(approval.rule)}`"),
                _field("Expires", slack_date(approval.expires_at)),
            ],
        },
    ]
    reasoning = details.get("reasoning")
    if isinstance(reasoning, str) and reasoning.strip():
        blocks.append(_section(f"*Why*\n{escape(reasoning.strip())}"))
    requests = requests_text(details.get("requests"))
    if requests:
        blocks.append(_section(f"*Requests it would send*\n```\n{requests}\n```"))
    checklist = [c for c in details.get("checklist") or () if isinstance(c, str)]
    if checklist:
        blocks.append(_section("*Check before approving*\n" + _bullets(checklist)))
    blocks.append(_section(f"*Who may decide*\n{deciders(details.get('roles'), policies)}"))
    blocks.append({"type": "context", "elements": [_mrkdwn(f"Approval `{approval.id}`")]})
    return blocks


def requests_text(requests: Any) -> str:
    """`METHOD path` per planned request, escaped; cut to fit a section."""
    lines = [
        f"{r.get('method', '')} {r.get('path', '')}".strip()
        for r in (requests if isinstance(requests, list) else [])
        if isinstance(r, Mapping)
    ]
    shown = lines[:_REQUEST_LINES]
    if len(lines) > len(shown):
        shown.append(f"… and {len(lines) - len(shown)} more")
    return _cut(escape("\n".join(shown)).replace("```", "'''"), _REQUESTS_MAX)


def deciders(roles: Any, policies: ApprovalPolicies) -> str:
    """Each role that may decide with its Slack members mentioned."""
    named = [r for r in roles if isinstance(r, str)] if isinstance(roles, list) else []
    if not named:
        return "No role: only an operator (CLI or API) may decide."
    parts = []
    for role in named:
        try:
            people = policies.people_of(role).get(NAME, ())
        except KeyError:
            people = ()
        shown = ", ".join(mention(f"{NAME}:{p}") for p in people) or "no Slack members"
        parts.append(f"{escape(role)}: {shown}")
    return "; ".join(parts)


def mention(actor: str | None) -> str:
    """`slack:U123` as a mention of that user; any other decider (`github:octocat`,
    `cli:alice`, the expiry) as escaped text."""
    if actor is None:
        return "someone"
    platform, _, who = actor.partition(":")
    if platform == NAME and _USER_ID.fullmatch(who):
        return f"<@{who}>"
    return escape(actor)


def slack_date(ts: float) -> str:
    """A time each reader sees in their own time zone, with UTC for clients that cannot."""
    utc = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts))
    return f"<!date^{int(ts)}^{{date_short_pretty}} at {{time}}|{utc}>"


def escape(text: str) -> str:
    """Slack's mrkdwn control characters, so `<!channel>` or `<http://…|x>` stay text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _button(text: str, action_id: str, value: str, style: str) -> dict[str, Any]:
    return {
        "type": "button",
        "text": _plain(text),
        "action_id": action_id,
        "value": value,
        "style": style,
    }


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": _mrkdwn(_cut(text, _SECTION_MAX))}


def _field(label: str, value: str) -> dict[str, str]:
    return _mrkdwn(_cut(f"*{label}*\n{value}", _FIELD_MAX))


def _bullets(items: Sequence[str]) -> str:
    return "\n".join(f"• {escape(item)}" for item in items)


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": _cut(text, _HEADER_MAX), "emoji": True}


def _mrkdwn(text: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": text}


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _posted(approval: Approval, request: DecisionRequest | None) -> tuple[str | None, str | None]:
    """Where the request message is: as stored when it was posted, else where the button
    that decided it was pressed."""
    ref = approval.channels.get(NAME)
    stored = ref if isinstance(ref, Mapping) else {}
    reply = request.reply_to if request is not None and request.reply_to else {}
    channel = stored.get("channel") or reply.get("channel")
    ts = stored.get("ts") or reply.get("ts")
    return (
        channel if isinstance(channel, str) else None,
        ts if isinstance(ts, str) else None,
    )
