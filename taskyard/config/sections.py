"""The frozen sections of taskyard's settings: intake, queue, platforms, actions, approvals,
reporting, budget, tracing and metrics (agents and runs: `taskyard.config.agents`).

Every model is frozen and forbids unknown keys, so a typo in `taskyard.yaml` fails loudly.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from taskyard.config.action_names import ACTION_TYPES, ALIASES, DEFAULT_ALLOW
from taskyard.models import Priority


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class SourceConfig(_Frozen):
    """One webhook source. No secret means the source is disabled (404), never unverified."""

    secrets: tuple[str, ...] = ()
    rate_limit_per_hour: int = Field(default=1000, ge=0)  # 0 = no limit
    allow_ips: tuple[IPNetwork, ...] = ()  # empty = any address
    max_skew_seconds: float | None = Field(default=None, gt=0)  # None = the platform's window
    # A byte-identical body within this many seconds is a replay (200 duplicate), whatever its
    # delivery id says. None = intake.dedup_window_seconds; 0 = off for this source.
    dedup_window_seconds: float | None = Field(default=None, ge=0)
    max_body_bytes: int | None = Field(default=None, gt=0)  # None = intake.max_body_bytes

    @field_validator("allow_ips", mode="before")
    @classmethod
    def _networks(cls, value: Any) -> tuple[IPNetwork, ...]:
        return _networks("allow_ips", value)

    @property
    def enabled(self) -> bool:
        return bool(self.secrets)


def _networks(field: str, value: Any) -> tuple[IPNetwork, ...]:
    items = [value] if isinstance(value, str) else list(value or ())
    try:
        return tuple(ipaddress.ip_network(str(v), strict=False) for v in items)
    except ValueError as exc:
        raise ValueError(f"{field}: {exc}") from exc


class PriorityRule(_Frozen):
    """First matching rule sets an event's priority. `path` is dotted; `[]` flattens a list."""

    name: str
    source: str | None = None
    type: str = "*"
    path: str
    equals: Any = None
    one_of: tuple[Any, ...] | None = Field(default=None, alias="in")
    contains: Any = None
    map: dict[str, Priority] | None = None
    priority: Priority | None = None

    @field_validator("priority", mode="before")
    @classmethod
    def _priority(cls, value: Any) -> Any:
        return Priority.parse(value) if isinstance(value, str | int) else value

    @field_validator("map", mode="before")
    @classmethod
    def _map(cls, value: Any) -> Any:
        if value is None:
            return None
        return {str(k): Priority.parse(v) for k, v in dict(value).items()}


def default_priority_rules() -> tuple[PriorityRule, ...]:
    rules: list[dict[str, Any]] = [
        {
            "name": "sentry-level",
            "source": "sentry",
            "path": "data.issue.level",
            "map": {"fatal": "P0", "error": "P1", "warning": "P2", "info": "P3", "debug": "P3"},
        },
        {
            "name": "sentry-alert-level",
            "source": "sentry",
            "path": "data.event.level",
            "map": {"fatal": "P0", "error": "P1", "warning": "P2", "info": "P3", "debug": "P3"},
        },
        {
            "name": "sentry-metric-critical",
            "source": "sentry",
            "type": "sentry:metric_alert.critical",
            "path": "action",
            "equals": "critical",
            "priority": "P1",
        },
        {
            "name": "linear-priority",
            "source": "linear",
            "path": "data.priority",
            "map": {"1": "P0", "2": "P1", "3": "P2", "4": "P3"},
        },
    ]
    for label, level in (("P0", "P0"), ("P1", "P1"), ("P2", "P2"), ("P3", "P3"), ("bug", "P1")):
        for holder in ("issue", "pull_request"):
            rules.append(
                {
                    "name": f"github-label-{label}-{holder}",
                    "source": "github",
                    "path": f"{holder}.labels[].name",
                    "contains": label,
                    "priority": level,
                }
            )
    return tuple(PriorityRule.model_validate(r) for r in rules)


class RetryConfig(_Frozen):
    base_seconds: float = Field(default=1.0, ge=0)
    factor: float = Field(default=2.0, ge=1)
    max_seconds: float = Field(default=30.0, ge=0)
    attempts: int = Field(default=3, ge=1)
    dlq_auto_retry_hours: float = Field(default=24.0, ge=0)  # 0 = never

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        return float(min(self.max_seconds, self.base_seconds * self.factor ** (attempt - 1)))


class QueueConfig(_Frozen):
    # How often DBOS looks at its queue table. New jobs never wait there (the dispatcher starts
    # each workflow at once); only jobs an earlier version queued do, so a slow look suffices
    # and a fast one costs CPU (a database query each time) for nothing.
    polling_interval_sec: float = Field(default=5.0, gt=0)
    concurrency: int = Field(default=8, ge=1)
    dispatch_batch: int = Field(default=200, ge=1)
    max_in_flight: int = Field(default=32, ge=1)  # events queued or running at once
    dispatch_poll_sec: float = Field(default=0.2, gt=0)
    # While deliveries arrive faster than `busy_intake_per_second`, jobs start at only
    # `busy_dispatch_per_second`, so queue work does not take the CPU from answering webhooks.
    busy_intake_per_second: int = Field(default=200, ge=1)
    busy_dispatch_per_second: int = Field(default=5, ge=1)
    busy_dispatch_interval_sec: float = Field(default=0.5, gt=0)
    heartbeat_seconds: float = Field(default=5.0, gt=0)
    dead_after_seconds: float = Field(default=30.0, gt=0)
    retry: RetryConfig = RetryConfig()


class IntakeConfig(_Frozen):
    max_body_bytes: int = Field(default=25 * 1024 * 1024, gt=0)
    dedup_window_seconds: float = Field(default=300.0, ge=0)
    write_batch_max: int = Field(default=512, ge=1)
    trust_forwarded_for: bool = False
    # With trust_forwarded_for: the proxies whose X-Forwarded-For entries are believed; the
    # client is the right-most address that is not one of them.
    trusted_proxies: tuple[IPNetwork, ...] = (
        ipaddress.ip_network("127.0.0.1/32"),
        ipaddress.ip_network("::1/128"),
    )
    # Processes answering webhooks. 1: the server's own process does it, beside the queue.
    # More: that many processes share the port and only store events; the server's process
    # keeps the dispatcher and workers. Python runs one request at a time per process.
    processes: int = Field(default=1, ge=1, le=64)
    # Hostile-input bounds (see taskyard.intake.guard and taskyard.intake.validate).
    max_header_bytes: int = Field(default=64 * 1024, ge=1024)  # request line + headers; 431
    max_headers: int = Field(default=100, ge=8)  # 431
    header_timeout_seconds: float = Field(default=10.0, gt=0)  # whole head, from connect
    body_timeout_seconds: float = Field(default=30.0, gt=0)  # whole body, after the head
    max_connections: int = Field(default=1000, ge=1)  # per process; the oldest idle goes first
    max_pending_body_bytes: int = Field(default=128 * 1024 * 1024, gt=0)  # unverified, at once
    max_json_depth: int = Field(default=64, ge=2, le=512)  # deeper payloads: 400
    store_timeout_seconds: float = Field(default=1.0, gt=0)  # no commit by then: 503

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _proxies(cls, value: Any) -> tuple[IPNetwork, ...]:
        return _networks("trusted_proxies", value)


class _Secretive(_Frozen):
    """Holds credentials: validation errors never echo the input (it may be a key)."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", populate_by_name=True, hide_input_in_errors=True
    )


class GitHubPlatformConfig(_Secretive):
    """GitHub reads: a GitHub App (preferred when configured) or a token (PAT)."""

    token: SecretStr | None = None
    app_id: str | None = None  # the App's id (or client id)
    app_private_key: SecretStr | None = None  # PEM text
    app_private_key_file: Path | None = None
    installation_id: int | None = None  # else the event's installation.id, else looked up
    base_url: str = "https://api.github.com"  # GitHub Enterprise: https://HOST/api/v3
    token_refresh_margin_seconds: float = Field(default=300.0, ge=0)
    max_diff_bytes: int = Field(default=1_000_000, gt=0)
    max_files: int = Field(default=300, gt=0)

    @model_validator(mode="after")
    def _app_complete(self) -> GitHubPlatformConfig:
        has_key = self.app_private_key is not None or self.app_private_key_file is not None
        if self.app_private_key is not None and self.app_private_key_file is not None:
            raise ValueError("github: give app_private_key or app_private_key_file, not both")
        if bool(self.app_id) != has_key:
            raise ValueError("github: a GitHub App needs both app_id and a private key")
        return self


class LinearPlatformConfig(_Secretive):
    api_key: SecretStr | None = None  # a personal key as is; an OAuth token as "Bearer <token>"
    url: str = "https://api.linear.app/graphql"
    team_cache_seconds: float = Field(default=600.0, ge=0)
    related_limit: int = Field(default=5, ge=1, le=50)


class SlackPlatformConfig(_Secretive):
    bot_token: SecretStr | None = None
    base_url: str = "https://slack.com/api/"
    thread_limit: int = Field(default=200, ge=1, le=1000)


class SentryPlatformConfig(_Secretive):
    token: SecretStr | None = None
    base_url: str = "https://sentry.io"  # self-hosted: its root URL
    organization: str | None = None  # when the payload does not name one


class PlatformsConfig(_Frozen):
    """Platform API clients (reads for context). A platform without credentials is off."""

    github: GitHubPlatformConfig = GitHubPlatformConfig()
    linear: LinearPlatformConfig = LinearPlatformConfig()
    slack: SlackPlatformConfig = SlackPlatformConfig()
    sentry: SentryPlatformConfig = SentryPlatformConfig()
    request_timeout_seconds: float = Field(default=10.0, gt=0)  # one HTTP request
    context_timeout_seconds: float = Field(default=30.0, gt=0)  # one fetcher, retries included
    retry_attempts: int = Field(default=3, ge=1)  # 5xx / network errors
    backoff_seconds: float = Field(default=0.5, ge=0)
    backoff_max_seconds: float = Field(default=8.0, ge=0)
    rate_limit_max_wait_seconds: float = Field(default=30.0, ge=0)  # total Retry-After waits

    @property
    def can_write(self) -> bool:
        """A write credential for GitHub, Linear or Slack is configured."""
        gh, linear, slack = self.github, self.linear, self.slack
        return any((gh.token, gh.app_id, linear.api_key, slack.bot_token))


class ActionsConfig(_Frozen):
    """Applying the actions tasks propose. `dry_run`: true/false for every route, or None
    (automatic: dry-run while no platform write credential is configured); routes in
    `dry_run_routes` always run in shadow mode. `allow`: route → the action types it may apply,
    merged over the shipped routes' defaults; a route not listed applies nothing."""

    dry_run: bool | None = None
    dry_run_routes: tuple[str, ...] = ()
    allow: dict[str, tuple[str, ...]] = Field(default_factory=lambda: dict(DEFAULT_ALLOW))
    # Where create_issue opens Linear issues when the task's event names no Linear team
    # (Slack, Sentry, GitHub events): a Linear team id.
    default_linear_team: str | None = None
    # Offer the actions and read tools to codex and claude as a per-task MCP server.
    tools: bool = True

    @field_validator("allow", mode="before")
    @classmethod
    def _merge_defaults(cls, value: Any) -> Any:
        return {**DEFAULT_ALLOW, **dict(value or {})}

    @field_validator("allow")
    @classmethod
    def _known_types(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        fixed = {r: tuple(ALIASES.get(t, t) for t in types) for r, types in value.items()}
        unknown = sorted({t for types in fixed.values() for t in types} - set(ACTION_TYPES))
        if unknown:
            raise ValueError(f"actions.allow: unknown action types {unknown}")
        return fixed

    def dry_run_for(self, route: str, can_write: bool) -> bool:
        if route in self.dry_run_routes:
            return True
        return (not can_write) if self.dry_run is None else self.dry_run


_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)


class LinearApprovalHub(_Frozen):
    """Approval requests as Linear issues under a hub issue. Decided by moving the issue to
    `approved_state` / `denied_state` (state names), or by its `Request Status` label group
    (labels named `approved_label` / `denied_label`)."""

    hub_issue_id: str | None = None  # the hub issue's id (a UUID); None: no Linear requests
    team_id: str | None = None  # the requests' team (default: the hub issue's)
    approved_state: str = "Approved"
    denied_state: str = "Denied"
    approved_label: str = "Approved"
    denied_label: str = "Denied"
    labels: tuple[str, ...] = ("approval",)

    @field_validator("hub_issue_id")
    @classmethod
    def _uuid(cls, value: str | None) -> str | None:
        if value is not None and not _UUID.match(value):
            raise ValueError(
                "approvals.channels.linear.hub_issue_id: the hub issue's id (a UUID), not its "
                "identifier like OPS-12: deliveries name parents by id"
            )
        return value


class ApprovalChannels(_Frozen):
    """Where approval requests are posted, besides the CLI, the API and the UI."""

    linear: LinearApprovalHub = LinearApprovalHub()
    github: bool = True  # a comment on the task's pull request or issue; /approve, /deny
    slack_channel: str | None = None  # a message with Approve / Deny buttons


class ApprovalsConfig(_Frozen):
    """Risk rules decide which actions a person must approve; approval policies say who may
    decide and how long a request waits. Without files, the shipped defaults apply."""

    enabled: bool = True  # False: the allow-list alone decides (no approvals)
    risk_rules: Path | None = None  # risk-rules.yaml
    policies: Path | None = None  # approval-policies.yaml
    environment: str | None = None  # e.g. production: rules may match on it
    sweep_seconds: float = Field(default=2.0, gt=0)  # how often expiry and reminders run
    channels: ApprovalChannels = ApprovalChannels()
    # Dry-run routes raise approval requests too, on the surfaces that need no token (the CLI,
    # the web UI and API; never posted on Linear, GitHub or Slack): approving one records the
    # action's dry-run plan, sending nothing. False: recorded "would need approval".
    in_dry_run: bool = False


class StartReport(_Frozen):
    """Where a task says it has started: GitHub and Slack with a reaction (`react_with`),
    Linear with a short comment (off by default: it notifies the issue's subscribers)."""

    github: bool = True
    slack: bool = True
    linear: bool = False
    react_with: str = "eyes"
    linear_text: str = "taskyard is working on this."


class ReportingConfig(_Frozen):
    """Reporting back where a task came from. `summary`: post the result's summary when the
    task's own actions posted nothing there; `failures`: post why a task failed, in plain
    words; `notify_channel`: a Slack channel id that hears of every completion and failure."""

    start: StartReport = StartReport()
    summary: bool = True
    failures: bool = True
    notify_channel: str | None = None


class ModelPrice(_Frozen):
    """One model's price in USD per million tokens. Cached input costs the input price
    unless `cached_input_usd_per_mtok` says otherwise."""

    input_usd_per_mtok: float = Field(ge=0)
    output_usd_per_mtok: float = Field(ge=0)
    cached_input_usd_per_mtok: float | None = Field(default=None, ge=0)


class BudgetConfig(_Frozen):
    """What agents may spend (see `taskyard.run.budget`). `monthly_usd`: the calendar month's
    budget (UTC) over all tasks, None for none; at `alert_at` of it a warning is logged, and
    once it is spent new tasks wait (`budget exhausted`) until it is raised or the month
    turns. `per_task_usd`: a run whose cost so far passes it is stopped. `prices`: model name
    → price, for agents whose stream gives tokens but no cost (an agent's own
    `*_usd_per_mtok` keys win)."""

    monthly_usd: float | None = Field(default=None, ge=0)
    alert_at: float = Field(default=0.8, gt=0, le=1)
    per_task_usd: float | None = Field(default=None, gt=0)
    prices: dict[str, ModelPrice] = Field(default_factory=dict)
    recheck_seconds: float = Field(default=30.0, gt=0)  # how often a waiting task looks again


class TracingConfig(_Frozen):
    """OpenTelemetry spans (see `taskyard.observe.tracing`). `otlp_endpoint`: the OTLP/HTTP
    collector's base URL (`/v1/traces` is appended), from `TASKYARD_OTLP_ENDPOINT` or else the
    standard `OTEL_EXPORTER_OTLP_ENDPOINT`; unset, tracing is off."""

    otlp_endpoint: str | None = None
    service_name: str = "taskyard"
    export_timeout_seconds: float = Field(default=10.0, gt=0)

    @field_validator("otlp_endpoint")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            return None
        if value is not None and not re.match(r"https?://[^/\s]+", value.strip()):
            raise ValueError("tracing.otlp_endpoint must be an http:// or https:// URL")
        return value.strip() if value is not None else None


class MetricsConfig(_Frozen):
    """`workspace_disk_seconds`: how old the workspaces' disk use shown by `/metrics` may be
    (a scrape measures it again when it is older)."""

    workspace_disk_seconds: float = Field(default=60.0, ge=0)
