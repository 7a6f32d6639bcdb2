"""Model scripts: the format users write to dry-run routes against the scripted model."""

from __future__ import annotations

from pathlib import Path

import pytest

from taskyard.devtools.model_script import TurnKind, load_script, parse_script
from taskyard.exceptions import ConfigError

EXAMPLE = """
scripts:
  - name: pr-review
    match: "pr-review"
    usage: {input_tokens: 120, output_tokens: 40}
    turns:
      - shell: "git -C repo log --oneline | head -3"
      - final: {success: true, actions: [], analysis: "ok", summary: "fine"}
  - turns:
      - error: {status: 529, message: "overloaded"}
      - hang: true
      - final: "plain text"
"""


def test_the_documented_example_loads(tmp_path: Path) -> None:
    path = tmp_path / "script.yaml"
    path.write_text(EXAMPLE)
    script = load_script(path)

    review, other = script.scripts
    assert review.name == "pr-review"
    assert other.name == "script 2"
    assert [t.kind for t in review.turns] == [TurnKind.SHELL, TurnKind.FINAL]
    assert [t.kind for t in other.turns] == [TurnKind.ERROR, TurnKind.HANG, TurnKind.FINAL]
    assert review.usage.input_tokens == 120
    assert other.usage.input_tokens == 100  # the default, so runs always report usage
    assert review.turns[1].final_text() == (
        '{"success": true, "actions": [], "analysis": "ok", "summary": "fine"}'
    )
    assert other.turns[0].error is not None
    assert other.turns[0].error.status == 529


def test_json_scripts_load(tmp_path: Path) -> None:
    path = tmp_path / "script.json"
    path.write_text('{"scripts": [{"turns": [{"final": {"ok": true}}]}]}')

    assert load_script(path).scripts[0].turns[0].final == {"ok": True}


def test_the_first_matching_script_wins() -> None:
    script = parse_script(
        {
            "scripts": [
                {"name": "a", "match": "alpha", "turns": [{"final": "a"}]},
                {"name": "any", "turns": [{"final": "any"}]},
                {"name": "b", "match": "beta", "turns": [{"final": "b"}]},
            ]
        }
    )

    picked = [script.pick(prompt) for prompt in ("an alpha prompt", "a beta prompt")]
    assert [c.name if c else None for c in picked] == ["a", "any"]


def test_no_match_is_none() -> None:
    script = parse_script({"scripts": [{"match": "x", "turns": [{"final": "a"}]}]})

    assert script.pick("y") is None
    assert script.scripts[0].turn(1) is None


@pytest.mark.parametrize(
    ("data", "complaint"),
    [
        ({"scripts": []}, "at least 1"),
        ({"scripts": [{"turns": []}]}, "at least 1"),
        ({"scripts": [{"turns": [{}]}]}, "exactly one of"),
        ({"scripts": [{"turns": [{"shell": "ls", "final": "x"}]}]}, "exactly one of"),
        ({"scripts": [{"turns": [{"hang": False}]}]}, "hang: true"),
        ({"scripts": [{"turns": [{"error": {"status": 200}}]}]}, "greater than or equal to 400"),
        ({"scripts": [{"turns": [{"shel": "ls"}]}]}, "shel"),
        ({"scripts": [{"turns": [{"final": ["a list"]}]}]}, "final"),
        (["not", "a", "mapping"], "must be a mapping"),
    ],
)
def test_bad_scripts_are_config_errors(data: object, complaint: str) -> None:
    with pytest.raises(ConfigError, match="model script") as caught:
        parse_script(data)
    assert complaint in str(caught.value)


def test_unreadable_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read model script"):
        load_script(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("scripts: [\n")
    with pytest.raises(ConfigError, match="cannot read model script"):
        load_script(bad)
