"""What the intake processes share when several answer webhooks: a token bucket per source and
a count of stored events per process.

One small file under `$TASKYARD_HOME/run/`, memory-mapped by every process. A bucket changes
under an exclusive lock on the file (`fcntl.flock`), so a source's limit holds across all
processes, whichever of them the kernel hands a connection to. Each process counts the events
it stored in its own slot (one writer per slot, no lock); the server process adds them up to
see how busy intake is.
"""

from __future__ import annotations

import fcntl
import math
import mmap
import os
import struct
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from taskyard.exceptions import ConfigError

_BUCKET = struct.Struct("=dd")  # tokens, when they were counted (time.monotonic)
_COUNT = struct.Struct("=Q")


class BucketCell:
    """A bucket's state kept by one process alone."""

    def __init__(self) -> None:
        self._state = (math.nan, 0.0)

    @contextmanager
    def held(self) -> Iterator[None]:
        yield

    def read(self) -> tuple[float, float]:
        """(tokens, at); tokens is NaN until first written (a full bucket)."""
        return self._state

    def write(self, tokens: float, at: float) -> None:
        self._state = (tokens, at)


class SharedBucketCell(BucketCell):
    """A bucket's state in the shared file; `held()` locks the file while it is read and
    written back."""

    def __init__(self, state: SharedIntakeState, offset: int) -> None:
        super().__init__()
        self._shared = state
        self._offset = offset

    @contextmanager
    def held(self) -> Iterator[None]:
        fcntl.flock(self._shared.fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._shared.fd, fcntl.LOCK_UN)

    def read(self) -> tuple[float, float]:
        tokens, at = _BUCKET.unpack_from(self._shared.map, self._offset)
        return tokens, at

    def write(self, tokens: float, at: float) -> None:
        _BUCKET.pack_into(self._shared.map, self._offset, tokens, at)


class SharedIntakeState:
    """The mapped file. `create` in the server process, `attach` in each intake process, with
    the same bucket names and slot count."""

    def __init__(self, path: Path, buckets: Sequence[str], slots: int, fd: int) -> None:
        self.path = path
        self.buckets = tuple(buckets)
        self.slots = slots
        self.fd = fd
        self.size = _size(len(self.buckets), slots)
        self.map = mmap.mmap(fd, self.size)

    @classmethod
    def create(cls, path: Path, buckets: Sequence[str], slots: int) -> SharedIntakeState:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        blank = b"".join(_BUCKET.pack(math.nan, 0.0) for _ in buckets)
        blank += _COUNT.pack(0) * slots
        os.write(fd, blank)
        return cls(path, buckets, slots, fd)

    @classmethod
    def attach(cls, path: Path, buckets: Sequence[str], slots: int) -> SharedIntakeState:
        try:
            fd = os.open(path, os.O_RDWR)
        except OSError as exc:
            raise ConfigError(f"cannot open the shared intake state {path}: {exc}") from exc
        if os.fstat(fd).st_size != _size(len(buckets), slots):
            os.close(fd)
            raise ConfigError(f"shared intake state {path} does not match this configuration")
        return cls(path, buckets, slots, fd)

    def bucket(self, name: str) -> SharedBucketCell:
        return SharedBucketCell(self, self.buckets.index(name) * _BUCKET.size)

    def _slot_offset(self, slot: int) -> int:
        if not 0 <= slot < self.slots:
            raise IndexError(f"slot {slot} is not in 0..{self.slots - 1}")
        return len(self.buckets) * _BUCKET.size + slot * _COUNT.size

    def add_stored(self, slot: int, count: int) -> None:
        offset = self._slot_offset(slot)
        (value,) = _COUNT.unpack_from(self.map, offset)
        _COUNT.pack_into(self.map, offset, value + count)

    def stored_total(self) -> int:
        return sum(
            _COUNT.unpack_from(self.map, self._slot_offset(slot))[0] for slot in range(self.slots)
        )

    def close(self) -> None:
        self.map.close()
        os.close(self.fd)


def _size(buckets: int, slots: int) -> int:
    return buckets * _BUCKET.size + slots * _COUNT.size
