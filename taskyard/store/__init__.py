"""Everything taskyard keeps: events, dead letters, workers (later tasks, actions, approvals)."""

from taskyard.store.base import Dispatch, EventFilter, NewEvent, Store
from taskyard.store.memory import MemoryStore
from taskyard.store.sql import SQLStore


def open_store(url: str) -> Store:
    return SQLStore.open(url)


__all__ = [
    "Dispatch",
    "EventFilter",
    "MemoryStore",
    "NewEvent",
    "SQLStore",
    "Store",
    "open_store",
]
