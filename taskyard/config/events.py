"""The `events:` section: where ideas' events are published (`taskyard.ideas.events`)."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import Field

from taskyard.config.sections import _Frozen


class EventsConfig(_Frozen):
    """Off unless `nats_url` is set (`nats://host:4222`). The events go to the JetStream
    stream `stream` (made if missing, on `taskyard.>`), up to `batch` at a time, looked for
    every `interval_ms` or when an idea notes one."""

    nats_url: str | None = None
    stream: str = Field(default="TASKYARD", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    batch: int = Field(default=200, ge=1)
    interval_ms: int = Field(default=200, ge=10)

    @property
    def server(self) -> str:
        """Where events go, without credentials (for logs)."""
        parts = urlsplit(self.nats_url or "")
        return f"{parts.hostname}:{parts.port or 4222}" if self.nats_url else ""

    def secrets(self) -> tuple[str, ...]:
        """The URL's password, or its token (`nats://TOKEN@host`: a user without one)."""
        parts = urlsplit(self.nats_url or "")
        return (parts.password or parts.username or "",)
