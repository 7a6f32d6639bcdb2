"""The default result schema: the original design's example result, and text, both validate."""

from __future__ import annotations

from typing import Any

import pytest

from taskyard.run.results import DEFAULT_RESULT_SCHEMA, analysis_text, validation_errors

# The example result of the original design (an object of findings as `analysis`).
DESIGN_EXAMPLE: dict[str, Any] = {
    "success": True,
    "actions": [
        {
            "type": "add_labels",
            "params": {"labels": ["bug", "backend"]},
            "reasoning": "a crash in the API server",
        },
        {"type": "set_priority", "params": {"priority": 1}, "reasoning": "users are blocked"},
        {
            "type": "add_comment",
            "params": {"body": "Looks like a null check in the session handler."},
            "reasoning": "tell the reporter what was found",
        },
    ],
    "analysis": {"type": "bug", "severity": "P1", "component": "backend", "complexity": 3},
    "summary": "Backend bug, P1: labelled and commented.",
}


def test_the_design_example_result_validates() -> None:
    assert validation_errors(DESIGN_EXAMPLE, DEFAULT_RESULT_SCHEMA) == []


def test_text_analysis_still_validates() -> None:
    result = {**DESIGN_EXAMPLE, "analysis": "## Findings\nA null check is missing."}
    assert validation_errors(result, DEFAULT_RESULT_SCHEMA) == []


@pytest.mark.parametrize("analysis", [3, ["bug"], None, True])
def test_other_analysis_shapes_are_refused(analysis: Any) -> None:
    errors = validation_errors({**DESIGN_EXAMPLE, "analysis": analysis}, DEFAULT_RESULT_SCHEMA)
    assert errors and errors[0].startswith("analysis:")


def test_analysis_is_shown_as_text_or_indented_json() -> None:
    assert analysis_text("plain") == "plain"
    assert analysis_text(None) == "(none)"
    shown = analysis_text({"type": "bug", "complexity": 3})
    assert '"type": "bug"' in shown and "\n" in shown
