"""Opening the configured store with its schema up to date: what `serve`, `worker` and every
CLI command that reads the store do first. Kept apart from `taskyard.service.server` so that a
read-only command imports the store alone (not the server, the queue engine or the clients).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

from taskyard.store import SQLStore, Store
from taskyard.util.private import private_dir

log = logging.getLogger(__name__)


class StoreSettings(Protocol):
    """What opening the store needs of the settings (`taskyard.config.Settings` has it; the
    store sits below the configuration and does not import it)."""

    @property
    def home(self) -> Path: ...

    @property
    def store_url(self) -> str: ...


def open_migrated_store(settings: StoreSettings) -> Store:
    private_dir(settings.home)  # 0700: the databases, logs and workspaces are in it
    store = SQLStore.open(settings.store_url)
    applied = store.migrate()
    if applied:
        log.info("migrations applied", extra={"versions": applied})
    return store
