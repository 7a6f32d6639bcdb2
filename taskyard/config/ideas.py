"""The `ideas:` section: how ideas come in (`github_label`, Discord's `/idea`), how they are
planned (`planner_agent`, `max_replans`, `max_tasks`) and run (`route`: the change route their
tasks copy; the heavy-task limits), what they may spend, and how they end (one pull request,
or one per milestone)."""

from __future__ import annotations

from pydantic import Field, field_validator

from taskyard.config.sections import _Frozen


class IdeasConfig(_Frozen):
    """`github_label`: an opened issue carrying it is an idea (so is one written from the idea
    issue form, label or not). `public_url`: taskyard's address as people reach it, for the
    links it answers with (`{public_url}/ui/ideas/{id}`; None: `http://{host}:{port}`).
    `discord_api_url`: where Discord's interaction webhooks are (tests point it elsewhere)."""

    github_label: str = "idea"
    planner_agent: str = "codex"
    route: str | None = None  # the change route an idea's tasks are made from
    max_replans: int = Field(default=2, ge=0)
    max_tasks: int = Field(default=30, ge=1)
    heavy_limit_per_idea: int = Field(default=2, ge=1)
    heavy_limit: int = Field(default=4, ge=1)
    budget_usd: float | None = Field(default=None, gt=0)  # each idea's, unless it says its own
    # One pull request per milestone of the plan, each on the one before, instead of one.
    pr_per_milestone: bool = False
    public_url: str | None = None
    discord_api_url: str = "https://discord.com/api/v10"

    @field_validator("github_label")
    @classmethod
    def _label(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("ideas.github_label: a blank label marks nothing")
        return value.strip()

    @field_validator("public_url", "discord_api_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("ideas: a URL starts with http:// or https://")
        return value.rstrip("/") if value else value
