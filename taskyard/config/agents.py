"""The agents routes can name, and how they run: caps, resource limits, workspaces, sandbox."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from taskyard.config.sections import _Frozen


class AgentConfig(_Frozen):
    """One agent a route can name. `kind` picks the adapter: command, codex or claude."""

    kind: str
    binary: str | None = None  # codex/claude: a path, or a name looked up on PATH
    argv: tuple[str, ...] = ()  # command: the argv to run
    model: str | None = None
    base_url: str | None = None  # the model provider's URL (codex: …/v1; claude: the root)
    api_key: str | None = None  # the agent's own model key: the only secret it ever gets
    max_concurrency: int | None = Field(default=None, ge=1)  # None: only the global cap
    timeout_seconds: float | None = Field(default=None, gt=0)  # None: runs.timeout_seconds
    max_tool_calls: int | None = Field(default=None, ge=1)  # None: runs.max_tool_calls
    max_turns: int = Field(default=30, ge=1)
    env: dict[str, str] = Field(default_factory=dict)  # extra variables passed to the agent
    # Prices in USD per million tokens, for agents whose stream gives tokens but no cost.
    input_usd_per_mtok: float | None = Field(default=None, ge=0)
    cached_input_usd_per_mtok: float | None = Field(default=None, ge=0)
    output_usd_per_mtok: float | None = Field(default=None, ge=0)
    # Resource limits; None means the runs: defaults. 0 turns a limit off.
    address_space_bytes: int | None = Field(default=None, ge=0)
    cpu_seconds: int | None = Field(default=None, ge=0)


def default_agents() -> dict[str, AgentConfig]:
    return {
        "codex": AgentConfig(kind="codex", binary="codex", model="gpt-5.5"),
        # Claude Code's runtime reserves more address space than 2 GiB at start (it aborts
        # with "MemoryExhaustion" below about 2.2 GiB), so its own default is 4 GiB.
        "claude": AgentConfig(
            kind="claude",
            binary="claude",
            model="claude-sonnet-4-5",
            address_space_bytes=4 * 1024**3,
        ),
    }


class RunsConfig(_Frozen):
    """How agents run: caps, limits, workspaces."""

    concurrency: int = Field(default=3, ge=1)  # agents alive at once, over all agents
    timeout_seconds: float = Field(default=300.0, gt=0)
    kill_grace_seconds: float = Field(default=5.0, ge=0)  # TERM, then KILL after this
    max_tool_calls: int = Field(default=50, ge=1)
    address_space_bytes: int = Field(default=2 * 1024**3, ge=0)  # 0 = no limit
    cpu_seconds: int = Field(default=600, ge=0)  # 0 = no limit
    attempts: int = Field(default=2, ge=1)  # runs of a task cut short by a lost worker
    workspace_root: Path | None = None  # default $TASKYARD_HOME/workspaces
    keep_workspaces: bool = False
    stale_workspace_hours: float = Field(default=6.0, gt=0)
    prompts_dir: Path | None = None  # templates here override the shipped ones
    # Where repositories are cloned from: repo_urls["owner/repo"] wins, then the template
    # (placeholders {owner} and {repo}), then https://github.com/{owner}/{repo}.git.
    git_url_template: str | None = None
    repo_urls: dict[str, str] = Field(default_factory=dict)
    env_allowlist: tuple[str, ...] = ("PATH", "LANG", "LC_ALL", "TZ", "TERM")
    # The agent's box (taskyard.agents.sandbox): auto = bubblewrap, and no agent runs when it
    # cannot be used; none = no sandbox at all (an explicit choice, warned about at startup).
    sandbox: Literal["auto", "bwrap", "none"] = "auto"
    sandbox_read_only: tuple[Path, ...] = ()  # more paths agents may read inside the box
    # For the whole task, all its processes together (cgroup v2/v1 where available; else
    # per process only: see taskyard.agents.cgroups). 0 = no limit.
    memory_bytes: int = Field(default=4 * 1024**3, ge=0)
    max_processes: int = Field(default=512, ge=0)
    # The disk floor (taskyard.agents.diskfloor): a task is stopped once free space on its
    # workspace's filesystem falls below this (at most half of what was free at its start).
    min_free_disk_bytes: int = Field(default=1024**3, ge=0)
    # The agent's log (outputs/log.jsonl): lines past this many bytes are dropped, and one
    # closing line says how many; the copy kept with the task after its workspace is gone
    # is the same file (see taskyard.run.tasklogs).
    log_max_bytes: int = Field(default=10 * 1024 * 1024, ge=4096)

    @field_validator("git_url_template")
    @classmethod
    def _url_template(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                value.format(owner="o", repo="r")
            except (KeyError, IndexError, AttributeError, ValueError) as exc:
                raise ValueError(f"git_url_template: only {{owner}} and {{repo}}: {exc}") from exc
        return value
