"""Routing records in each task's spec who triggered it (for separation of duties) and the
pull request's base (where its checkout's agent files come from)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from taskyard.config import Settings
from taskyard.models import Event, Priority
from taskyard.routing.job import Pipeline

SHARED = Path(__file__).resolve().parents[3] / "shared" / "webhooks" / "github"


async def test_a_pull_request_task_records_its_trigger_and_base(tmp_path: Path) -> None:
    payload = json.loads((SHARED / "pull_request.opened.json").read_text())
    body = json.dumps(payload).encode()
    event = Event("e1", "github", "github:pull_request.opened", "d1", "Codertocat/Hello-World#2",
                  "Codertocat", 1.0, Priority.P2, {"x-github-event": "pull_request"}, body,
                  hashlib.sha256(body).hexdigest())  # fmt: skip
    settings = Settings.model_validate({"home": tmp_path})
    _decisions, tasks = await Pipeline(settings, None).decide(event)
    [task] = [t for t in tasks if t.route == "pr-review"]
    sender = payload["sender"]
    assert task.spec["trigger"] == {
        "platform": "github",
        "ids": [sender["login"], str(sender["id"])],
    }
    base = payload["pull_request"]["base"]
    assert task.spec["repo"]["base_sha"] == base["sha"]
    assert task.spec["repo"]["base_ref"] == base["ref"]
    assert task.spec["repo"]["pr_number"] == payload["number"]


OWN = {"name": "own", "changes_mode": "suggest", "test_commands": ["tox"], "gates": {"plan": False}}


async def test_a_change_route_takes_its_repository_s_settings_unless_it_has_its_own(
    tmp_path: Path,
) -> None:
    payload = json.loads((SHARED / "pull_request.opened.json").read_text())
    body = json.dumps(payload).encode()
    event = Event("e1", "github", "github:pull_request.opened", "d1", "Codertocat/Hello-World#2",
                  "Codertocat", 1.0, Priority.P2, {"x-github-event": "pull_request"}, body,
                  hashlib.sha256(body).hexdigest())  # fmt: skip
    route = {"on": ["github:pull_request.opened"], "agent": "codex", "mode": "change",
             "repo": True, "who": {"min_permission": "none"}}  # fmt: skip
    settings = Settings.model_validate(
        {
            "home": tmp_path,
            "changes": {
                "repositories": {
                    "Codertocat/Hello-World": {"mode": "push", "test_commands": ["make test"]}
                }
            },
            "routes": [
                {**route, "name": "by-repo"},
                {
                    **route,
                    "name": "own",
                    "changes_mode": "suggest",
                    "test_commands": ["tox"],
                    "gates": {"plan": False},
                },
            ],
        }
    )
    _decisions, tasks = await Pipeline(settings, None).decide(event)
    change = {t.route: t.spec["change"] for t in tasks}
    assert change["by-repo"]["mode"] == "push"
    assert change["by-repo"]["test_commands"] == ["make test"]
    assert change["by-repo"]["reviewer"] == "claude"  # the other CLI
    assert change["own"]["mode"] == "suggest" and change["own"]["test_commands"] == ["tox"]
    assert change["own"]["gates"] == ["plan_review", "implement", "test", "review", "commit"]
