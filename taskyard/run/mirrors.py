"""Repositories for task workspaces: bare mirrors, and detached worktrees checked out of them.

One bare mirror per repository at `<mirrors>/<owner>/<repo>.git` (lower case), cloned once and
fetched later; not fetched at all when the wanted commit is already there. Mirror work (clone,
fetch, worktree add and prune) is serialised per repository by an asyncio lock (tasks of this
process) and an flock (worker processes sharing the directory).

Credentials: the mirror's stored remote URL has no userinfo and its push URL goes nowhere;
headers from `git_auth` reach git through GIT_CONFIG_* variables of the one network command that
needs them, so they are neither on disk nor in the process list. Every git command runs with a
minimal environment, no terminal prompt, no credential helper and no hooks.

Isolation limit: a worktree shares the mirror's object store and config, so an agent running as
taskyard's user could tamper with the mirror; only a sandbox around the agent prevents that.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import inspect
import logging
import os
import re
import secrets
import shutil
import signal
import stat
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from taskyard.config import RunsConfig
from taskyard.exceptions import RepositoryNotFound, RevisionNotFound, WorkspaceError
from taskyard.util.flattree import flatten_tree

log = logging.getLogger(__name__)

DEFAULT_URL_TEMPLATE = "https://github.com/{owner}/{repo}.git"
NO_PUSH_URL = "/dev/null/taskyard-does-not-push"  # a push from a worktree fails right here
GitAuth = Callable[[str], Mapping[str, str] | Awaitable[Mapping[str, str]]]

_NAME_PART = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.-]{0,99}")
_SHA = re.compile(r"[0-9a-fA-F]{7,64}")
_REF = re.compile(r"[^\s~^:?*\[\\-][^\s~^:?*\[\\]*")
_USERINFO = re.compile(r"(\b[a-z][a-z0-9+.-]*://)[^/@\s]+@", re.IGNORECASE)
# Options before every git command: never run hooks, fsmonitors, credential helpers or ext::.
_SAFETY = (
    *("-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false"),
    *("-c", "credential.helper=", "-c", "protocol.ext.allow=never"),
)
_PASSED_ENV = (
    *("PATH", "HOME", "SSH_AUTH_SOCK", "http_proxy", "https_proxy", "no_proxy", "all_proxy"),
    *("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY"),
)
# Fetch failures retrying cannot fix; anything else (DNS, refused, reset, timeout) is transient.
_PERMANENT_FETCH = re.compile(
    r"does not appear to be a git repository|repository not found|repository '[^']*' not found"
    r"|could not read username|authentication failed|returned error: 40[134]"
    r"|permission denied \(publickey|access denied",
    re.IGNORECASE,
)


# --- names and URLs ------------------------------------------------------------------------


def public_url(url: str) -> str:
    """The URL without user and password: what may be stored, logged and shown."""
    parts = urlsplit(url)
    if not parts.scheme or "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def resolve_repo_url(
    full_name: str, *, template: str | None = None, overrides: Mapping[str, str] | None = None
) -> str:
    """Where `owner/repo` is cloned from: a per-repository override (names compare without
    case), else the template (`{owner}`, `{repo}`), else GitHub."""
    wanted = full_name.lower()
    for name, url in (overrides or {}).items():
        if name.lower() == wanted:
            return url
    owner, repo = full_name.split("/", 1)
    return (template or DEFAULT_URL_TEMPLATE).format(owner=owner, repo=repo)


def url_resolver(runs: RunsConfig) -> Callable[[str], str]:
    """`resolve_repo_url` bound to the settings' template and per-repository overrides."""
    template, overrides = runs.git_url_template, dict(runs.repo_urls)
    return lambda full_name: resolve_repo_url(full_name, template=template, overrides=overrides)


@dataclass(frozen=True, slots=True)
class RepoSpec:
    """The repository a task needs and which commit: `sha` (preferred), else the head of PR
    `pr_number`, else `ref` (branch or tag), else the default branch."""

    full_name: str  # owner/repo
    ref: str | None = None
    sha: str | None = None
    pr_number: int | None = None
    # The pull request's base (its agent files are used: see taskyard.run.agentfiles).
    base_sha: str | None = None
    base_ref: str | None = None

    def __post_init__(self) -> None:
        parts = self.full_name.split("/")
        if len(parts) != 2 or not all(_valid_part(p) for p in parts):
            raise RepositoryNotFound(f"{self.full_name!r} is not a repository name (owner/repo)")
        if self.sha is not None and not _SHA.fullmatch(self.sha):
            raise RevisionNotFound(f"{self.full_name}: {self.sha!r} is not a commit sha")
        for ref in (self.ref, self.base_ref):
            if ref is not None and not _REF.fullmatch(ref):
                raise RevisionNotFound(f"{self.full_name}: {ref!r} is not a ref name")
        if self.base_sha is not None and not _SHA.fullmatch(self.base_sha):
            raise RevisionNotFound(f"{self.full_name}: {self.base_sha!r} is not a commit sha")
        if self.pr_number is not None and self.pr_number < 1:
            raise RevisionNotFound(f"{self.full_name}: no pull request #{self.pr_number}")

    @property
    def revision(self) -> str:
        """What `git rev-parse` resolves in the mirror."""
        if self.sha:
            return self.sha
        if self.pr_number is not None:
            return f"refs/pull/{self.pr_number}/head"
        return self.ref or "HEAD"

    @property
    def wants_default_branch(self) -> bool:
        return not self.sha and self.pr_number is None and not self.ref

    def describe(self) -> str:
        if self.sha or self.pr_number is None:
            return f"{self.full_name}@{self.sha or self.ref or 'default branch'}"
        return f"{self.full_name}#{self.pr_number}"


def _valid_part(part: str) -> bool:
    return bool(_NAME_PART.fullmatch(part)) and part not in (".", "..")


# --- git processes -------------------------------------------------------------------------


def git_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The only variables git gets: PATH, HOME, the SSH agent and proxies, and no prompts."""
    env = {k: environ[k] for k in _PASSED_ENV if environ.get(k)}
    env.update(GIT_TERMINAL_PROMPT="0", GCM_INTERACTIVE="never", LC_ALL="C")
    return env


def auth_env(headers: Mapping[str, str]) -> dict[str, str]:
    env: dict[str, str] = {"GIT_CONFIG_COUNT": str(len(headers))} if headers else {}
    for i, (name, value) in enumerate(headers.items()):
        if any(c in f"{name}{value}" for c in "\r\n\0"):
            raise WorkspaceError(f"git auth header {name!r} contains a line break")
        env[f"GIT_CONFIG_KEY_{i}"] = "http.extraHeader"
        env[f"GIT_CONFIG_VALUE_{i}"] = f"{name}: {value}"
    return env


def stderr_tail(stderr: str, hidden: Sequence[str] = ()) -> str:
    """The last lines git wrote, with URL userinfo and the given secrets blanked out."""
    text = _USERINFO.sub(r"\1***@", stderr)
    for secret in hidden:
        if secret:
            text = text.replace(secret, "***")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    tail = " | ".join(lines[-4:])
    return tail if len(tail) <= 600 else "…" + tail[-600:]


def fetch_error(what: str, stderr: str, hidden: Sequence[str] = ()) -> WorkspaceError:
    """A failed clone/fetch/ls-remote as an error: permanent when the repository is missing or
    not readable with our credentials, transient otherwise (network, server)."""
    message = f"{what}: {stderr_tail(stderr, hidden) or 'git failed'}"
    if _PERMANENT_FETCH.search(stderr):
        return RepositoryNotFound(message)
    return WorkspaceError(message)


@dataclass(frozen=True, slots=True)
class _Done:
    code: int
    out: str
    err: str


async def _kill(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):  # it exited by itself meanwhile
        os.killpg(proc.pid, signal.SIGKILL)
    await proc.wait()


async def run_git(
    args: Sequence[str], *, env: Mapping[str, str], timeout: float, what: str
) -> _Done:
    """Run git in its own process group; kill the group on timeout or cancellation."""
    try:
        proc = await asyncio.create_subprocess_exec(
            "git",
            *_SAFETY,
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=dict(env),
            start_new_session=True,
        )
    except OSError as exc:
        raise WorkspaceError(f"{what}: cannot run git: {exc}") from exc
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        await _kill(proc)
        raise WorkspaceError(f"{what}: git timed out after {timeout:g} s") from None
    except asyncio.CancelledError:
        await _kill(proc)
        raise
    code = proc.returncode if proc.returncode is not None else -1
    return _Done(code, out.decode(errors="replace"), err.decode(errors="replace"))


def _read_dot_git(worktree: Path) -> str | None:
    """A worktree's `.git` file, which its agent may have replaced: None unless it is a
    regular file reached through no link (a FIFO there would block the read forever)."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    try:
        fd = os.open(worktree / ".git", flags)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return os.read(fd, 4096).decode("utf-8", errors="replace").strip()
    except OSError:
        return None
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        if path.is_dir() and not path.is_symlink():
            flatten_tree(path)  # made by an agent: any depth
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def _points_back(admin: Path) -> bool:
    """Whether the admin dir's `gitdir` names a `.git` file that names the admin dir."""
    try:
        dot_git = Path((admin / "gitdir").read_text(encoding="utf-8").strip())
        line = dot_git.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    target = line.removeprefix("gitdir:").strip()
    return line.startswith("gitdir:") and (dot_git.parent / target).resolve() == admin.resolve()


def unlock_worktrees(mirror: Path) -> None:
    """Undoes what an agent can write in its worktree's admin dir (read-write in its box) to
    make it outlive its task: taskyard never locks a worktree, so every `locked` goes, and a
    `gitdir` that does not name a `.git` file naming the admin dir back goes too, so that
    `git worktree prune` removes the dir once its task's files are gone."""
    for admin in (mirror / "worktrees").glob("*"):
        if admin.is_symlink() or not admin.is_dir():
            continue
        _remove(admin / "locked")
        if not _points_back(admin):
            with contextlib.suppress(OSError):
                (admin / "gitdir").unlink(missing_ok=True)


# --- mirrors -------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _flock(path: Path, timeout: float) -> AsyncIterator[None]:
    """An exclusive flock on `path`, polled so that waiting stays cancellable."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline, delay = time.monotonic() + timeout, 0.005
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise WorkspaceError(f"timed out waiting for the lock {path}") from None
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.2)
        yield
    finally:
        os.close(fd)  # releases the lock


class RepoMirrors:
    """Bare mirrors of repositories and the worktrees checked out of them."""

    def __init__(
        self,
        root: Path,
        url_for: Callable[[str], str],
        git_auth: GitAuth | None = None,
        *,
        env: Mapping[str, str],
        fetch_timeout: float = 600.0,
        git_timeout: float = 120.0,
        lock_timeout: float = 1800.0,
    ) -> None:
        self.root = root.resolve()
        self._url_for = url_for
        self._auth = git_auth
        self._env = dict(env)
        self._fetch_timeout = fetch_timeout
        self._git_timeout = git_timeout
        self._lock_timeout = lock_timeout
        self._locks: dict[Path, asyncio.Lock] = {}

    def url(self, full_name: str) -> str:
        """Where the repository is fetched from (may carry credentials: never log it)."""
        return self._url_for(full_name)

    def path_for(self, full_name: str) -> Path:
        owner, repo = full_name.lower().split("/", 1)
        return self.root / owner / f"{repo}.git"

    def all(self) -> list[Path]:
        return sorted(p for p in self.root.glob("*/*.git") if (p / "HEAD").is_file())

    def abandoned_clones(self, cutoff: float) -> list[Path]:
        """Temporary clone directories of a worker that died mid-clone before `cutoff`."""
        return sorted(p for p in self.root.glob("*/.*.tmp") if p.lstat().st_mtime < cutoff)

    def mirror_of(self, worktree: Path) -> Path | None:
        """The mirror a worktree of ours belongs to, read from its `.git` file."""
        line = _read_dot_git(worktree)
        if line is None:
            return None
        admin = Path(line.removeprefix("gitdir:").strip()).resolve()
        mirror = admin.parent.parent
        return mirror if mirror.parent.parent == self.root else None

    @contextlib.asynccontextmanager
    async def locked(self, mirror: Path) -> AsyncIterator[None]:
        lock = self._locks.setdefault(mirror, asyncio.Lock())
        async with lock, _flock(mirror.with_name(f".{mirror.name}.lock"), self._lock_timeout):
            yield

    async def checkout(self, repo: RepoSpec, dest: Path) -> str:
        """Update the mirror as needed and add a detached worktree at `dest`; the commit."""
        mirror, url = self.path_for(repo.full_name), self.url(repo.full_name)
        try:
            async with self.locked(mirror):
                how = await self._update(repo, mirror, url)
                commit = await self._resolve(repo, mirror)
                what = f"cannot check out {repo.full_name} at {commit[:12]} into {dest}"
                add = ("worktree", "add", "--detach", "--force", "--quiet", "--", str(dest), commit)
                await self._git(mirror, *add, what=what)
        except OSError as exc:  # the mirror directory itself: permissions, disk full
            raise WorkspaceError(f"cannot use the mirror of {repo.full_name}: {exc}") from exc
        log.info(
            "repository checked out",
            extra={"repository": repo.full_name, "commit": commit, "mirror": how},
        )
        return commit

    async def prune(self, mirror: Path) -> None:
        """Forget worktrees whose directories are gone (removed or archived)."""
        if (mirror / "HEAD").is_file():
            async with self.locked(mirror):
                await asyncio.to_thread(unlock_worktrees, mirror)
                await self._git(mirror, "worktree", "prune", what=f"cannot prune {mirror}")

    async def git(self, cwd: Path, *args: str, what: str) -> str | None:
        """git in `cwd` (a mirror or one of its worktrees) with the mirrors' environment and
        timeout, no network: its output, or None when it fails."""
        done = await run_git(
            ["-C", str(cwd), *args], env=self._env, timeout=self._git_timeout, what=what
        )
        return done.out if done.code == 0 else None

    async def _git(self, mirror: Path, *args: str, what: str) -> str:
        done = await run_git(
            ["-C", str(mirror), *args], env=self._env, timeout=self._git_timeout, what=what
        )
        if done.code != 0:
            raise WorkspaceError(f"{what}: {stderr_tail(done.err) or 'git failed'}")
        return done.out

    async def _network(self, repo: RepoSpec, args: Sequence[str], what: str) -> str:
        headers = await self._headers(repo.full_name)
        env = {**self._env, **auth_env(headers)}
        done = await run_git(args, env=env, timeout=self._fetch_timeout, what=what)
        if done.code != 0:
            raise fetch_error(what, done.err, hidden=list(headers.values()))
        return done.out

    async def _headers(self, full_name: str) -> Mapping[str, str]:
        if self._auth is None:
            return {}
        headers = self._auth(full_name)
        if inspect.isawaitable(headers):
            headers = await headers
        return dict(headers)

    async def _update(self, repo: RepoSpec, mirror: Path, url: str) -> str:
        if not (mirror / "HEAD").is_file():
            await self._clone(repo, mirror, url)
            return "clone"
        if repo.sha and await self._has_commit(mirror, repo.sha):
            return "cached"
        what = f"cannot fetch {repo.full_name} from {public_url(url)}"
        args = ["-C", str(mirror), "fetch", "--prune", "--quiet", "--no-write-fetch-head"]
        args.append("--update-head-ok")  # a worktree's HEAD on a branch never stops a fetch
        await self._network(repo, [*args, "--", url, "+refs/*:refs/*"], what)
        if repo.wants_default_branch:
            await self._follow_head(repo, mirror, url)
        return "fetch"

    async def _clone(self, repo: RepoSpec, mirror: Path, url: str) -> None:
        mirror.parent.mkdir(parents=True, exist_ok=True)
        tmp = mirror.with_name(f".{mirror.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        what = f"cannot clone {repo.full_name} from {public_url(url)}"
        try:
            await self._network(repo, ["clone", "--mirror", "--quiet", "--", url, str(tmp)], what)
            await self._git(tmp, "config", "remote.origin.url", public_url(url), what=what)
            await self._git(tmp, "config", "remote.origin.pushurl", NO_PUSH_URL, what=what)
            tmp.rename(mirror)
        finally:
            if tmp.exists():
                await asyncio.to_thread(shutil.rmtree, tmp)

    async def _follow_head(self, repo: RepoSpec, mirror: Path, url: str) -> None:
        """Point the mirror's HEAD where the remote's HEAD is (the default branch may move)."""
        what = f"cannot read the default branch of {repo.full_name} from {public_url(url)}"
        out = await self._network(repo, ["ls-remote", "--symref", "--", url, "HEAD"], what)
        match = re.search(r"^ref: (refs/heads/\S+)\tHEAD$", out, re.MULTILINE)
        if match:
            await self._git(mirror, "symbolic-ref", "HEAD", match.group(1), what=what)

    async def _has_commit(self, mirror: Path, sha: str) -> bool:
        args = ["-C", str(mirror), "cat-file", "-e", f"{sha}^{{commit}}"]
        done = await run_git(args, env=self._env, timeout=self._git_timeout, what="cat-file")
        return done.code == 0

    async def _resolve(self, repo: RepoSpec, mirror: Path) -> str:
        args = ["-C", str(mirror), "rev-parse", "--verify", "--quiet", "--end-of-options"]
        done = await run_git(
            [*args, f"{repo.revision}^{{commit}}"],
            env=self._env,
            timeout=self._git_timeout,
            what=f"cannot resolve {repo.describe()}",
        )
        if done.code != 0 or not done.out.strip():
            raise RevisionNotFound(f"{repo.describe()}: no such commit in the repository")
        return done.out.strip()
