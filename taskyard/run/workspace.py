"""Task workspaces: one directory tree per task, and a git worktree when a repository is needed.

Layout (DESIGN, "Contracts"), under the workspace root::

    task-<id>/
        workspace/            the agent's cwd; workspace/repo/ is a detached git worktree
        context/<name>.json   what taskyard gathered for the agent
        prompts/<name>.md     the rendered prompts
        outputs/              result.json, log.jsonl, artifacts/
        repo.json             which repository and commit workspace/repo/ is (with a repo only)

The repository comes from `taskyard.run.mirrors` (cached bare mirror, `git worktree add --detach`).
A finished workspace is moved to `<archive>/task-<id>` (failed, or kept by setting) with its
worktree unregistered, or removed; workspaces untouched for `stale_hours` are swept on start.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import shutil
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import orjson

from taskyard.config import Settings
from taskyard.exceptions import WorkspaceError
from taskyard.run.agentfiles import use_base_agent_files
from taskyard.run.mirrors import (
    GitAuth,
    RepoMirrors,
    RepoSpec,
    git_environment,
    public_url,
    url_resolver,
)
from taskyard.util.flattree import flatten_tree
from taskyard.util.private import private_dir

__all__ = [
    "RepoSpec",
    "TaskDirs",
    "TaskWorkspace",
    "Workspaces",
    "check_task_id",
    "remove_tree",
    "tree_bytes",
]

log = logging.getLogger(__name__)
_T = TypeVar("_T")

_TASK_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")


# --- layout ---------------------------------------------------------------------------------


def check_task_id(task_id: str) -> str:
    """A task id becomes a directory name: letters, digits, `_.-`, not starting with a dot."""
    if not _TASK_ID.fullmatch(task_id):
        raise ValueError(f"task id {task_id!r} cannot name a workspace")
    return task_id


@dataclass(frozen=True, slots=True)
class TaskDirs:
    """The paths of one task's workspace; `commit` is what `repo` was checked out at."""

    task_id: str
    root: Path
    workspace: Path
    repo: Path | None
    context: Path
    prompts: Path
    outputs: Path
    artifacts: Path
    commit: str | None = None

    @classmethod
    def layout(cls, root: Path, task_id: str, *, with_repo: bool) -> TaskDirs:
        task = root / f"task-{check_task_id(task_id)}"
        outputs = task / "outputs"
        return cls(
            task_id=task_id,
            root=task,
            workspace=task / "workspace",
            repo=task / "workspace" / "repo" if with_repo else None,
            context=task / "context",
            prompts=task / "prompts",
            outputs=outputs,
            artifacts=outputs / "artifacts",
        )

    @property
    def result_file(self) -> Path:
        return self.outputs / "result.json"

    @property
    def log_file(self) -> Path:
        return self.outputs / "log.jsonl"

    @property
    def repo_info_file(self) -> Path:
        return self.root / "repo.json"

    def prompt_file(self, name: str) -> Path:
        return self.prompts / f"{_file_name(name)}.md"

    def context_file(self, name: str) -> Path:
        return self.context / f"{_file_name(name)}.json"

    def prompt_values(self, task_id: str, route: str, schema: Mapping[str, Any]) -> dict[str, Any]:
        """What every prompt template is given of taskyard's own (`taskyard.run.prompts`):
        the task, its route, its paths and the result's JSON Schema."""
        return {
            "task_id": task_id,
            "route": route,
            "workspace": str(self.workspace),
            "repo": str(self.repo) if self.repo else None,
            "context_dir": str(self.context),
            "output_dir": str(self.outputs),
            "result_schema": orjson.dumps(schema, option=orjson.OPT_INDENT_2).decode(),
        }

    def agent_env(self) -> dict[str, str]:
        """The variables that tell the agent where things are (DESIGN)."""
        return {
            "TASK_ID": self.task_id,
            "CONTEXT_DIR": str(self.context),
            "OUTPUT_DIR": str(self.outputs),
        }

    def create(self) -> None:
        """The tree, private to taskyard's user (and the agent, run as it): 0700 from the
        workspaces root down."""
        private_dir(self.root.parent)
        private_dir(self.root)
        for path in (self.workspace, self.context, self.prompts, self.outputs, self.artifacts):
            path.mkdir(mode=0o700, exist_ok=True)


def _file_name(name: str) -> str:
    if not _FILE_NAME.fullmatch(name):
        raise ValueError(f"{name!r} cannot name a workspace file")
    return name


# --- task workspaces -----------------------------------------------------------------------


def remove_tree(path: Path) -> None:
    """Remove a directory tree, also one the agent made read-only."""
    if not path.exists() and not path.is_symlink():
        return
    if path.is_symlink() or not path.is_dir():
        path.unlink()
        return
    try:
        shutil.rmtree(path)
    except (PermissionError, RecursionError):  # read-only dirs, or a tree too deep to recurse
        flatten_tree(path)  # every directory writable and at most three levels deep
        shutil.rmtree(path)


async def _on_disk(what: str, fn: Callable[..., _T], *args: Any) -> _T:
    """Run a blocking filesystem step in a thread; its OSError becomes a WorkspaceError."""
    try:
        return await asyncio.to_thread(fn, *args)
    except OSError as exc:
        raise WorkspaceError(f"{what}: {exc}") from exc


def _unlink_file(path: Path) -> None:
    if path.is_file() or path.is_symlink():
        path.unlink()


def _last_touched(task_root: Path) -> float:
    """Newest mtime of the task directory, its entries, and the entries of outputs/ (the log
    grows there while an agent runs)."""
    newest = task_root.lstat().st_mtime
    for folder in (task_root, task_root / "outputs"):
        with contextlib.suppress(FileNotFoundError), os.scandir(folder) as entries:
            for entry in entries:
                newest = max(newest, entry.stat(follow_symlinks=False).st_mtime)
    return newest


def tree_bytes(top: Path, seen: set[tuple[int, int]] | None = None) -> int:
    """Bytes of the regular files under `top`: apparent sizes, symlinks not followed, a file
    with several hard links counted once (in `seen`). Entries that vanish meanwhile, or cannot
    be read, are left out."""
    seen = set() if seen is None else seen
    total, folders = 0, [top]
    while folders:
        try:
            with os.scandir(folders.pop()) as entries:
                for entry in entries:
                    total += _entry_bytes(entry, folders, seen)
        except OSError:
            continue
    return total


def _entry_bytes(entry: os.DirEntry[str], folders: list[Path], seen: set[tuple[int, int]]) -> int:
    try:
        if entry.is_dir(follow_symlinks=False):
            folders.append(Path(entry.path))
            return 0
        if not entry.is_file(follow_symlinks=False):
            return 0
        info = entry.stat(follow_symlinks=False)
    except OSError:
        return 0
    if info.st_nlink > 1:
        if (info.st_dev, info.st_ino) in seen:
            return 0
        seen.add((info.st_dev, info.st_ino))
    return info.st_size


def _archive_move(task_root: Path, archive: Path) -> Path:
    private_dir(archive)
    dest, n = archive / task_root.name, 1
    while dest.exists():
        dest, n = archive / f"{task_root.name}.{n}", n + 1
    shutil.move(task_root, dest)
    return dest


class TaskWorkspace:
    """What `Workspaces.workspace` yields: the paths, and a way to say the run failed."""

    def __init__(self, dirs: TaskDirs) -> None:
        self.dirs = dirs
        self.failure: str | None = None
        self.archived_to: Path | None = None  # set on exit when the workspace was kept

    def failed(self, reason: str = "failed") -> None:
        self.failure = reason

    @property
    def is_failed(self) -> bool:
        return self.failure is not None


class Workspaces:
    """Makes, archives and removes task workspaces under `root`."""

    def __init__(
        self,
        root: Path,
        mirrors: Path,
        archive: Path,
        keep: bool,
        stale_hours: float,
        url_for: Callable[[str], str],
        git_auth: GitAuth | None = None,
        *,
        env: Mapping[str, str] | None = None,
        fetch_timeout: float = 600.0,
        git_timeout: float = 120.0,
    ) -> None:
        self.root = root.resolve()
        self.archive = archive.resolve()
        self.keep = keep
        self.stale_hours = stale_hours
        git_env = git_environment(os.environ) if env is None else env
        self.mirrors = RepoMirrors(
            mirrors,
            url_for,
            git_auth,
            env=git_env,
            fetch_timeout=fetch_timeout,
            git_timeout=git_timeout,
        )
        self._active: set[str] = set()

    @classmethod
    def from_settings(
        cls, settings: Settings, environ: Mapping[str, str], git_auth: GitAuth | None = None
    ) -> Workspaces:
        """Root `runs.workspace_root` (default `$TASKYARD_HOME/workspaces`), with `mirrors/`
        and `archive/` inside it."""
        runs = settings.runs
        root = runs.workspace_root or settings.home / "workspaces"
        return cls(
            root=root,
            mirrors=root / "mirrors",
            archive=root / "archive",
            keep=runs.keep_workspaces,
            stale_hours=runs.stale_workspace_hours,
            url_for=url_resolver(runs),
            git_auth=git_auth,
            env=git_environment(environ),
        )

    def dirs(self, task_id: str, *, with_repo: bool = False) -> TaskDirs:
        return TaskDirs.layout(self.root, task_id, with_repo=with_repo)

    def disk_bytes(self) -> int:
        """Bytes of the files under the root, and under the archive and the mirrors when
        they are elsewhere (see `tree_bytes`). Blocking: a walk of the whole tree."""
        tops = [self.root]
        tops += [p for p in (self.archive, self.mirrors.root) if not p.is_relative_to(self.root)]
        seen: set[tuple[int, int]] = set()
        return sum(tree_bytes(top, seen) for top in tops)

    async def prepare(self, task_id: str, repo: RepoSpec | None = None) -> TaskDirs:
        """A clean workspace for the task (an earlier attempt's is removed first)."""
        dirs = self.dirs(task_id, with_repo=repo is not None)
        await self._discard(dirs.root)
        await _on_disk(f"cannot create the workspace {dirs.root}", dirs.create)
        if repo is None or dirs.repo is None:
            return dirs
        try:
            commit = await self.mirrors.checkout(repo, dirs.repo)
            await use_base_agent_files(self.mirrors, repo, dirs.repo, commit)  # a PR's: base's
        except BaseException:
            await self._discard(dirs.root)
            raise
        dirs = replace(dirs, commit=commit)
        url = public_url(self.mirrors.url(repo.full_name))
        await _on_disk(f"cannot write {dirs.repo_info_file}", _write_repo_info, dirs, repo, url)
        log.info("workspace prepared", extra={"task_id": task_id, "commit": commit})
        return dirs

    async def finish(self, task_id: str, keep: bool) -> Path | None:
        """Archive the workspace (`keep`) and return where it went, or remove it. Either way
        its worktree is unregistered from the mirror."""
        task_root = self.dirs(task_id).root
        if not task_root.exists():
            return None
        mirror = self.mirrors.mirror_of(task_root / "workspace" / "repo")
        kept = None
        if keep:
            kept = await _on_disk(
                f"cannot archive {task_root}", _archive_move, task_root, self.archive
            )
            # the worktree's link to the mirror (pruned below); the files stay
            await _on_disk("cannot unlink", _unlink_file, kept / "workspace" / "repo" / ".git")
        else:
            await _on_disk(f"cannot remove {task_root}", remove_tree, task_root)
        if mirror is not None:
            await self.mirrors.prune(mirror)
        log.info("workspace finished", extra={"task_id": task_id, "archived_to": str(kept)})
        return kept

    async def sweep_stale(self, now: float | None = None) -> list[Path]:
        """Remove task workspaces untouched for `stale_hours` (not those this process is
        using), and prune every mirror's worktree list. Returns the removed directories."""
        cutoff = (time.time() if now is None else now) - self.stale_hours * 3600
        stale = await asyncio.to_thread(self._stale, cutoff)
        for path in (*stale, *self.mirrors.abandoned_clones(cutoff)):
            await _on_disk(f"cannot remove {path}", remove_tree, path)
        for mirror in self.mirrors.all():
            await self.mirrors.prune(mirror)
        if stale:
            log.info("stale workspaces removed", extra={"count": len(stale)})
        return stale

    @contextlib.asynccontextmanager
    async def workspace(
        self, task_id: str, repo: RepoSpec | None = None, *, keep_on_success: bool | None = None
    ) -> AsyncIterator[TaskWorkspace]:
        """Prepare; yield; archive when the body raised or called `failed()`, or when kept on
        success (default: the `keep` setting); remove otherwise. A body cancelled (its worker
        stops) leaves the workspace as it is: the next attempt, after recovery, starts afresh."""
        keep_ok = self.keep if keep_on_success is None else keep_on_success
        self._active.add(task_id)
        try:
            handle = TaskWorkspace(await self.prepare(task_id, repo))
        except BaseException:
            self._active.discard(task_id)
            raise
        cancelled = False
        try:
            yield handle
        except asyncio.CancelledError:
            cancelled = True
            raise
        except BaseException as exc:
            handle.failed(f"{type(exc).__name__}: {exc}")
            raise
        finally:
            self._active.discard(task_id)
            if not cancelled:
                finish = self.finish(task_id, keep=handle.is_failed or keep_ok)
                handle.archived_to = await asyncio.shield(finish)

    def _stale(self, cutoff: float) -> list[Path]:
        if not self.root.is_dir():
            return []
        return sorted(
            path
            for path in self.root.glob("task-*")
            if path.is_dir()
            and path.name.removeprefix("task-") not in self._active
            and _last_touched(path) < cutoff
        )

    async def _discard(self, task_root: Path) -> None:
        if not task_root.exists():
            return
        mirror = self.mirrors.mirror_of(task_root / "workspace" / "repo")
        await _on_disk(f"cannot remove {task_root}", remove_tree, task_root)
        if mirror is not None:
            await self.mirrors.prune(mirror)


def _write_repo_info(dirs: TaskDirs, repo: RepoSpec, url: str) -> None:
    info = {
        "repository": repo.full_name,
        "url": url,
        "commit": dirs.commit,
        "sha": repo.sha,
        "pr_number": repo.pr_number,
        "ref": repo.ref,
    }
    dirs.repo_info_file.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
