"""Fixtures of the intake adapter tests; the cases themselves live in intake_cases.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.intake.intake_cases import CASES, Case


@pytest.fixture(scope="session")
def webhooks(shared_dir: Path) -> Path:
    return shared_dir / "webhooks"


@pytest.fixture(params=sorted(CASES))
def case(request: pytest.FixtureRequest, webhooks: Path) -> Case:
    return CASES[request.param](webhooks)
