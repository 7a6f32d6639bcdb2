"""Where the tests find the real agent CLIs (codex, claude).

CI installs them with
`npm install --silent --no-audit --no-fund --prefix .cache/npm @openai/codex@0.169.0
@anthropic-ai/claude-code@2.1.197` and sets TASKYARD_REQUIRE_AGENT_BINARIES=1, so a missing
binary fails there instead of skipping.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
NPM_BIN = REPO / ".cache" / "npm" / "node_modules" / ".bin"
INSTALL = (
    "npm install --silent --no-audit --no-fund --prefix .cache/npm "
    "@openai/codex@0.169.0 @anthropic-ai/claude-code@2.1.197"
)


def agent_binary(name: str) -> str:
    """The path of the `name` CLI: the repository's npm install first, then PATH."""
    local = NPM_BIN / name
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    found = shutil.which(name)
    if found is not None:
        return found
    message = f"{name} CLI not found in {NPM_BIN} nor on PATH; install it with: {INSTALL}"
    if os.environ.get("TASKYARD_REQUIRE_AGENT_BINARIES") == "1":
        pytest.fail(message)
    pytest.skip(message)
