"""The public names of taskyard's packages: each `__init__.py`'s `__all__`, listed here, so
adding or removing one is a visible change of this file (as httpx locks its exports)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "taskyard"

PUBLIC_NAMES: dict[str, list[str]] = {
    "taskyard": ["__version__"],
    "taskyard.actions": [],
    "taskyard.agents": ["ADAPTERS", "build_adapter"],
    "taskyard.approvals": [],
    "taskyard.approvals.channels": ["ApprovalChannels", "Channel", "DecisionRequest", "Lookup"],
    "taskyard.cli": ["main"],
    "taskyard.config": [
        "ActionsConfig",
        "AgentConfig",
        "ApprovalChannels",
        "ApprovalsConfig",
        "BUILTIN_SOURCES",
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
    ],
    "taskyard.devtools": [],
    "taskyard.ideas": [],
    "taskyard.intake": [
        "ADAPTER_TYPES",
        "DiscordAdapter",
        "GENERIC_PREFIX",
        "GenericAdapter",
        "GitHubAdapter",
        "LinearAdapter",
        "Normalised",
        "Reply",
        "SentryAdapter",
        "Signed",
        "SlackAdapter",
        "SourceAdapter",
        "make_adapter",
        "source_key",
    ],
    "taskyard.observe": [],
    "taskyard.platforms": [
        "ContextReport",
        "ContextSubject",
        "FETCHERS",
        "FetchResult",
        "FetchStatus",
        "GitHubReader",
        "JSONObject",
        "LinearReader",
        "PermissionLookup",
        "Platforms",
        "RetryPolicy",
        "SentryReader",
        "SlackReader",
        "gather_context",
        "subject_from_payload",
        "validate_fetcher_names",
    ],
    "taskyard.policy": [],
    "taskyard.queue": ["Handler", "JobContext", "JobQueue", "JobRuntime", "ROUTE_JOB"],
    "taskyard.review": [
        "ChangeLimits",
        "DiffStats",
        "Finding",
        "SecretFinding",
        "Suggestion",
        "SuggestionPlan",
        "check_change",
        "commentable_lines",
        "commit_with_review_hash",
        "commits_in",
        "diff_stats",
        "review_request",
        "scan_secrets",
        "staged_hash",
        "suggestions_from_diff",
        "tree_hash",
        "verify_range",
    ],
    "taskyard.routing": [
        "Actor",
        "DRAFT",
        "FilterConfig",
        "Permission",
        "PermissionLookup",
        "RouteConfig",
        "RouteMatch",
        "Routes",
        "RoutingDecision",
        "RoutingSettings",
        "Skip",
        "Subject",
        "Verdict",
        "WhoConfig",
        "default_routes",
        "may_trigger",
        "payload_of",
        "select_routes",
        "unknown_agents",
    ],
    "taskyard.run": [],
    "taskyard.service": [],
    "taskyard.store": [
        "Dispatch",
        "EventFilter",
        "MemoryStore",
        "NewEvent",
        "SQLStore",
        "Store",
        "open_store",
    ],
    "taskyard.tools": [
        "BridgeClient",
        "NOT_ALLOWED",
        "SOCKET_NAME",
        "ToolAnswer",
        "ToolBridge",
        "ToolHandler",
        "ToolSpec",
    ],
    "taskyard.util": [],
    "taskyard.web": [],
}

# Bound at the top of an `__init__.py` without being exported: its logger.
NOT_EXPORTED = {"log"}


def _init_files() -> dict[str, Path]:
    return {
        ".".join(path.parent.relative_to(PACKAGE.parent).parts): path
        for path in sorted(PACKAGE.rglob("__init__.py"))
    }


def _defined_names(path: Path) -> set[str]:
    """The names an `__init__.py` defines itself (functions, classes, assignments): each
    public one is either exported or a known exception."""
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return {name for name in names if not name.startswith("_") or name == "__version__"}


def test_every_package_is_listed() -> None:
    assert sorted(_init_files()) == sorted(PUBLIC_NAMES)


@pytest.mark.parametrize("package", sorted(PUBLIC_NAMES))
def test_public_names(package: str) -> None:
    module = importlib.import_module(package)
    exported = list(getattr(module, "__all__", []))
    assert sorted(exported) == sorted(PUBLIC_NAMES[package])
    assert len(set(exported)) == len(exported), "a name listed twice in __all__"
    missing = [name for name in exported if not hasattr(module, name)]
    assert not missing, f"__all__ names what {package} does not have"


@pytest.mark.parametrize("package", sorted(PUBLIC_NAMES))
def test_defined_names_are_exported(package: str) -> None:
    defined = _defined_names(_init_files()[package]) - NOT_EXPORTED
    assert defined <= set(PUBLIC_NAMES[package]), f"{package} defines names not in __all__"
