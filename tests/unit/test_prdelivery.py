"""Whether a fix's pull request is a draft (`PullRequestDelivery.is_draft`): from the delivery
when it says, else asked of GitHub (a conversation comment's `issue` carries no draft flag)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from taskyard.config.changes import ChangesConfig
from taskyard.models import Event, Priority
from taskyard.run.delivery import Delivery, GitRemote
from taskyard.run.prdelivery import PullRequestDelivery
from taskyard.run.taskspec import TaskSpec
from taskyard.store.memory import MemoryStore

SHARED = Path(__file__).resolve().parents[3] / "shared" / "webhooks" / "github"


def event_of(name: str, kind: str, payload: Mapping[str, Any]) -> Event:
    body = json.dumps(payload).encode()
    return Event("e1", "github", f"github:{kind}", "d1", "Codertocat/Hello-World#2",
                 "Codertocat", 1.0, Priority.P2, {"x-github-event": name}, body,
                 hashlib.sha256(body).hexdigest())  # fmt: skip


SPEC = TaskSpec("pr-fix", "codex", "pr-fix", repo={"full_name": "Codertocat/Hello-World",
                                                   "pr_number": 2})  # fmt: skip


def delivery(read: list[tuple[str, int]], draft: bool) -> PullRequestDelivery:
    async def read_pull(repo: str, number: int) -> Mapping[str, Any]:
        read.append((repo, number))
        return {"number": number, "draft": draft}

    async def send(request: Any) -> Any:
        raise AssertionError("nothing is sent")

    made = Delivery(send, ChangesConfig(), GitRemote(lambda repo: repo))
    return PullRequestDelivery(made, read_pull, MemoryStore())


async def test_a_comment_s_pull_request_is_asked_of_github() -> None:
    payload = json.loads((SHARED / "issue_comment.created.json").read_text())
    payload["issue"].pop("draft", None)
    read: list[tuple[str, int]] = []
    event = event_of("issue_comment", "issue_comment.created", payload)
    assert await delivery(read, draft=True).is_draft(SPEC, event) is True
    assert read == [("Codertocat/Hello-World", 2)]
    assert await delivery([], draft=False).is_draft(SPEC, event) is False


async def test_a_review_comment_says_itself() -> None:
    payload = json.loads((SHARED / "pull_request_review_comment.created.json").read_text())
    payload["pull_request"]["draft"] = True
    read: list[tuple[str, int]] = []
    event = event_of("pull_request_review_comment", "pull_request_review_comment.created", payload)
    assert await delivery(read, draft=False).is_draft(SPEC, event) is True
    assert read == []  # the delivery said
