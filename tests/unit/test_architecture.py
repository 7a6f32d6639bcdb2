"""The packages' layering, as pyproject.toml's import-linter contracts state it (README,
"Development"): the contracts hold for taskyard as it is, and the store contract catches a
store module that imports a stage above it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grimp
import pytest
from importlinter import configuration
from importlinter.application.use_cases import lint_imports, read_user_options
from importlinter.contracts.forbidden import ForbiddenContract

configuration.configure()  # what `lint-imports` does first: the config readers, the graph builder

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def _contract_options(contract_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    options = read_user_options(str(PYPROJECT))
    (contract,) = (c for c in options.contracts_options if c.get("id") == contract_id)
    return options.session_options, contract


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("taskyard", cache_dir=None)


def test_contracts_are_kept(capsys: pytest.CaptureFixture[str]) -> None:
    kept = lint_imports(config_filename=str(PYPROJECT), cache_dir=None, no_logo=True)
    assert kept, capsys.readouterr().out


def test_every_subpackage_has_a_layer() -> None:
    """A new subpackage or top-level module gets its place in the layers (or the layers
    contract would not look at it)."""
    _, layers = _contract_options("layers")
    placed = {
        name.strip() for layer in layers["layers"] for name in layer.replace(":", "|").split("|")
    }
    package = PYPROJECT.parent / "taskyard"
    present = {
        f"taskyard.{path.stem if path.is_file() else path.name}"
        for path in package.iterdir()
        if (path.is_dir() and (path / "__init__.py").exists())
        or (path.suffix == ".py" and path.stem not in ("__init__", "__main__"))
    }
    assert present == placed


def test_store_contract_breaks_when_store_imports_actions(graph: grimp.ImportGraph) -> None:
    session, options = _contract_options("store")
    contract = ForbiddenContract(
        name=options["name"], session_options=session, contract_options=options
    )
    graph.add_import(
        importer="taskyard.store.base",
        imported="taskyard.actions.models",
        line_number=1,
        line_contents="from taskyard.actions.models import Target",
    )
    check = contract.check(graph, verbose=False)
    assert not check.kept
    direct = [
        chain
        for found in check.metadata["invalid_chains"]
        if found["upstream_module"] == "taskyard.actions"
        for chain in found["chains"]
        if len(chain) == 1
    ]
    assert [
        {
            "importer": "taskyard.store.base",
            "imported": "taskyard.actions.models",
            "line_numbers": (1,),
        }
    ] in direct
