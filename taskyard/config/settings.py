"""`Settings`: the one typed, frozen settings object every part of taskyard is given."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator

from taskyard.config.agents import AgentConfig, RunsConfig, default_agents
from taskyard.config.changes import ChangesConfig
from taskyard.config.default_routes import default_routes
from taskyard.config.events import EventsConfig
from taskyard.config.ideas import IdeasConfig
from taskyard.config.routes import Routes, RoutingSettings, change_problems, unknown_agents
from taskyard.config.sections import (
    ActionsConfig,
    ApprovalsConfig,
    BudgetConfig,
    IntakeConfig,
    MetricsConfig,
    PlatformsConfig,
    PriorityRule,
    QueueConfig,
    ReportingConfig,
    SourceConfig,
    TracingConfig,
    _Frozen,
    default_priority_rules,
)
from taskyard.models import Priority
from taskyard.util.redaction import secret_field

BUILTIN_SOURCES = ("github", "linear", "slack", "sentry", "discord")
_GENERIC_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


class Settings(_Frozen):
    # Validation errors never echo input values: they may be secrets or platform credentials.
    model_config = ConfigDict(
        frozen=True, extra="forbid", populate_by_name=True, hide_input_in_errors=True
    )

    home: Path = Path(".taskyard")
    database_url: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    worker_id: str | None = None
    log_level: str = "INFO"
    log_format: str = "json"
    sources: dict[str, SourceConfig] = Field(default_factory=dict)
    generic: dict[str, SourceConfig] = Field(default_factory=dict)
    intake: IntakeConfig = IntakeConfig()
    queue: QueueConfig = QueueConfig()
    priority_rules: tuple[PriorityRule, ...] = Field(default_factory=default_priority_rules)
    default_priority: Priority = Priority.P2
    handlers: dict[str, str] = Field(default_factory=dict)  # job name → "module:function"
    agents: dict[str, AgentConfig] = Field(default_factory=default_agents)
    runs: RunsConfig = RunsConfig()
    platforms: PlatformsConfig = PlatformsConfig()
    routes: Routes = Field(default_factory=default_routes)
    routing: RoutingSettings = RoutingSettings()
    actions: ActionsConfig = ActionsConfig()
    reporting: ReportingConfig = ReportingConfig()
    approvals: ApprovalsConfig = ApprovalsConfig()
    budget: BudgetConfig = BudgetConfig()
    tracing: TracingConfig = TracingConfig()
    metrics: MetricsConfig = MetricsConfig()
    changes: ChangesConfig = ChangesConfig()
    ideas: IdeasConfig = IdeasConfig()
    events: EventsConfig = EventsConfig()
    api_token: SecretStr | None = None  # the management API's bearer token (TASKYARD_API_TOKEN)

    @model_validator(mode="after")
    def _route_agents(self) -> Settings:
        problems = unknown_agents(self.routes, list(self.agents))
        problems += change_problems(self.routes, {n: a.kind for n, a in self.agents.items()})
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @field_validator("default_priority", mode="before")
    @classmethod
    def _default_priority(cls, value: Any) -> Any:
        return Priority.parse(value) if isinstance(value, str | int) else value

    @field_validator("generic")
    @classmethod
    def _generic_names(cls, value: dict[str, SourceConfig]) -> dict[str, SourceConfig]:
        for name in value:
            if not _GENERIC_NAME.match(name) or name in BUILTIN_SOURCES:
                raise ValueError(f"generic source name {name!r} is not allowed")
        return value

    @property
    def store_url(self) -> str:
        """The database taskyard keeps its own tables in."""
        return self.database_url or f"sqlite:///{(self.home / 'taskyard.db').resolve()}"

    def secrets(self) -> tuple[str, ...]:
        """Every secret the settings hold: platform credentials, webhook secrets, model keys
        (for redaction, and for tests that scan for leaks)."""
        p = self.platforms
        held = [p.github.token, p.github.app_private_key, p.linear.api_key, p.slack.bot_token]
        held += [p.sentry.token, self.api_token]
        found = [s.get_secret_value() for s in held if s is not None]
        for source in (*self.sources.values(), *self.generic.values()):
            found.extend(source.secrets)
        found.extend(a.api_key for a in self.agents.values() if a.api_key)
        for agent in self.agents.values():  # e.g. env: {OPENAI_API_KEY: ...}
            found.extend(v for k, v in agent.env.items() if secret_field(k))
        found.append(urlsplit(self.database_url or "").password or "")
        found.extend(self.events.secrets())  # a NATS URL's password or token
        return tuple(dict.fromkeys(s for s in found if s))

    def source(self, name: str) -> SourceConfig:
        """The config of a built-in source, or of `generic/<name>` given as `generic:<name>`."""
        if name.startswith("generic:"):
            return self.generic.get(name.split(":", 1)[1], SourceConfig())
        return self.sources.get(name, SourceConfig())
