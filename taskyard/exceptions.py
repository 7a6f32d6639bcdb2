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
├── LogRefused                  a task's log file is not one taskyard may open (a link, not
│                               a regular file, not ours): never opened, never shown
├── AgentOutputRefused          a file the agent left in outputs/ (result.json, last message)
│                               is a link, not a regular file, not ours or too big: not read
├── WorkspaceError              a task workspace or its checkout failed (network, timeout, disk:
│   │                           retried like any non-permanent error)
│   ├── RepositoryNotFound      also a PermanentError: no such repository, no access, bad name
│   └── RevisionNotFound        also a PermanentError: the sha / PR / ref is not in the repository
├── PlatformError               a platform API read/write failed; the message names the platform,
│   │                           the request and the status, never a credential
│   ├── PlatformPermanentError  also a PermanentError: 401/403/404/410/422, a missing credential,
│   │                           an answer of the wrong shape (a task fails with this reason)
│   └── PlatformTransientError  also a TransientError: timeout, network, 5xx, rate limit beyond
│       │                       the retry budget (the task is worth retrying later)
│       └── PlatformRateLimited 429 or the platform's own signal; carries `retry_after` seconds
├── ActionError                 an action cannot be planned for its target (recorded `failed`)
├── ToolBridgeError             the MCP server lost or could not reach the task's tool socket
├── SandboxError                the agent's sandbox cannot be made (no bwrap, no cgroup, proxy)
├── ReviewHashError             the Review-Hash of a git state cannot be computed, or a commit
│   │                           cannot carry it (unmerged index, placeholder reviewer, git failed)
│   └── ReviewHashMismatch      the staged state is not the one review approved: nothing committed
├── DeliveryRefused             a fix is not posted or pushed to its pull request; the message
│                               says why in plain words (a protected branch, a moved head)
├── PublishError                an idea's event was not published (it stays in the outbox)
│   └── PublisherUnavailable    the event stream's server cannot be reached now
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


class LogRefused(TaskyardError):
    """A task's agent log is not a regular file with one link, owned by taskyard's user,
    inside the task's directory: it is not opened (opening a planted hard link to the
    database and closing it would drop SQLite's locks), and the message says why."""


class AgentOutputRefused(TaskyardError):
    """A file the agent left in `outputs/` (result.json, codex's last message) is a link, a
    FIFO or device, has other links, is not taskyard's or is too big: it is not read."""


class JobError(TaskyardError):
    pass


class ActionError(TaskyardError):
    """An action cannot be planned for its target (e.g. `set_check` on a Slack thread)."""


class TransientError(JobError):
    """Worth retrying: a timeout, a 5xx, a lock."""


class PermanentError(JobError):
    """Retrying cannot help: bad input, a 4xx, a missing record."""


class WorkspaceError(TaskyardError):
    """A task workspace or its git checkout could not be made; worth retrying."""


class RepositoryNotFound(WorkspaceError, PermanentError):
    """The repository does not exist, cannot be read with the credentials given, or its
    name is not a valid `owner/repo`."""


class RevisionNotFound(WorkspaceError, PermanentError):
    """The wanted commit, pull request head or ref is not in the repository (even after a
    fetch): a force-pushed PR head, a deleted branch, a typo."""


class PlatformError(TaskyardError):
    """A call to a platform API failed. `platform` is "github", "linear", "slack" or "sentry";
    `status` the HTTP status when there was one."""

    def __init__(self, message: str, *, platform: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.platform = platform
        self.status = status


class PlatformPermanentError(PlatformError, PermanentError):
    """Retrying cannot help: not found, no permission, bad credentials, no credentials."""


class CredentialsMissing(PlatformPermanentError):
    """The platform has no credentials configured: taskyard cannot reach it at all."""


class PlatformTransientError(PlatformError, TransientError):
    """Worth retrying later: a timeout, a network error, a 5xx, a rate limit."""


class PlatformInDoubt(PlatformTransientError):
    """The connection failed after the request may have been sent (a read error, a timeout
    waiting for the answer): a read is retried; a write is not, since it may have taken
    effect (the apply step looks before sending it again)."""


class PlatformRateLimited(PlatformTransientError):
    """The platform asked us to slow down; `retry_after` is its wait in seconds, if it gave one."""

    def __init__(
        self,
        message: str,
        *,
        platform: str = "",
        status: int | None = 429,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, platform=platform, status=status)
        self.retry_after = retry_after


class SandboxError(TaskyardError):
    pass


class ReviewHashError(TaskyardError):
    """The Review-Hash of a git state cannot be computed (not a repository, unmerged index
    entries, an unknown revision) or a commit cannot carry it (a placeholder reviewer)."""


class ReviewHashMismatch(ReviewHashError):
    """The staged state is not the one review approved: the commit is not made."""


class DeliveryRefused(TaskyardError):
    """taskyard will not deliver a fix to its pull request (a protected or default branch, a
    head that moved, a commit that does not verify); the message is the plain-words reason
    posted on the pull request. Nothing was pushed or posted."""


class ToolBridgeError(TaskyardError):
    """The stdio MCP server could not reach the worker's tool socket, or it broke."""


class PublishError(TaskyardError):
    """An idea's event was not published to the event stream; it stays in the outbox and is
    sent again (`taskyard.ideas.events`). The message names the event, never a credential."""


class PublisherUnavailable(PublishError):
    """The event stream's server cannot be reached: no event is published until it can."""
