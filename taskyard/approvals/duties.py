"""Separation of duties: whoever triggered a task does not approve its risky actions.

A task's trigger is the person whose event started it: its platform and every identity the
event gives for them (a GitHub login and id; a Linear name, email and id; a Slack user id and
name), recorded in the task's spec when routing creates it (`trigger`), or for older tasks read
from the event (its source and actor). A decider is that person when:

- on the same platform, one of the trigger's identities compares equal to the decider's id the
  way the approval policies compare ids (GitHub and Linear ignoring case and a leading `@`);
- as an operator (`cli`, `web`), the name they decide as (`--as`, the API's `as`, else the
  login name or `operator`) is one of the trigger's identities, ignoring case. An operator names
  themselves, so this catches the honest mistake, not a lie: whoever holds the API token can
  change the policies anyway (see `ApprovalPolicies.may_decide`).

- on another platform, when the approval policies' `people` section links the decider's id
  to one of the trigger's (a GitHub login that triggered and the same person's Slack user id).
  Without that link, platforms' ids are not known to be one person.

Unless the risk level's policy says `allow_self_approval: true`, their approval is refused with
`SELF_APPROVAL` and recorded like any other refusal. Rejecting, or asking a question, stays
open to them: it stops or delays their own task's action, it does not let it through.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from taskyard.approvals.policies import ApprovalPolicies, Identity, normal_id
from taskyard.exceptions import NotFound
from taskyard.store.base import Store

SELF_APPROVAL = "you triggered this task; policy requires a different approver"


@dataclass(frozen=True, slots=True)
class Trigger:
    platform: str  # the event's source: github, linear, slack, sentry, discord, …
    ids: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"platform": self.platform, "ids": list(self.ids)}

    @classmethod
    def from_json(cls, data: Any) -> Trigger | None:
        if not isinstance(data, Mapping) or not isinstance(data.get("platform"), str):
            return None
        ids = data.get("ids")
        names = (
            tuple(i for i in ids if isinstance(i, str) and i.strip())
            if isinstance(ids, list)
            else ()
        )
        return cls(data["platform"], names) if names else None

    def is_(self, who: Identity, policies: ApprovalPolicies | None = None) -> bool:
        """Whether `who` is this trigger (see the module's doc); `policies` links people
        across platforms."""
        if who.operator:
            mine = {normal_id("github", i) for i in self.ids}
            return normal_id("github", who.id) in mine
        linked: set[tuple[str, str]] = set()
        for one in self.ids:
            if policies is None:
                linked.add((self.platform, normal_id(self.platform, one)))
            else:
                linked |= policies.identities_of(self.platform, one)
        return (who.platform, normal_id(who.platform, who.id)) in linked


def trigger_of(store: Store, task_id: str) -> Trigger | None:
    """The task's trigger: from its spec, else from its event; None when nobody is named or
    the task is gone. Blocking (store reads)."""
    try:
        task = store.get_task(task_id)
    except NotFound:
        return None
    recorded = Trigger.from_json(task.spec.get("trigger"))
    if recorded is not None:
        return recorded
    try:
        event = store.get_event(task.event_id)
    except NotFound:
        return None
    return Trigger(event.source, (event.actor,)) if event.actor else None
