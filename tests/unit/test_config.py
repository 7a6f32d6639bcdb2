"""Settings: file, then environment, then flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from taskyard.config import load_settings
from taskyard.exceptions import ConfigError


def test_intake_processes_default_file_env_and_flag(tmp_path: Path) -> None:
    assert load_settings(None, {}).intake.processes == 1
    path = tmp_path / "taskyard.yaml"
    path.write_text("intake:\n  processes: 3\n  max_body_bytes: 1000\n")
    from_file = load_settings(path, {})
    assert from_file.intake.processes == 3 and from_file.intake.max_body_bytes == 1000
    from_env = load_settings(path, {"TASKYARD_INTAKE_PROCESSES": "4"})
    assert from_env.intake.processes == 4 and from_env.intake.max_body_bytes == 1000
    flagged = load_settings(path, {"TASKYARD_INTAKE_PROCESSES": "4"}, {"intake_processes": 2})
    assert flagged.intake.processes == 2 and flagged.intake.max_body_bytes == 1000


@pytest.mark.parametrize("value", ["0", "many", "65"])
def test_intake_processes_out_of_range_is_a_config_error(value: str) -> None:
    with pytest.raises(ConfigError, match="processes"):
        load_settings(None, {"TASKYARD_INTAKE_PROCESSES": value})
