"""An idea as the CLI (`--json`) and the API show it."""

from __future__ import annotations

from typing import Any

from taskyard.idea import Idea
from taskyard.records import iso

# What an origin may hold that nobody should see again: a Discord interaction's token lets
# whoever holds it post as taskyard for 15 minutes.
PRIVATE_ORIGIN = frozenset({"token"})


def idea_json(idea: Idea) -> dict[str, Any]:
    return {
        "id": idea.id,
        "status": str(idea.status),
        "goal": idea.goal,
        "shape": dict(idea.shape),
        "origin": {k: v for k, v in idea.origin.items() if k not in PRIVATE_ORIGIN},
        "reason": idea.reason,
        "plan_version": idea.plan_version,
        "branch": idea.branch,
        "pr_url": idea.pr_url,
        "budget_usd": idea.budget_usd,
        "created_at": iso(idea.created_at),
        "updated_at": iso(idea.updated_at),
        "last_seq": idea.last_seq,
    }
