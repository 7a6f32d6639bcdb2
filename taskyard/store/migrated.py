"""Opening the configured store with its schema up to date: what `serve`, `worker` and every
CLI command that reads the store do first. Kept apart from `taskyard.service.server` so that a
read-only command imports the store alone (not the server, the queue engine or the clients).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from taskyard.store import SQLStore, Store
from taskyard.util.private import private_dir

if TYPE_CHECKING:
    from taskyard.config import Settings

log = logging.getLogger(__name__)


def open_migrated_store(settings: Settings) -> Store:
    private_dir(settings.home)  # 0700: the databases, logs and workspaces are in it
    store = SQLStore.open(settings.store_url)
    applied = store.migrate()
    if applied:
        log.info("migrations applied", extra={"versions": applied})
    return store
