"""`taskyard policy check` as a subprocess on the shipped examples: what it prints and its exit
codes (0 allow, 1 deny, 3 approval needed, 2 bad file or input); and a decision recorded in
a real store's audit chain, which verifies."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.resources import files
from pathlib import Path

from taskyard.audit import verify_chain
from taskyard.policy.engine import evaluate, record
from taskyard.policy.rules import Point, load_policy
from taskyard.store import SQLStore

EXAMPLES = str(files("taskyard.policy") / "examples" / "policies.yaml")
SATURDAY = "2026-03-28T12:00:00Z"
WEDNESDAY = "2026-03-25T12:00:00Z"


def check(tmp_path: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "taskyard", "policy", "check", *args],
        cwd=tmp_path,
        env={**os.environ, "TASKYARD_HOME": str(tmp_path / "home")},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_freeze_denies_and_names_rule_and_reason(tmp_path: Path) -> None:
    data = tmp_path / "input.json"
    data.write_text(json.dumps({"environment": "production", "time": SATURDAY}))
    done = check(tmp_path, EXAMPLES, "--input", str(data), "--point", "pre_deploy")
    assert done.returncode == 1, done.stderr
    assert done.stdout == (
        "pre_deploy: deny\n"
        "  weekend-freeze [deny]: production deploys are frozen from Friday 18:00 to "
        "Monday 06:00 (Europe/Berlin)\n"
    )


def test_approval_needed_exits_3_with_json(tmp_path: Path) -> None:
    given = json.dumps({"labels": ["security"], "time": WEDNESDAY})
    done = check(tmp_path, EXAMPLES, "--input", "-", "--point", "pre_merge", "--json", stdin=given)
    assert done.returncode == 3, done.stderr
    out = json.loads(done.stdout)
    assert out["pre_merge"]["outcome"] == "approve"
    assert out["pre_merge"]["risk"] == "high"
    assert [f["rule"] for f in out["pre_merge"]["fired"]] == ["high-risk-label"]


def test_allow_exits_0_at_every_point(tmp_path: Path) -> None:
    done = check(tmp_path, EXAMPLES, "--input", json.dumps({"time": WEDNESDAY}))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "scheduling: allow",
        "  no rule fired",
        "pre_merge: allow",
        "  no rule fired",
        "pre_deploy: allow",
        "  no rule fired",
    ]


def test_bad_file_or_input_exits_2_saying_why(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - id: broken\n    point: pre_merge\n    when: 'x >'\n"
                   "    outcome: deny\n    reason: r\n")  # fmt: skip
    done = check(tmp_path, str(bad), "--input", "{}")
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: {bad}:4: rule 'broken': `when` does not compile")
    assert done.stdout == ""
    for args, words in [
        (["--input", "{not json"], "input is not JSON"),
        (["--input", '{"colour": 1}'], "unknown input names ['colour']"),
        (["--input", "{}", "--point", "post_deploy"], "unknown point 'post_deploy'"),
        (["--input", str(tmp_path / "missing.json")], "cannot read input"),
    ]:
        done = check(tmp_path, EXAMPLES, *args)
        assert done.returncode == 2, args
        assert words in done.stderr, (args, done.stderr)


def test_record_writes_a_verifiable_entry(store_url: str) -> None:
    store = SQLStore.open(store_url)
    store.migrate()
    try:
        data = {"environment": "production", "time": SATURDAY}
        decision = evaluate(load_policy(EXAMPLES), Point.PRE_DEPLOY, data)
        entry = record(store, decision, Point.PRE_DEPLOY, "idea-1", 1700000000.0)
        (stored,) = store.audit_entries()
        assert stored == entry
        assert stored.data["outcome"] == "deny"
        assert [f["rule"] for f in stored.data["fired"]] == ["weekend-freeze"]
        assert verify_chain([stored]) == []
    finally:
        store.close()
