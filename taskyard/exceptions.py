"""Every error taskyard raises, written down once.

TaskyardError
├── ConfigError                 bad or unreadable configuration
├── IntakeError                 a delivery refused; carries the HTTP status and a metric reason
│   ├── SourceNotFound          404 unknown or disabled source
│   ├── VerificationError       401 missing/bad signature, stale timestamp
│   ├── MalformedPayload        400 body is not what the platform sends
│   ├── PayloadTooLarge         413
│   ├── RateLimited             429 with Retry-After
│   └── Forbidden               403 address not on the source's allowlist
├── StoreError                  the database failed
│   └── StoreUnavailable        cannot reach the database (intake answers 503)
├── NotFound                    no such event / dead letter / job
└── JobError                    raised by job handlers
    ├── TransientError          retried with backoff
    └── PermanentError          straight to the dead letters
"""

from __future__ import annotations


class TaskyardError(Exception):
    """Root of every error taskyard raises on purpose."""


class ConfigError(TaskyardError):
    pass


class IntakeError(TaskyardError):
    status: int = 400
    reason: str = "rejected"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class SourceNotFound(IntakeError):
    status = 404
    reason = "unknown_source"


class VerificationError(IntakeError):
    status = 401
    reason = "bad_signature"


class MalformedPayload(IntakeError):
    status = 400
    reason = "malformed"


class PayloadTooLarge(IntakeError):
    status = 413
    reason = "too_large"


class Forbidden(IntakeError):
    status = 403
    reason = "forbidden_ip"


class RateLimited(IntakeError):
    status = 429
    reason = "rate_limited"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StoreError(TaskyardError):
    pass


class StoreUnavailable(StoreError):
    pass


class NotFound(TaskyardError):
    pass


class JobError(TaskyardError):
    pass


class TransientError(JobError):
    """Worth retrying: a timeout, a 5xx, a lock."""


class PermanentError(JobError):
    """Retrying cannot help: bad input, a 4xx, a missing record."""
