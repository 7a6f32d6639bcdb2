"""One typed, frozen settings object, built once (by the CLI) from `taskyard.yaml` and env:
`load_settings(path, environ)` gives the `Settings`; its sections are the models below."""

from taskyard.config.agents import AgentConfig, RunsConfig, default_agents
from taskyard.config.changes import ChangesConfig
from taskyard.config.load import load_settings
from taskyard.config.sections import (
    ActionsConfig,
    ApprovalChannels,
    ApprovalsConfig,
    BudgetConfig,
    GitHubPlatformConfig,
    IntakeConfig,
    IPNetwork,
    LinearApprovalHub,
    LinearPlatformConfig,
    MetricsConfig,
    ModelPrice,
    PlatformsConfig,
    PriorityRule,
    QueueConfig,
    ReportingConfig,
    RetryConfig,
    SentryPlatformConfig,
    SlackPlatformConfig,
    SourceConfig,
    StartReport,
    TracingConfig,
    default_priority_rules,
)
from taskyard.config.settings import BUILTIN_SOURCES, Settings

__all__ = [
    "BUILTIN_SOURCES",
    "ActionsConfig",
    "AgentConfig",
    "ApprovalChannels",
    "ApprovalsConfig",
    "BudgetConfig",
    "ChangesConfig",
    "GitHubPlatformConfig",
    "IPNetwork",
    "IntakeConfig",
    "LinearApprovalHub",
    "LinearPlatformConfig",
    "MetricsConfig",
    "ModelPrice",
    "PlatformsConfig",
    "PriorityRule",
    "QueueConfig",
    "ReportingConfig",
    "RetryConfig",
    "RunsConfig",
    "SentryPlatformConfig",
    "Settings",
    "SlackPlatformConfig",
    "SourceConfig",
    "StartReport",
    "TracingConfig",
    "default_agents",
    "default_priority_rules",
    "load_settings",
]
