"""`taskyard doctor`: what is configured and whether it works, without printing secrets."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping

from taskyard.config import BUILTIN_SOURCES, Settings
from taskyard.exceptions import TaskyardError
from taskyard.store import SQLStore
from taskyard.store.backends import redact_url


def run_checks(
    settings: Settings, environ: Mapping[str, str] | None = None
) -> Iterator[tuple[bool, str]]:
    home = settings.home.resolve()
    try:
        home.mkdir(parents=True, exist_ok=True)
        writable = os.access(home, os.W_OK)
    except OSError:
        writable = False
    yield writable, f"data directory {home} is writable"
    url = redact_url(settings.store_url)
    try:
        store = SQLStore.open(settings.store_url)
        store.ping()
        store.close()
        yield True, f"database {url} answers"
    except TaskyardError as exc:
        yield False, f"database {url}: {exc}"
    enabled = [s for s in BUILTIN_SOURCES if settings.source(s).enabled]
    enabled += [f"generic/{n}" for n, c in settings.generic.items() if c.enabled]
    yield (
        bool(enabled),
        "enabled sources: " + (", ".join(enabled) or "none (set TASKYARD_<SOURCE>_SECRET)"),
    )
    for name in BUILTIN_SOURCES:
        cfg = settings.source(name)
        if cfg.enabled:
            limit = cfg.rate_limit_per_hour or "no limit"
            yield (
                True,
                (
                    f"{name}: {len(cfg.secrets)} secret(s), rate limit {limit}/h, "
                    f"allowlist {', '.join(map(str, cfg.allow_ips)) or 'any address'}"
                ),
            )
    yield from _route_checks(settings, environ or {})
    from taskyard.agents.box import sandbox_report

    yield from sandbox_report(settings.runs)
    yield from _action_checks(settings)


def _action_checks(settings: Settings) -> Iterator[tuple[bool, str]]:
    """Which platforms taskyard can write to, and which routes run in dry-run."""
    p = settings.platforms
    writers = [
        name
        for name, held in (
            ("github", p.github.token or p.github.app_id),
            ("linear", p.linear.api_key),
            ("slack", p.slack.bot_token),
        )
        if held
    ]
    yield True, "platform writes: " + (", ".join(writers) or "none (no write credentials)")
    for route in settings.routes:
        dry = settings.actions.dry_run_for(route.name, p.can_write)
        allowed = ", ".join(settings.actions.allow.get(route.name, ())) or "nothing"
        mode = "dry-run (recorded, never sent)" if dry else "live"
        yield True, f"route {route.name}: actions {mode}; may apply {allowed}"
    team = settings.actions.default_linear_team
    if team is None:
        yield True, "actions.default_linear_team unset: Slack and Sentry open no Linear issues"


def agent_problems(settings: Settings, environ: Mapping[str, str]) -> Iterator[str]:
    """Each route whose prompt or agent is not ready (agent binary not found, no model key),
    as doctor says it: `route NAME: why`. `serve` warns with these at startup."""
    for ok, line in _route_checks(settings, environ):
        if not ok:
            yield line


def _route_checks(settings: Settings, environ: Mapping[str, str]) -> Iterator[tuple[bool, str]]:
    """Each route's prompt and agent: the binary found, a model provider and key set."""
    from taskyard.agents.cli_support import resolve_binary
    from taskyard.run.prompts import PromptLibrary

    prompts = PromptLibrary(settings.runs.prompts_dir)
    path = {"PATH": environ.get("PATH", "")}
    for route in settings.routes:
        try:
            prompts.check(route.prompt or "default")
            agent = settings.agents[route.agent]
            where = ", ".join(route.on)
            if agent.kind in ("codex", "claude"):
                binary = resolve_binary(agent, agent.kind, path)
                if not agent.api_key:
                    raise TaskyardError(
                        f"agent {route.agent!r} has no model key (agents.{route.agent}.api_key, "
                        f"or {'OPENAI' if agent.kind == 'codex' else 'ANTHROPIC'}_API_KEY)"
                    )
                where += f" → {agent.kind} {binary} at {agent.base_url or 'the default URL'}"
            yield True, f"route {route.name}: {where}"
        except (TaskyardError, KeyError) as exc:
            yield False, f"route {route.name}: {exc}"
