"""State shared by intake processes: one rate-limit bucket per source, stored-event counts."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from taskyard.exceptions import ConfigError, RateLimited
from taskyard.intake.limits import RateLimiter
from taskyard.intake.shared import SharedIntakeState

BUCKETS = ("github", "generic/ci")


def _spend_all(path: str, attempts: int, out: multiprocessing.Queue[int]) -> None:
    state = SharedIntakeState.attach(Path(path), BUCKETS, 2)
    limiter = RateLimiter(50, cell=state.bucket("github"))
    accepted = 0
    for _ in range(attempts):
        try:
            limiter.check("github")
        except RateLimited:
            continue
        limiter.spend()
        accepted += 1
    state.add_stored(0 if accepted % 2 else 1, accepted)
    out.put(accepted)


def test_one_bucket_holds_across_processes(tmp_path: Path) -> None:
    state = SharedIntakeState.create(tmp_path / "intake.state", BUCKETS, 2)
    ctx = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue[int] = ctx.Queue()
    procs = [ctx.Process(target=_spend_all, args=(str(state.path), 40, out)) for _ in range(2)]
    for proc in procs:
        proc.start()
    accepted = [out.get(timeout=30) for _ in procs]
    for proc in procs:
        proc.join(30)
    # 80 attempts against one bucket of 50 (a few may slip in between check and spend).
    assert 50 <= sum(accepted) <= 52, accepted
    assert state.stored_total() == sum(accepted)
    # The other source's bucket was never touched: still full.
    other = RateLimiter(50, cell=state.bucket("generic/ci"))
    other.check("generic/ci")


def test_buckets_are_separate_and_refill(tmp_path: Path) -> None:
    now = [1000.0]
    state = SharedIntakeState.create(tmp_path / "s", BUCKETS, 1)
    again = SharedIntakeState.attach(tmp_path / "s", BUCKETS, 1)
    one = RateLimiter(3600, clock=lambda: now[0], cell=state.bucket("github"))
    two = RateLimiter(3600, clock=lambda: now[0], cell=again.bucket("github"))
    for _ in range(3600):
        one.spend()
    with pytest.raises(RateLimited) as refused:
        two.check("github")
    assert refused.value.retry_after == 1
    now[0] += 2.0  # 3600/h refills one token a second
    two.check("github")
    two.spend()
    two.spend()
    with pytest.raises(RateLimited):
        one.check("github")


def test_counts_add_up_per_slot(tmp_path: Path) -> None:
    state = SharedIntakeState.create(tmp_path / "s", BUCKETS, 3)
    state.add_stored(0, 5)
    state.add_stored(2, 7)
    state.add_stored(0, 1)
    assert state.stored_total() == 13
    with pytest.raises(IndexError):
        state.add_stored(3, 1)


def test_attach_refuses_a_missing_or_different_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot open"):
        SharedIntakeState.attach(tmp_path / "nope", BUCKETS, 2)
    SharedIntakeState.create(tmp_path / "s", BUCKETS, 2)
    with pytest.raises(ConfigError, match="does not match"):
        SharedIntakeState.attach(tmp_path / "s", BUCKETS, 3)
