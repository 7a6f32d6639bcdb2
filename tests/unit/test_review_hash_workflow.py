"""deploy/github/review-hash.yml, the workflow users copy into their repositories: it parses,
checks out the pull request's own commits with their history, installs the taskyard release
this repository is, and runs a `review-hash verify` the CLI has, with no expression pasted
into a shell script; the README names it and its required check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

import taskyard
from taskyard.cli.main import app

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / "deploy" / "github" / "review-hash.yml"


@pytest.fixture(scope="module")
def workflow() -> dict[Any, Any]:
    loaded = yaml.safe_load(WORKFLOW.read_text())
    assert isinstance(loaded, dict)
    return loaded


def steps(workflow: dict[Any, Any]) -> list[dict[str, Any]]:
    (job,) = workflow["jobs"].values()
    found: list[dict[str, Any]] = job["steps"]
    return found


def step_using(workflow: dict[Any, Any], action: str) -> dict[str, Any]:
    (found,) = (s for s in steps(workflow) if s.get("uses", "").startswith(action + "@"))
    return found


def test_it_runs_on_pull_requests_with_read_only_contents(workflow: dict[Any, Any]) -> None:
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert isinstance(triggers, dict) and "pull_request" in triggers
    assert workflow["permissions"] == {"contents": "read"}


def test_it_checks_out_the_pull_requests_head_with_its_history(workflow: dict[Any, Any]) -> None:
    checkout = step_using(workflow, "actions/checkout")["with"]
    assert checkout["fetch-depth"] == 0
    assert checkout["ref"] == "${{ github.event.pull_request.head.sha }}"  # not the merge commit
    assert checkout["persist-credentials"] is False
    assert step_using(workflow, "actions/setup-python")["with"]["python-version"] == "3.11"


def test_it_installs_this_release_and_runs_verify_over_the_pull_request(
    workflow: dict[Any, Any],
) -> None:
    # taskyard is not on PyPI: the spec names a git tag of this release, to be pointed at the
    # repository the user's taskyard comes from.
    spec = workflow["env"]["TASKYARD_PIP_SPEC"]
    assert spec.startswith("taskyard @ git+https://") and spec.endswith(f"@v{taskyard.__version__}")
    runs = [s for s in steps(workflow) if "run" in s]
    assert 'pip install "${TASKYARD_PIP_SPEC}"' in runs[0]["run"]
    verify = runs[-1]
    assert verify["run"] == 'taskyard review-hash verify "origin/${BASE_REF}..HEAD"'
    assert verify["env"] == {"BASE_REF": "${{ github.base_ref }}"}
    assert not any("${{" in s["run"] for s in runs), "expressions go through env, not the script"


def test_the_command_it_runs_exists() -> None:
    shown = CliRunner().invoke(app, ["review-hash", "verify", "--help"])
    assert shown.exit_code == 0, shown.output
    assert "RANGE" in shown.output and "--repo" in shown.output


def test_the_readme_names_the_workflow_and_its_required_check(workflow: dict[Any, Any]) -> None:
    readme = (ROOT / "README.md").read_text()
    (job,) = workflow["jobs"].values()
    assert "deploy/github/review-hash.yml" in readme
    assert f"`{job['name']}`" in readme
