"""A pull request's checkout gets its agent files from the base branch, not from the PR.

Agent CLIs read instructions and configuration from the repository they work in: codex reads
`AGENTS.md` (and `AGENTS.override.md`) in every directory from the repository root down to its
working directory, and project settings in `.codex/`; claude reads `CLAUDE.md` (and
`CLAUDE.local.md`) the same way, plus `.claude/` (settings, hooks that run commands, agents,
commands) and `.mcp.json` (MCP servers it starts); codex also loads skills (instructions)
from `.agents/skills`. Whoever opens a pull request could so give the reviewing agent
instructions, hooks or tools. After a pull request's head is checked out,
every such path, at any depth (both CLIs read nested ones) and in any form (file, symlink,
directory), is made what it is in the base commit: changed back, or removed when the base has
none. The base commit is the payload's `pull_request.base.sha`, else the tip of its base
branch, else the repository's default branch; when none is in the mirror, the files are
removed. The PR's versions stay readable as data (`git diff`, `git show`): only the working
tree changes (the index keeps the PR's head, so `git status` shows them as modified).

Checkouts that are not of a pull request (a push, a branch, a tag) keep their files: their
authors could already change the repository.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from taskyard.exceptions import WorkspaceError
from taskyard.run.mirrors import RepoMirrors, RepoSpec

log = logging.getLogger(__name__)

AGENT_FILES = frozenset({"AGENTS.md", "AGENTS.override.md", "CLAUDE.md", "CLAUDE.local.md"})
AGENT_FILES_ANYWHERE = AGENT_FILES | {".mcp.json"}
# `.agents/skills/*/SKILL.md`: codex's repository skills (instructions it loads when a skill's
# description matches the task), found in every `.agents/skills` from the working directory up.
AGENT_DIRS = frozenset({".claude", ".codex", ".agents"})
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"  # git's well-known empty tree


def is_agent_file(path: str) -> bool:
    """Whether a repository path is (or is inside) an agent instruction or config file."""
    parts = path.split("/")
    return parts[-1] in AGENT_FILES_ANYWHERE or not AGENT_DIRS.isdisjoint(parts)


def _base_candidates(repo: RepoSpec) -> Iterable[str]:
    if repo.base_sha:
        yield repo.base_sha
    if repo.base_ref:
        yield f"refs/heads/{repo.base_ref}"
    yield "HEAD"  # the mirror's HEAD: the default branch


async def base_commit(mirrors: RepoMirrors, repo: RepoSpec) -> str | None:
    """The first of the base sha, the base branch and the default branch in the mirror."""
    mirror = mirrors.path_for(repo.full_name)
    for revision in _base_candidates(repo):
        args = ("rev-parse", "--verify", "--quiet", "--end-of-options", f"{revision}^{{commit}}")
        out = await mirrors.git(mirror, *args, what=f"resolve {revision}")
        if out and out.strip():
            return out.strip()
    return None


async def _paths(mirrors: RepoMirrors, mirror: Path, commit: str) -> set[str]:
    out = await mirrors.git(mirror, "ls-tree", "-r", "-z", "--name-only", commit, what="ls-tree")
    if out is None:
        raise WorkspaceError(f"cannot list the files of {commit[:12]}")
    return {p for p in out.split("\0") if p}


async def use_base_agent_files(
    mirrors: RepoMirrors, repo: RepoSpec, worktree: Path, head: str
) -> list[str]:
    """Make the agent files of a pull request's worktree (checked out at `head`) the base's;
    the paths that changed. Nothing for a checkout that is not of a pull request."""
    if repo.pr_number is None:
        return []
    mirror = mirrors.path_for(repo.full_name)
    base = await base_commit(mirrors, repo)
    found = await _paths(mirrors, mirror, head)
    if base is not None:
        found |= await _paths(mirrors, mirror, base)
    paths = sorted(p for p in found if is_agent_file(p))
    if not paths:
        return []
    literal = [f":(literal){p}" for p in paths]
    what = f"cannot restore the base's agent files in {worktree}"
    restore = ("restore", f"--source={base or EMPTY_TREE}", "--worktree", "--", *literal)
    if await mirrors.git(worktree, *restore, what=what) is None:
        raise WorkspaceError(what)
    changed = await mirrors.git(
        worktree, "diff", "--name-only", "-z", head, "--", *literal, what=what
    )
    replaced = [p for p in (changed or "").split("\0") if p]
    if replaced:
        log.warning(
            "pull request's agent files replaced by the base's",
            extra={"repository": repo.full_name, "base": base, "paths": replaced},
        )
    return replaced
