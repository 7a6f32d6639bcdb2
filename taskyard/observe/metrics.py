"""Every Prometheus metric taskyard exposes, defined in one place, and the logging setup.

The pipeline's metrics (labels are fixed small sets or config names, never ids or repos):
- intake: `taskyard_webhooks_received_total{source,outcome}`,
  `taskyard_intake_latency_seconds{source}`; queue: `taskyard_queue_depth{state}`,
  `taskyard_jobs_total{job,result}`, `taskyard_dead_letters{status}` (open, replayed).
- tasks: `taskyard_tasks_total{route,agent,status}` (finished), `taskyard_tasks{status}`
  (now), `taskyard_task_duration_seconds{route,agent}` (from the task's creation, when it was
  queued, to its end: queue wait, agent run, applying and any approval wait included; the
  agent's own run is `started_at` → `finished_at` of the task), `taskyard_task_cost_usd_total
  {route,agent}`, `taskyard_task_tokens_total{agent,kind}`.
- agents: `taskyard_agents_running{agent}` (agent processes alive now),
  `taskyard_agents_waiting{agent}`, `taskyard_agent_failures_total{agent,reason}` with reason
  one of `AGENT_FAILURE_REASONS`.
- platforms: `taskyard_platform_requests_total{platform,kind,outcome}` (every HTTP attempt,
  retries included; kind read|write, outcome ok|error|rate_limited) and
  `taskyard_platform_rate_limit_wait_seconds_total{platform}` (time spent waiting as a
  platform's rate limit asked).
- workspaces: `taskyard_workspace_disk_bytes` (file bytes under the workspaces directory).
- actions and approvals: `taskyard_actions_total`, `taskyard_approval_*`.

The success rate is derived, not exported: over the last hour, by route,

    sum by (route) (increase(taskyard_tasks_total{status="succeeded"}[1h]))
      / sum by (route) (increase(taskyard_tasks_total[1h]))

(drop `by (route)` for the whole pipeline; `status!="cancelled"` in the divisor leaves out
tasks a person stopped).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, Counter, Histogram, values
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from taskyard.exceptions import ConfigError
from taskyard.models import Task, TaskStatus
from taskyard.records import ActionRecord, Approval, DecisionAttempt, DecisionOutcome
from taskyard.util.redaction import REDACTED, Redactor, secret_field
from taskyard.util.redaction import SECRET_WORDS as _SECRET_WORDS

APPROVAL_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200)
RISKS = ("low", "medium", "high", "critical")
REFUSAL_REASONS = ("not_authorised", "already_decided", "expired", "forged", "invalid")
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
EVENT_STATES = ("received", "queued", "processing", "processed", "ignored", "dead")
TASK_STATES = (
    "queued",
    "preparing",
    "running",
    "applying",
    "awaiting_approval",
    "succeeded",
    "failed",
    "timed_out",
    "cancelled",
    "expired",
)
# Why an agent's run did not give a usable result (`agent_failure_reason` in the executor):
# non-zero exit or the agent's own error; killed by a signal; the time limit; the tool-call
# budget; the per-task cost ceiling; could not be started; a clean exit without a result; a
# result the schema refused.
AGENT_FAILURE_REASONS = (
    "failed",
    "crashed",
    "timed_out",
    "budget_exceeded",
    "cost_exceeded",
    "not_started",
    "no_result",
    "invalid_result",
    "tools_failed",  # it answered, but every tool call it made had failed
)
PLATFORMS = ("github", "linear", "slack", "sentry")
DEAD_LETTER_STATES = ("open", "replayed")
DURATION_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 21600, 86400)


class _QueueDepth(Collector):
    """Queue depth by state, read from the store at scrape time (cached for a second)."""

    def __init__(self, counts: Callable[[], dict[str, int]]) -> None:
        self._counts = counts
        self._cache: tuple[float, dict[str, int]] = (0.0, {})

    def collect(self) -> Iterator[Metric]:
        now = time.monotonic()
        if now - self._cache[0] > 1.0:
            self._cache = (now, self._counts())
        family = GaugeMetricFamily(
            "taskyard_queue_depth", "Events by pipeline state.", labels=["state"]
        )
        for state in EVENT_STATES:
            family.add_metric([state], self._cache[1].get(state, 0))
        yield family


class _LiveGauge(Collector):
    """A gauge family read at scrape time: `read()` gives (label values, value) pairs."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labels: list[str],
        read: Callable[[], Iterable[tuple[tuple[str, ...], float]]],
        cache_seconds: float = 0.0,
    ) -> None:
        self._args = (name, documentation, labels)
        self._read = read
        self._cache_seconds = cache_seconds
        self._cache: tuple[float, list[tuple[tuple[str, ...], float]]] = (-1e9, [])

    def collect(self) -> Iterator[Metric]:
        now = time.monotonic()
        if now - self._cache[0] > self._cache_seconds:
            self._cache = (now, list(self._read()))
        name, documentation, labels = self._args
        family = GaugeMetricFamily(name, documentation, labels=labels)
        for label_values, value in self._cache[1]:
            family.add_metric(list(label_values), value)
        yield family


class Metrics:
    """One registry per server, so tests can run several side by side.

    With `multiprocess_dir`, several processes count together (prometheus_client's
    multiprocess mode: each writes its values to files there, and `registry` reads them all).
    That mode is chosen when prometheus_client is imported, from `PROMETHEUS_MULTIPROC_DIR`,
    so whoever starts the processes sets that variable first (see `taskyard serve`).
    """

    def __init__(self, multiprocess_dir: Path | None = None) -> None:
        self.registry = CollectorRegistry()
        own: CollectorRegistry | None = self.registry
        if multiprocess_dir is not None:
            if values.ValueClass is values.MutexValue:
                raise ConfigError(
                    "metrics shared by several processes need PROMETHEUS_MULTIPROC_DIR set "
                    "before prometheus_client is imported"
                )
            MultiProcessCollector(self.registry, path=str(multiprocess_dir))  # type: ignore[no-untyped-call]
            own = None  # the values are read back from the files, not from these objects
        self.webhooks_received = Counter(
            "taskyard_webhooks_received_total",
            "Webhook deliveries by source and outcome (accepted, duplicate, or why refused).",
            ["source", "outcome"],
            registry=own,
        )
        self.intake_latency = Histogram(
            "taskyard_intake_latency_seconds",
            "Time from request start to answer, by source.",
            ["source"],
            buckets=LATENCY_BUCKETS,
            registry=own,
        )
        self.jobs = Counter(
            "taskyard_jobs_total",
            "Finished jobs by name and result (processed, dead).",
            ["job", "result"],
            registry=own,
        )
        self.tasks = Counter(
            "taskyard_tasks_total",
            "Finished tasks by route, agent and final status.",
            ["route", "agent", "status"],
            registry=own,
        )
        self.task_cost = Counter(
            "taskyard_task_cost_usd_total",
            "Model cost reported or computed for finished tasks, by route and agent.",
            ["route", "agent"],
            registry=own,
        )
        self.task_tokens = Counter(
            "taskyard_task_tokens_total",
            "Model tokens used by finished tasks, by agent and kind (input, output).",
            ["agent", "kind"],
            registry=own,
        )
        self.actions = Counter(
            "taskyard_actions_total",
            "Actions taken to an outcome, by route, type and status (applied, skipped, failed, "
            "dry_run).",
            ["route", "type", "status"],
            registry=own,
        )
        self.task_duration = Histogram(
            "taskyard_task_duration_seconds",
            "Finished tasks' time from creation (queued) to end, by route and agent.",
            ["route", "agent"],
            buckets=DURATION_BUCKETS,
            registry=own,
        )
        self.agent_failures = Counter(
            "taskyard_agent_failures_total",
            "Agent runs that gave no usable result, by agent and reason.",
            ["agent", "reason"],
            registry=own,
        )
        self.platform_requests = Counter(
            "taskyard_platform_requests_total",
            "Platform API requests (each attempt), by platform, kind (read, write) and outcome "
            "(ok, error, rate_limited).",
            ["platform", "kind", "outcome"],
            registry=own,
        )
        self.rate_limit_wait = Counter(
            "taskyard_platform_rate_limit_wait_seconds_total",
            "Seconds spent waiting because a platform's rate limit asked to, by platform.",
            ["platform"],
            registry=own,
        )

        self.approvals_created = Counter(
            "taskyard_approval_requests_created_total",
            "Approval requests created, by risk.",
            ["risk"],
            registry=own,
        )
        self.approvals_resolved = Counter(
            "taskyard_approval_requests_resolved_total",
            "Approval requests resolved, by risk and outcome (approved, denied, expired: an "
            "expiry is never a denial).",
            ["risk", "status"],
            registry=own,
        )
        self.approval_latency = Histogram(
            "taskyard_approval_latency_seconds",
            "From an approval request to its decision, by risk.",
            ["risk"],
            buckets=APPROVAL_BUCKETS,
            registry=own,
        )
        self.approval_timeouts = Counter(
            "taskyard_approval_timeouts_total",
            "Approval requests nobody decided before they expired, by risk.",
            ["risk"],
            registry=own,
        )
        self.approval_refusals = Counter(
            "taskyard_approval_decisions_refused_total",
            "Decisions refused, by reason (not_authorised, already_decided, expired, forged, "
            "invalid).",
            ["reason"],
            registry=own,
        )
        # Every risk and reason starts at 0, so that an alert on increase() sees the first.
        for risk in RISKS:
            self.approvals_created.labels(risk)
            self.approval_timeouts.labels(risk)
            for status in ("approved", "denied", "expired"):
                self.approvals_resolved.labels(risk, status)
        for reason in REFUSAL_REASONS:
            self.approval_refusals.labels(reason)
        for platform in PLATFORMS:
            self.rate_limit_wait.labels(platform)
            for kind in ("read", "write"):
                for outcome in ("ok", "error", "rate_limited"):
                    self.platform_requests.labels(platform, kind, outcome)
        self._children: dict[tuple[str, ...], Any] = {}

    def received(self, source: str, outcome: str) -> None:
        """Count one delivery (labelled children cached: this runs on every request)."""
        key = ("r", source, outcome)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.webhooks_received.labels(source, outcome)
        child.inc()

    def intake_took(self, source: str, seconds: float) -> None:
        key = ("l", source)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.intake_latency.labels(source)
        child.observe(seconds)

    def job_finished(self, job: str, result: str) -> None:
        self.jobs.labels(job, result).inc()

    def task_finished(self, task: Task) -> None:
        self.tasks.labels(task.route, task.agent, str(task.status)).inc()
        if task.finished_at is not None:
            took = max(0.0, task.finished_at - task.created_at)
            self.task_duration.labels(task.route, task.agent).observe(took)
        if task.cost_usd:
            self.task_cost.labels(task.route, task.agent).inc(task.cost_usd)
        for kind in ("input", "output"):
            tokens = int((task.usage or {}).get(f"{kind}_tokens") or 0)
            if tokens:
                self.task_tokens.labels(task.agent, kind).inc(tokens)

    def routes_known(self, routes: Iterable[tuple[str, str]]) -> None:
        """Start each (route, agent)'s task counters at 0 for every way a task ends, so that
        the first failure is an increase `increase()`/`rate()` can see."""
        for route, agent in routes:
            for status in TaskStatus:
                if status.terminal:
                    self.tasks.labels(route, agent, str(status))

    def agent_failed(self, agent: str, reason: str) -> None:
        """An agent run without a usable result; `reason` one of AGENT_FAILURE_REASONS."""
        self.agent_failures.labels(agent, reason).inc()

    def platform_request(self, platform: str, kind: str, outcome: str) -> None:
        """One platform API attempt (a `RequestObserver` for `taskyard.platforms.retry`)."""
        key = ("p", platform, kind, outcome)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.platform_requests.labels(platform, kind, outcome)
        child.inc()

    def rate_limit_waited(self, platform: str, seconds: float) -> None:
        self.rate_limit_wait.labels(platform).inc(seconds)

    def action_recorded(self, record: ActionRecord) -> None:
        self.actions.labels(record.route, record.type, str(record.status)).inc()

    def approval_created(self, approval: Approval) -> None:
        self.approvals_created.labels(approval.risk).inc()

    def approval_decided(self, outcome: DecisionOutcome) -> None:
        a = outcome.approval
        if a.status.decided and a.decided_at is not None:
            self.approvals_resolved.labels(a.risk, str(a.status)).inc()
            self.approval_latency.labels(a.risk).observe(max(0.0, a.decided_at - a.created_at))

    def approval_expired(self, approval: Approval) -> None:
        self.approvals_resolved.labels(approval.risk, "expired").inc()
        self.approval_timeouts.labels(approval.risk).inc()

    def approval_refused(self, attempt: DecisionAttempt) -> None:
        self.approval_refusals.labels(refusal_reason(attempt.why)).inc()

    def watch_approvals(self, stats: Callable[[], dict[str, tuple[int, float]]]) -> None:
        """`taskyard_approval_backlog{risk}` and `taskyard_approval_oldest_pending_seconds
        {risk}` from the store, read at most once a second."""
        for name, doc, index in (
            ("taskyard_approval_backlog", "Pending approval requests, by risk.", 0),
            (
                "taskyard_approval_oldest_pending_seconds",
                "Age of the oldest pending approval request, by risk.",
                1,
            ),
        ):

            def read(index: int = index) -> Iterable[tuple[tuple[str, ...], float]]:
                found = stats()
                return [((r,), float(found.get(r, (0, 0.0))[index])) for r in RISKS]

            self.registry.register(_LiveGauge(name, doc, ["risk"], read, 1.0))

    def watch_tasks(self, counts: Callable[[], dict[str, int]]) -> None:
        """`taskyard_tasks{status}` from the store, read at most once a second."""
        self._watch_by_status("taskyard_tasks", "Tasks by status.", TASK_STATES, counts)

    def _watch_by_status(
        self, name: str, doc: str, states: Iterable[str], counts: Callable[[], dict[str, int]]
    ) -> None:
        """A live gauge `name{status}`: `counts()` read at most once a second, every one of
        `states` shown (0 when absent)."""
        shown = tuple(states)

        def read() -> Iterable[tuple[tuple[str, ...], float]]:
            found = counts()
            return [((state,), found.get(state, 0)) for state in shown]

        self.registry.register(_LiveGauge(name, doc, ["status"], read, 1.0))

    def watch_agents(
        self, agents: Iterable[str], running: Callable[[str], int], waiting: Callable[[str], int]
    ) -> None:
        """Agents alive now and tasks waiting for a slot, per agent (this process); each
        agent's failure reasons start at 0."""
        names = sorted(agents)
        for agent in names:
            for reason in AGENT_FAILURE_REASONS:
                self.agent_failures.labels(agent, reason)
        for name, doc, count in (
            ("taskyard_agents_running", "Agent processes alive now, by agent.", running),
            ("taskyard_agents_waiting", "Tasks waiting for an agent slot, by agent.", waiting),
        ):
            self.registry.register(
                _LiveGauge(
                    name,
                    doc,
                    ["agent"],
                    lambda count=count: [((a,), count(a)) for a in names],  # type: ignore[misc]
                )
            )

    def watch_dead_letters(self, counts: Callable[[], dict[str, int]]) -> None:
        """`taskyard_dead_letters{status}` from the store, read at most once a second."""
        self._watch_by_status(
            "taskyard_dead_letters", "Dead letters by status.", DEAD_LETTER_STATES, counts
        )

    def watch_workspace_disk(self, measure: Callable[[], int], cache_seconds: float) -> None:
        """`taskyard_workspace_disk_bytes`, measured at a scrape at most every
        `cache_seconds` (scrapes run off the event loop)."""
        self.registry.register(
            _LiveGauge(
                "taskyard_workspace_disk_bytes",
                "Bytes of the files under the workspaces directory (archive and mirrors too).",
                [],
                lambda: [((), float(measure()))],
                cache_seconds,
            )
        )

    def watch_budget(self, read: Callable[[], tuple[float, float | None]]) -> None:
        """`taskyard_budget_spent_usd`, `taskyard_budget_limit_usd` and
        `taskyard_budget_used_ratio` for this month: `read()` gives (spent, limit or None),
        from the store at most every 5 s. Without a budget only the spend is shown."""
        cache: list[tuple[float, tuple[float, float | None]]] = []

        def position() -> tuple[float, float | None]:
            now = time.monotonic()
            if not cache or now - cache[0][0] > 5.0:
                cache[:] = [(now, read())]
            return cache[0][1]

        def spent() -> list[tuple[tuple[str, ...], float]]:
            return [((), position()[0])]

        def limit() -> list[tuple[tuple[str, ...], float]]:
            usd = position()[1]
            return [] if usd is None else [((), usd)]

        def ratio() -> list[tuple[tuple[str, ...], float]]:
            used, usd = position()
            if usd is None:
                return []
            return [((), used / usd if usd else 1.0)]  # a budget of 0 is spent from the start

        for name, doc, gauge in (
            ("taskyard_budget_spent_usd", "Model cost of this month's tasks (UTC).", spent),
            ("taskyard_budget_limit_usd", "This month's budget in USD.", limit),
            ("taskyard_budget_used_ratio", "This month's spend / budget (1: exhausted).", ratio),
        ):
            self.registry.register(_LiveGauge(name, doc, [], gauge))

    def watch_queue(self, counts: Callable[[], dict[str, int]]) -> None:
        self.registry.register(_QueueDepth(counts))

    def watch_store(
        self,
        events: Callable[[], dict[str, int]],
        dead_letters: Callable[[], dict[str, int]],
        disk: Callable[[], int],
        disk_seconds: float,
    ) -> None:
        """What every process that answers `/metrics` reads at scrape time: events by state,
        dead letters, and the workspaces' disk (measured at most every `disk_seconds`)."""
        self.watch_queue(events)
        self.watch_dead_letters(dead_letters)
        self.watch_workspace_disk(disk, disk_seconds)


def refusal_reason(why: str | None) -> str:
    """The metric label of a refused decision's reason."""
    text = (why or "").lower()
    for label, words in (
        ("not_authorised", ("not authorised",)),
        ("already_decided", ("already",)),
        ("expired", ("expired",)),
        ("forged", ("signature", "forged", "replay")),
    ):
        if any(w in text for w in words):
            return label
    return "invalid"


# --- logging ------------------------------------------------------------------------------

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}
# Which fields count as secret, and how values are redacted: `taskyard.util.redaction` (one rule
# for these logs and for what agents print).
SECRET_WORDS = tuple(sorted(_SECRET_WORDS))


_LOG_FIELDS: ContextVar[tuple[tuple[str, str], ...]] = ContextVar("taskyard_log", default=())


@contextmanager
def log_context(**fields: str | None) -> Iterator[None]:
    """Every log record made inside (in this task, and in the tasks and threads it starts)
    carries `fields` (event_id, task_id), unless the record names them itself."""
    merged = dict(_LOG_FIELDS.get())
    merged.update({k: v for k, v in fields.items() if v is not None})
    token = _LOG_FIELDS.set(tuple(merged.items()))
    try:
        yield
    finally:
        _LOG_FIELDS.reset(token)


class ContextFilter(logging.Filter):
    """Adds the fields of the enclosing `log_context` to each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _LOG_FIELDS.get():
            if key not in record.__dict__:
                setattr(record, key, value)
        return True


class _Redacting(logging.Formatter):
    """Replaces every configured secret (as written, and as JSON escapes it) in the line."""

    def __init__(self, secrets: Iterable[str] = (), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.redactor = Redactor(secrets)

    def add_secrets(self, secrets: Iterable[str]) -> None:
        self.redactor = self.redactor.with_secrets(secrets)

    def redact(self, text: str) -> str:
        return self.redactor.redact(text)


class TextFormatter(_Redacting):
    def format(self, record: logging.LogRecord) -> str:
        return self.redact(super().format(record))


class JsonFormatter(_Redacting):
    """One JSON object per line: time, level, logger, message and the record's extra fields;
    fields named like a secret, and the configured secrets anywhere, are redacted."""

    def format(self, record: logging.LogRecord) -> str:
        return self.redact(self._json(record))

    def _json(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": round(record.created, 3),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                data[key] = REDACTED if secret_field(key) else value
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(data, default=str).decode()


def setup_logging(level: str = "INFO", fmt: str = "json", secrets: Iterable[str] = ()) -> None:
    """One handler on stderr: JSON lines (or text), with the `log_context` fields, and
    `secrets` (e.g. `Settings.secrets()`) redacted."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter(secrets))
    else:
        text = "%(asctime)s %(levelname)s %(name)s: %(message)s"
        handler.setFormatter(TextFormatter(secrets, fmt=text))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)


def redact_in_logs(secrets: Iterable[str]) -> None:
    """Redact `secrets` from now on in the lines of the handlers `setup_logging` installed."""
    wanted = tuple(secrets)
    for handler in logging.getLogger().handlers:
        if isinstance(handler.formatter, _Redacting):
            handler.formatter.add_secrets(wanted)
