"""`when:` filter operators on a GitHub pull request payload."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from taskyard.routing import FilterConfig
from taskyard.routing.filters import failed_filter
from tests.unit.routing.events import load


@pytest.fixture(scope="module")
def pull_request(shared_dir: Path) -> dict[str, Any]:
    payload = load(shared_dir / "webhooks", "github/pull_request.opened.json")
    payload["pull_request"]["labels"] = [{"name": "Bug"}, {"name": "backend"}]
    return payload


@pytest.mark.parametrize(
    "spec",
    [
        {"path": "pull_request.number", "equals": 2},
        {"path": "pull_request.draft", "equals": False},
        {"path": "pull_request.merged_at", "equals": None},
        {"path": "pull_request.labels[].name", "equals": ["Bug", "backend"]},
        {"path": "pull_request.state", "in": ["open", "reopened"]},
        {"path": "pull_request.labels[].name", "in": ["backend", "frontend"]},
        {"path": "pull_request.labels[].name", "contains": "bug"},
        {"path": "pull_request.title", "contains": "UPDATE THE"},
        {"path": "pull_request.title", "regex": "^Update"},
        {"path": "pull_request.number", "regex": "^2$"},
        {"path": "pull_request.labels[].name", "regex": "^back"},
        {"path": "pull_request.head.sha", "exists": True},
        {"path": "pull_request.auto_merge", "exists": False},
        {"path": "pull_request.missing[].name", "exists": False},
        {"path": "pull_request.base.ref", "equals": "main", "not": True},
        {"jmespath": "pull_request.labels[?name=='backend'] | length(@)", "equals": 1},
        {"jmespath": "pull_request.user.login", "in": ["Codertocat"]},
    ],
)
def test_filter_holds(pull_request: dict[str, Any], spec: dict[str, Any]) -> None:
    assert failed_filter(FilterConfig.model_validate(spec), pull_request) is None


@pytest.mark.parametrize(
    "spec",
    [
        {"path": "pull_request.number", "equals": "2"},
        {"path": "pull_request.state", "in": ["closed"]},
        {"path": "pull_request.labels[].name", "contains": "frontend"},
        {"path": "pull_request.title", "regex": "^update"},
        {"path": "pull_request.head.sha", "exists": False},
        {"path": "pull_request.base.ref", "equals": "master", "not": True},
        {"path": "no.such.path", "in": [None, "x"], "not": True},
    ],
)
def test_filter_fails_with_a_description(
    pull_request: dict[str, Any], spec: dict[str, Any]
) -> None:
    reason = failed_filter(FilterConfig.model_validate(spec), pull_request)
    assert reason is not None and reason.startswith(f"filter {spec['path']} ")


def test_custom_reason_and_long_values_are_shortened(pull_request: dict[str, Any]) -> None:
    custom = FilterConfig.model_validate(
        {"path": "pull_request.state", "equals": "closed", "reason": "still open"}
    )
    assert failed_filter(custom, pull_request) == "still open"
    long = FilterConfig.model_validate({"path": "pull_request.body", "equals": "x" * 200})
    reason = failed_filter(long, pull_request) or ""
    assert "…" in reason and len(reason) < 220


def test_a_jmespath_type_error_fails_the_filter_with_the_error(
    pull_request: dict[str, Any],
) -> None:
    flt = FilterConfig.model_validate({"jmespath": "length(pull_request.number)", "equals": 1})
    reason = failed_filter(flt, pull_request) or ""
    assert reason.startswith("filter jmespath(length(pull_request.number)) could not be evaluated")
