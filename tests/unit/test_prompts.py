"""Prompt templates: every shipped one renders against real payloads; overrides win."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from taskyard.exceptions import ConfigError
from taskyard.prompts import PromptLibrary
from taskyard.results import DEFAULT_RESULT_SCHEMA
from taskyard.routing import default_routes

SHARED = Path(__file__).resolve().parents[3] / "shared" / "webhooks"
PAYLOADS = {
    "pr-review": "github/pull_request.opened.json",
    "linear-triage": "linear/issue.create.json",
    "sentry-triage": "sentry/example-app.issue.created.json",
    "default": "github/issues.opened.json",
}


def variables(payload: Any, **extra: Any) -> dict[str, Any]:
    return {
        "task_id": "t1",
        "route": "r",
        "event": {"subject": "acme/api#7", "actor": "octocat", "type": "x:y.z", "source": "x"},
        "payload": payload,
        "context": {},
        "workspace": "/ws/workspace",
        "repo": "/ws/workspace/repo",
        "context_dir": "/ws/context",
        "output_dir": "/ws/outputs",
        "result_schema": json.dumps(DEFAULT_RESULT_SCHEMA),
        **extra,
    }


def test_every_default_route_has_a_shipped_template() -> None:
    library = PromptLibrary()
    for route in default_routes():
        library.check(route.prompt or "default")
    assert {"pr-review", "linear-triage", "slack-bug-analysis", "sentry-triage", "default"} <= set(
        library.names()
    )
    assert "_result" not in library.names()


@pytest.mark.parametrize("name", sorted(PAYLOADS))
def test_templates_render_real_payloads_and_ask_for_the_result(name: str) -> None:
    path = SHARED / PAYLOADS[name]
    text = PromptLibrary().render(name, variables(json.loads(path.read_text())))
    assert '"summary"' in text and "/ws/outputs/result.json" in text
    assert "no access tokens" in text


def test_slack_template_renders_a_message_event() -> None:
    payload = {"event": {"type": "message", "channel": "C1", "user": "U1", "text": "it broke\nbad"}}
    text = PromptLibrary().render("slack-bug-analysis", variables(payload))
    assert "> it broke\n> bad" in text


def test_override_directory_wins_and_unknown_names_are_refused(tmp_path: Path) -> None:
    (tmp_path / "pr-review.md.j2").write_text("Ours: {{ event.subject }}\n")
    library = PromptLibrary(tmp_path)
    assert library.render("pr-review", variables({})) == "Ours: acme/api#7\n"
    assert "Triage Linear issue" in library.render("linear-triage", variables({}))
    with pytest.raises(ConfigError, match="no prompt template 'nope'"):
        library.check("nope")
    (tmp_path / "broken.md.j2").write_text("{% if %}")
    with pytest.raises(ConfigError, match="prompt template 'broken'"):
        library.check("broken")
