"""pytest plugin: the `model_server` fixture, a factory of scripted model servers.

    def test_x(model_server):
        server = model_server({"scripts": [{"turns": [{"final": {"ok": True}}]}]})
        ... server.url, server.requests ...

Each server runs in a background thread and stops when the test ends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from taskyard.devtools.model_script import Script
from taskyard.devtools.model_server import ModelServer

ScriptSource = Script | Mapping[str, Any] | Path | str


@pytest.fixture
def model_server() -> Iterator[Callable[[ScriptSource], ModelServer]]:
    with ExitStack() as stack:

        def start(script: ScriptSource) -> ModelServer:
            return stack.enter_context(ModelServer(script))

        yield start
