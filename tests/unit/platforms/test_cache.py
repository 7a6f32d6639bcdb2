"""The TTL cache: values expire by the injected clock, loads are single-flight, errors are
not cached."""

from __future__ import annotations

import asyncio

import pytest

from taskyard.exceptions import PlatformTransientError
from taskyard.platforms.cache import TTLCache
from tests.unit.platforms.conftest import Clock


async def test_value_is_reused_until_it_expires(clock: Clock) -> None:
    cache: TTLCache[str, int] = TTLCache(60, clock=clock)
    loads: list[int] = []

    async def load() -> int:
        loads.append(1)
        return len(loads)

    assert await cache.get_or_load("team", load) == 1
    clock.now += 59
    assert await cache.get_or_load("team", load) == 1
    clock.now += 1
    assert await cache.get_or_load("team", load) == 2
    assert len(loads) == 2


async def test_concurrent_loads_of_one_key_run_once(clock: Clock) -> None:
    cache: TTLCache[str, str] = TTLCache(60, clock=clock)
    started = 0

    async def load() -> str:
        nonlocal started
        started += 1
        await asyncio.sleep(0.01)
        return "v"

    assert await asyncio.gather(*(cache.get_or_load("k", load) for _ in range(5))) == ["v"] * 5
    assert started == 1


async def test_a_failed_load_is_not_cached(clock: Clock) -> None:
    cache: TTLCache[str, str] = TTLCache(60, clock=clock)

    async def fail() -> str:
        raise PlatformTransientError("503")

    async def succeed() -> str:
        return "ok"

    with pytest.raises(PlatformTransientError):
        await cache.get_or_load("k", fail)
    assert await cache.get_or_load("k", succeed) == "ok"


def test_oldest_entries_go_first_when_full(clock: Clock) -> None:
    cache: TTLCache[int, int] = TTLCache(60, clock=clock, max_entries=2)
    for key in (1, 2, 3):
        cache.put(key, key)
    assert cache.get(1) is None and cache.get(2) == 2 and cache.get(3) == 3
