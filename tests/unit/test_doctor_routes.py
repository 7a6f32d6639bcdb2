"""`taskyard doctor` checks every route's prompt and agent, naming what is missing."""

from __future__ import annotations

import json
import os
from pathlib import Path

from taskyard.config import load_settings
from taskyard.service.doctor import _route_checks


def settings(tmp_path: Path, agents: dict[str, object], prompt: str = "default") -> object:
    path = tmp_path / "taskyard.yaml"
    routes = [{"name": "r", "on": ["github:issues.opened"], "agent": "a", "prompt": prompt}]
    path.write_text(json.dumps({"home": str(tmp_path), "agents": agents, "routes": routes}))
    return load_settings(path, {})


def test_a_usable_route_and_the_ways_one_is_not(tmp_path: Path) -> None:
    fake = tmp_path / "codex"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    good = settings(tmp_path, {"a": {"kind": "codex", "binary": str(fake), "api_key": "k"}})
    [(ok, line)] = list(_route_checks(good, {"PATH": os.environ["PATH"]}))  # type: ignore[arg-type]
    assert ok and str(fake) in line

    no_key = settings(tmp_path, {"a": {"kind": "codex", "binary": str(fake)}})
    [(ok, line)] = list(_route_checks(no_key, {}))  # type: ignore[arg-type]
    assert not ok and "no model key" in line and "OPENAI_API_KEY" in line

    missing = settings(tmp_path, {"a": {"kind": "claude", "binary": "no-such-claude"}})
    [(ok, line)] = list(_route_checks(missing, {"PATH": "/nonexistent"}))  # type: ignore[arg-type]
    assert not ok and "'no-such-claude' not found" in line

    bad_prompt = settings(tmp_path, {"a": {"kind": "command", "argv": ["true"]}}, "nope")
    [(ok, line)] = list(_route_checks(bad_prompt, {}))  # type: ignore[arg-type]
    assert not ok and "no prompt template 'nope'" in line
