"""Building the settings once (by the CLI) from `taskyard.yaml` and env.

Nothing else in taskyard reads the environment: `load_settings` takes the mapping it is given.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from taskyard.config.agents import default_agents
from taskyard.config.settings import Settings
from taskyard.exceptions import ConfigError

_SECRET_ENV = {
    "github": "TASKYARD_GITHUB_SECRET",
    "linear": "TASKYARD_LINEAR_SECRET",
    "slack": "TASKYARD_SLACK_SECRET",
    "sentry": "TASKYARD_SENTRY_SECRET",
    "discord": "TASKYARD_DISCORD_PUBLIC_KEY",
}


def _split_secrets(raw: str) -> tuple[str, ...]:
    """Env secrets: several are separated by commas (rotation); blanks are dropped."""
    return tuple(s.strip() for s in raw.split(",") if s.strip())


def _merge_source(data: dict[str, Any], key: str, name: str, secrets: tuple[str, ...]) -> None:
    section = data.setdefault(key, {})
    entry = dict(section.get(name) or {})
    entry["secrets"] = tuple(secrets) + tuple(
        s for s in entry.get("secrets", ()) if s not in secrets
    )
    section[name] = entry


_PLATFORM_ENV = {
    "TASKYARD_GITHUB_TOKEN": ("github", "token"),
    "TASKYARD_GITHUB_APP_ID": ("github", "app_id"),
    "TASKYARD_GITHUB_APP_PRIVATE_KEY": ("github", "app_private_key"),
    "TASKYARD_GITHUB_APP_PRIVATE_KEY_FILE": ("github", "app_private_key_file"),
    "TASKYARD_GITHUB_INSTALLATION_ID": ("github", "installation_id"),
    "TASKYARD_LINEAR_API_KEY": ("linear", "api_key"),
    "TASKYARD_SLACK_BOT_TOKEN": ("slack", "bot_token"),
    "TASKYARD_SENTRY_TOKEN": ("sentry", "token"),
}


def _apply_platform_env(data: dict[str, Any], environ: Mapping[str, str]) -> None:
    platforms = dict(data.get("platforms") or {})
    for env, (platform, key) in _PLATFORM_ENV.items():
        if environ.get(env, "").strip():
            platforms[platform] = {**(platforms.get(platform) or {}), key: environ[env].strip()}
    if platforms:
        data["platforms"] = platforms


def _apply_env(data: dict[str, Any], environ: Mapping[str, str]) -> None:
    scalars = {
        "TASKYARD_HOME": "home",
        "TASKYARD_DATABASE_URL": "database_url",
        "TASKYARD_WORKER_ID": "worker_id",
        "TASKYARD_LOG_LEVEL": "log_level",
        "TASKYARD_LOG_FORMAT": "log_format",
        "TASKYARD_API_TOKEN": "api_token",
    }
    for env, key in scalars.items():
        if environ.get(env):
            data[key] = environ[env]
    if environ.get("TASKYARD_INTAKE_PROCESSES"):
        intake = data.get("intake") or {}
        data["intake"] = {**intake, "processes": environ["TASKYARD_INTAKE_PROCESSES"]}
    if environ.get("TASKYARD_BUDGET_MONTHLY_USD", "").strip():
        budget = data.get("budget") or {}
        data["budget"] = {**budget, "monthly_usd": environ["TASKYARD_BUDGET_MONTHLY_USD"].strip()}
    otlp = environ.get("TASKYARD_OTLP_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if otlp and otlp.strip():
        data["tracing"] = {**(data.get("tracing") or {}), "otlp_endpoint": otlp.strip()}
    if environ.get("TASKYARD_GIT_URL_TEMPLATE"):
        runs = data.get("runs") or {}
        data["runs"] = {**runs, "git_url_template": environ["TASKYARD_GIT_URL_TEMPLATE"]}
    for source, env in _SECRET_ENV.items():
        if environ.get(env):
            _merge_source(data, "sources", source, _split_secrets(environ[env]))
    for env, value in environ.items():
        match = re.fullmatch(r"TASKYARD_GENERIC_([A-Z0-9_]+)_SECRET", env)
        if match and value.strip():
            name = match.group(1).lower()
            existing = {n.replace("-", "_"): n for n in data.get("generic", {}) or {}}
            _merge_source(data, "generic", existing.get(name, name), _split_secrets(value))
    _apply_platform_env(data, environ)
    _apply_model_env(data, environ)


# The agents' model providers: when set, these win over the config for every agent of a kind.
_MODEL_ENV = {
    "codex": ("OPENAI_BASE_URL", "OPENAI_API_KEY"),
    "claude": ("ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY"),
}


def _apply_model_env(data: dict[str, Any], environ: Mapping[str, str]) -> None:
    if not any(environ.get(v) for pair in _MODEL_ENV.values() for v in pair):
        return
    agents = data.get("agents")
    if agents is None:
        agents = {n: a.model_dump(exclude_unset=True) for n, a in default_agents().items()}
    merged: dict[str, Any] = {}
    for name, agent in dict(agents).items():
        entry = dict(agent or {})
        url_env, key_env = _MODEL_ENV.get(str(entry.get("kind")), ("", ""))
        if url_env and environ.get(url_env):
            entry["base_url"] = environ[url_env]
        if key_env and environ.get(key_env):
            entry["api_key"] = environ[key_env]
        merged[name] = entry
    data["agents"] = merged


def load_settings(
    path: Path | None,
    environ: Mapping[str, str],
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build the settings: the YAML file (if any), then env, then explicit overrides (flags)."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read config {path}: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"config {path} must be a mapping at the top level")
        data = loaded
    _apply_env(data, environ)
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    if "intake_processes" in given:  # a flag for a nested setting
        data["intake"] = {**(data.get("intake") or {}), "processes": given.pop("intake_processes")}
    data.update(given)
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"invalid configuration: {exc}") from exc
