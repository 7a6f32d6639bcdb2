"""Task workspaces against real git: mirrors, worktrees, archive, sweep, credentials."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from taskyard.exceptions import (
    PermanentError,
    RepositoryNotFound,
    RevisionNotFound,
    WorkspaceError,
)
from taskyard.run.mirrors import RepoSpec, git_environment
from taskyard.run.workspace import TaskDirs, Workspaces

SECRET = "s3cret-token-value"


def git(*args: str, cwd: Path | None = None) -> str:
    env = {
        **git_environment(os.environ),
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"git {args}: {done.stderr}"
    return done.stdout.strip()


@dataclass
class Upstream:
    """A bare repository acme/api: main (c1, c2), feature (c3) and refs/pull/7/head = c3."""

    base: Path
    work: Path
    shas: dict[str, str] = field(default_factory=dict)

    @property
    def bare(self) -> Path:
        return self.base / "acme" / "api.git"

    @property
    def template(self) -> str:
        return f"file://{self.base}/{{owner}}/{{repo}}.git"

    def commit(self, name: str, content: str, branch: str = "main") -> str:
        (self.work / "README").write_text(content)
        git("add", "README", cwd=self.work)
        git("commit", "-q", "-m", name, cwd=self.work)
        self.shas[name] = git("rev-parse", "HEAD", cwd=self.work)
        git("push", "-q", str(self.bare), f"HEAD:refs/heads/{branch}", cwd=self.work)
        git("update-server-info", cwd=self.bare)
        return self.shas[name]


@pytest.fixture
def upstream(tmp_path: Path) -> Upstream:
    up = Upstream(base=tmp_path / "upstream", work=tmp_path / "work")
    git("init", "-q", "--bare", "-b", "main", str(up.bare))
    git("init", "-q", "-b", "main", str(up.work))
    up.commit("c1", "one\n")
    up.commit("c2", "two\n")
    git("checkout", "-q", "-b", "feature", cwd=up.work)
    up.commit("c3", "feature\n", branch="feature")
    git("push", "-q", str(up.bare), "HEAD:refs/pull/7/head", cwd=up.work)
    git("checkout", "-q", "main", cwd=up.work)
    git("update-server-info", cwd=up.bare)
    return up


def make_workspaces(tmp_path: Path, template: str, **kwargs: Any) -> Workspaces:
    kwargs.setdefault("keep", False)
    return Workspaces(
        root=tmp_path / "ws",
        mirrors=tmp_path / "mirrors",
        archive=tmp_path / "archive",
        stale_hours=6,
        url_for=lambda name: template.format(owner=name.split("/")[0], repo=name.split("/")[1]),
        **kwargs,
    )


@pytest.fixture
def ws(tmp_path: Path, upstream: Upstream) -> Workspaces:
    return make_workspaces(tmp_path, upstream.template)


def head(repo: Path | None) -> str:
    assert repo is not None
    return git("rev-parse", "HEAD", cwd=repo)


def worktrees(mirror: Path) -> list[str]:
    out = git("worktree", "list", "--porcelain", cwd=mirror)
    return [line.split(" ", 1)[1] for line in out.splitlines() if line.startswith("worktree ")]


def mirror_path(tmp_path: Path) -> Path:
    return tmp_path / "mirrors" / "acme" / "api.git"


async def test_prepare_at_sha_checks_out_that_commit(ws: Workspaces, upstream: Upstream) -> None:
    dirs = await ws.prepare("t1", RepoSpec("acme/api", sha=upstream.shas["c1"]))
    assert dirs.repo == dirs.workspace / "repo" and dirs.root.name == "task-t1"
    assert head(dirs.repo) == upstream.shas["c1"] == dirs.commit
    assert (dirs.repo / "README").read_text() == "one\n"
    for path in (dirs.context, dirs.prompts, dirs.outputs, dirs.artifacts):
        assert path.is_dir()
    info = json.loads(dirs.repo_info_file.read_text())
    assert info["repository"] == "acme/api" and info["commit"] == upstream.shas["c1"]


async def test_prepare_pr_default_branch_and_ref(ws: Workspaces, upstream: Upstream) -> None:
    pr = await ws.prepare("pr", RepoSpec("acme/api", pr_number=7))
    default = await ws.prepare("default", RepoSpec("acme/api"))
    branch = await ws.prepare("branch", RepoSpec("acme/api", ref="feature"))
    assert head(pr.repo) == upstream.shas["c3"]
    assert pr.repo is not None and (pr.repo / "README").read_text() == "feature\n"
    assert head(default.repo) == upstream.shas["c2"]
    assert head(branch.repo) == upstream.shas["c3"]


async def test_a_task_without_a_repository_gets_the_layout_only(ws: Workspaces) -> None:
    dirs = await ws.prepare("plain")
    assert dirs.repo is None and not (dirs.workspace / "repo").exists()
    assert dirs.workspace.is_dir() and dirs.artifacts.is_dir() and dirs.context.is_dir()


async def test_second_task_reuses_the_mirror_and_sees_new_commits(
    tmp_path: Path, ws: Workspaces, upstream: Upstream
) -> None:
    await ws.prepare("a", RepoSpec("acme/api"))
    mirror = mirror_path(tmp_path)
    inode = mirror.stat().st_ino
    (mirror / "taskyard-test-marker").write_text("same mirror")
    c4 = upstream.commit("c4", "four\n")
    b = await ws.prepare("b", RepoSpec("acme/api"))
    assert head(b.repo) == c4
    assert mirror.stat().st_ino == inode and (mirror / "taskyard-test-marker").exists()


async def test_the_default_branch_follows_the_remote(ws: Workspaces, upstream: Upstream) -> None:
    assert head((await ws.prepare("a", RepoSpec("acme/api"))).repo) == upstream.shas["c2"]
    git("symbolic-ref", "HEAD", "refs/heads/feature", cwd=upstream.bare)
    assert head((await ws.prepare("b", RepoSpec("acme/api"))).repo) == upstream.shas["c3"]


async def test_a_commit_already_mirrored_needs_no_fetch(
    tmp_path: Path, ws: Workspaces, upstream: Upstream
) -> None:
    await ws.prepare("a", RepoSpec("acme/api"))
    upstream.bare.rename(tmp_path / "gone.git")  # the remote is unreachable from now on
    dirs = await ws.prepare("b", RepoSpec("acme/api", sha=upstream.shas["c1"], pr_number=7))
    assert head(dirs.repo) == upstream.shas["c1"]
    with pytest.raises(RepositoryNotFound):
        await ws.prepare("c", RepoSpec("acme/api", pr_number=7))


async def test_five_concurrent_prepares_of_one_repository(
    tmp_path: Path, ws: Workspaces, upstream: Upstream
) -> None:
    specs = [
        RepoSpec("acme/api", sha=upstream.shas["c1"]),
        RepoSpec("acme/api", pr_number=7),
        RepoSpec("acme/api"),
        RepoSpec("acme/api", ref="feature"),
        RepoSpec("acme/api", sha=upstream.shas["c2"]),
    ]
    wanted = ["c1", "c3", "c2", "c3", "c2"]
    all_dirs = await asyncio.gather(*(ws.prepare(f"p{i}", s) for i, s in enumerate(specs)))
    assert [head(d.repo) for d in all_dirs] == [upstream.shas[w] for w in wanted]
    mirror = mirror_path(tmp_path)
    assert sorted(worktrees(mirror)[1:]) == sorted(str(d.repo) for d in all_dirs)
    git("fsck", "--no-progress", cwd=mirror)
    assert not [p for p in mirror.parent.iterdir() if p.name.endswith(".tmp")]


async def test_workers_sharing_the_mirror_directory_take_turns(
    tmp_path: Path, upstream: Upstream
) -> None:
    """Separate Workspaces share no asyncio lock (like worker processes): the file lock alone
    keeps their clones and fetches of one mirror apart."""
    workers = [make_workspaces(tmp_path, upstream.template) for _ in range(4)]
    all_dirs = await asyncio.gather(
        *(w.prepare(f"w{i}", RepoSpec("acme/api", pr_number=7)) for i, w in enumerate(workers))
    )
    assert {head(d.repo) for d in all_dirs} == {upstream.shas["c3"]}
    assert len(worktrees(mirror_path(tmp_path))) == 5
    git("fsck", "--no-progress", cwd=mirror_path(tmp_path))


async def test_finish_failed_archives_and_unregisters_the_worktree(
    tmp_path: Path, ws: Workspaces, upstream: Upstream
) -> None:
    dirs = await ws.prepare("f", RepoSpec("acme/api"))
    assert dirs.repo is not None
    dirs.result_file.write_text('{"ok": false}')
    (dirs.artifacts / "trace.txt").write_text("trace")
    (dirs.repo / "README").write_text("agent edit\n")
    archived = await ws.finish("f", keep=True)
    assert archived == tmp_path / "archive" / "task-f"
    assert not dirs.root.exists()
    assert (archived / "outputs" / "result.json").read_text() == '{"ok": false}'
    assert (archived / "outputs" / "artifacts" / "trace.txt").read_text() == "trace"
    assert (archived / "workspace" / "repo" / "README").read_text() == "agent edit\n"
    assert json.loads((archived / "repo.json").read_text())["commit"] == upstream.shas["c2"]
    assert worktrees(mirror_path(tmp_path)) == [str(mirror_path(tmp_path))]
    again = await ws.prepare("f")
    assert await ws.finish("f", keep=True) == tmp_path / "archive" / "task-f.1"
    assert not again.root.exists() and archived.is_dir()


async def test_finish_success_removes_everything_but_the_mirror(
    tmp_path: Path, ws: Workspaces
) -> None:
    dirs = await ws.prepare("s", RepoSpec("acme/api"))
    assert dirs.repo is not None
    dirs.repo.chmod(0o500)  # an agent left a read-only directory behind
    assert await ws.finish("s", keep=False) is None
    assert not dirs.root.exists() and not (tmp_path / "archive").exists()
    assert worktrees(mirror_path(tmp_path)) == [str(mirror_path(tmp_path))]
    assert await ws.finish("s", keep=False) is None  # already gone: nothing to do


async def test_context_manager_archives_failures_and_removes_successes(
    tmp_path: Path, upstream: Upstream
) -> None:
    ws = make_workspaces(tmp_path, upstream.template)
    async with ws.workspace("ok", RepoSpec("acme/api")) as handle:
        assert handle.dirs.repo is not None and handle.dirs.repo.is_dir()
    assert not handle.dirs.root.exists() and handle.archived_to is None
    async with ws.workspace("bad", RepoSpec("acme/api")) as handle:
        handle.failed("agent timed out")
    assert handle.archived_to == tmp_path / "archive" / "task-bad"
    with pytest.raises(RuntimeError, match="boom"):
        async with ws.workspace("raised") as handle:
            handle.dirs.log_file.write_text("{}\n")
            raise RuntimeError("boom")
    assert handle.archived_to is not None and (handle.archived_to / "outputs/log.jsonl").exists()
    async with ws.workspace("kept", keep_on_success=True) as handle:
        pass
    assert handle.archived_to == tmp_path / "archive" / "task-kept"
    assert worktrees(mirror_path(tmp_path)) == [str(mirror_path(tmp_path))]


async def test_keep_workspaces_setting_keeps_successes(tmp_path: Path, upstream: Upstream) -> None:
    ws = make_workspaces(tmp_path, upstream.template, keep=True)
    async with ws.workspace("ok") as handle:
        handle.dirs.result_file.write_text("{}")
    assert handle.archived_to is not None and (handle.archived_to / "outputs/result.json").exists()


def age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    for folder, dirs, files in os.walk(path):
        for name in [*dirs, *files]:
            os.utime(Path(folder) / name, (then, then), follow_symlinks=False)
    os.utime(path, (then, then))


async def test_sweep_stale_removes_only_old_workspaces(tmp_path: Path, ws: Workspaces) -> None:
    old = await ws.prepare("old", RepoSpec("acme/api"))
    old_plain = await ws.prepare("old-plain")
    fresh = await ws.prepare("fresh", RepoSpec("acme/api"))
    recent_log = await ws.prepare("busy")
    for dirs in (old, old_plain, recent_log):
        age(dirs.root, 7 * 3600)
    recent_log.log_file.write_text("still running\n")  # a live run's log keeps it fresh
    removed = await ws.sweep_stale()
    assert removed == sorted([old.root, old_plain.root])
    assert fresh.root.is_dir() and recent_log.root.is_dir()
    assert worktrees(mirror_path(tmp_path))[1:] == [str(fresh.repo)]
    abandoned = mirror_path(tmp_path).with_name(".api.git.999.abcd.tmp")  # a worker died
    abandoned.mkdir()
    assert await ws.sweep_stale(now=time.time() + 5 * 3600) == []
    assert abandoned.is_dir()
    assert await ws.sweep_stale(now=time.time() + 7 * 3600) == sorted([fresh.root, recent_log.root])
    assert not abandoned.exists() and mirror_path(tmp_path).is_dir()


async def test_sweep_spares_a_workspace_in_use(ws: Workspaces) -> None:
    async with ws.workspace("long") as handle:
        age(handle.dirs.root, 7 * 3600)
        assert await ws.sweep_stale() == []
        assert handle.dirs.root.is_dir()


async def test_missing_repository_is_a_clear_permanent_error(
    tmp_path: Path, ws: Workspaces, upstream: Upstream
) -> None:
    with pytest.raises(RepositoryNotFound) as caught:
        await ws.prepare("m", RepoSpec("acme/missing"))
    assert isinstance(caught.value, PermanentError)
    message = str(caught.value)
    assert "cannot clone acme/missing from file://" in message
    assert "does not appear to be a git repository" in message
    assert not (tmp_path / "ws" / "task-m").exists()
    assert not (tmp_path / "mirrors" / "acme" / "missing.git").exists()
    assert not [p for p in (tmp_path / "mirrors" / "acme").iterdir() if p.name.endswith(".tmp")]


async def test_unknown_commit_is_a_permanent_error(ws: Workspaces) -> None:
    with pytest.raises(RevisionNotFound, match="acme/api@0123456789abcdef"):
        await ws.prepare("x", RepoSpec("acme/api", sha="0123456789abcdef"))
    with pytest.raises(RevisionNotFound, match="acme/api#99"):
        await ws.prepare("x", RepoSpec("acme/api", pr_number=99))


async def test_re_prepare_of_a_task_starts_clean(
    tmp_path: Path, ws: Workspaces, upstream: Upstream
) -> None:
    first = await ws.prepare("r", RepoSpec("acme/api", sha=upstream.shas["c1"]))
    assert first.repo is not None
    (first.outputs / "result.json").write_text("stale")
    (first.repo / "junk.txt").write_text("junk")
    (first.context / "old.json").write_text("{}")
    second = await ws.prepare("r", RepoSpec("acme/api", sha=upstream.shas["c3"]))
    assert second.repo is not None and head(second.repo) == upstream.shas["c3"]
    assert not (second.repo / "junk.txt").exists()
    assert not second.result_file.exists() and not (second.context / "old.json").exists()
    assert worktrees(mirror_path(tmp_path))[1:] == [str(second.repo)]


class _RecordingHandler(SimpleHTTPRequestHandler):
    seen: list[str | None]

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        self.seen.append(self.headers.get("Authorization"))
        super().do_GET()


@pytest.fixture
def http_upstream(upstream: Upstream) -> Iterator[tuple[str, list[str | None]]]:
    """The upstream over git's dumb HTTP protocol; yields the URL template and the headers."""
    seen: list[str | None] = []
    handler = type("Handler", (_RecordingHandler,), {"seen": seen})

    def make(*args: Any) -> SimpleHTTPRequestHandler:
        return handler(*args, directory=str(upstream.base))

    server = ThreadingHTTPServer(("127.0.0.1", 0), make)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_address[1]
    yield f"http://taskyard:pw-in-url@127.0.0.1:{port}/{{owner}}/{{repo}}.git", seen
    server.shutdown()
    server.server_close()
    thread.join()


def grep_tree(root: Path, needle: bytes) -> list[Path]:
    return [
        p
        for p in root.rglob("*")
        if p.is_file() and not p.is_symlink() and needle in p.read_bytes()
    ]


async def test_credentials_are_sent_but_never_stored(
    tmp_path: Path, upstream: Upstream, http_upstream: tuple[str, list[str | None]]
) -> None:
    template, seen = http_upstream

    async def auth(full_name: str) -> dict[str, str]:
        assert full_name == "acme/api"
        return {"Authorization": f"Bearer {SECRET}"}

    ws = make_workspaces(tmp_path, template, git_auth=auth)
    dirs = await ws.prepare("c", RepoSpec("acme/api", pr_number=7))
    await ws.prepare("d", RepoSpec("acme/api"))  # a fetch, with the header again
    assert dirs.repo is not None and head(dirs.repo) == upstream.shas["c3"]
    assert seen and all(h == f"Bearer {SECRET}" for h in seen)
    config = git("config", "--show-origin", "--get-regexp", "url|extraheader", cwd=dirs.repo)
    assert SECRET not in config and "pw-in-url" not in config and "127.0.0.1" in config
    helpers = subprocess.run(
        ["git", "config", "--local", "--get-regexp", "credential|extraheader"],
        cwd=dirs.repo,
        capture_output=True,
    )
    assert helpers.returncode == 1 and helpers.stdout == b""  # the repository sets none
    for needle in (SECRET.encode(), b"pw-in-url"):
        assert grep_tree(tmp_path / "mirrors", needle) == []
        assert grep_tree(tmp_path / "ws", needle) == []


async def test_an_auth_header_with_a_line_break_is_refused(
    tmp_path: Path, upstream: Upstream
) -> None:
    ws = make_workspaces(
        tmp_path, upstream.template, git_auth=lambda n: {"Authorization": "x\r\nX-Evil: 1"}
    )
    with pytest.raises(WorkspaceError, match="line break"):
        await ws.prepare("e", RepoSpec("acme/api"))


async def test_a_push_from_the_worktree_goes_nowhere(ws: Workspaces, upstream: Upstream) -> None:
    dirs = await ws.prepare("p", RepoSpec("acme/api"))
    assert dirs.repo is not None
    git("checkout", "-q", "-b", "agent-branch", cwd=dirs.repo)
    pushed = subprocess.run(
        ["git", "push", "origin", "agent-branch"], cwd=dirs.repo, capture_output=True, text=True
    )
    assert pushed.returncode != 0
    assert "agent-branch" not in git("branch", "--list", cwd=upstream.bare)


async def test_missing_repository_over_http_is_permanent(
    tmp_path: Path, http_upstream: tuple[str, list[str | None]]
) -> None:
    ws = make_workspaces(tmp_path, http_upstream[0])
    with pytest.raises(RepositoryNotFound, match=r"acme/nope from http://127\.0\.0\.1") as caught:
        await ws.prepare("m", RepoSpec("acme/nope"))
    assert "pw-in-url" not in str(caught.value)


async def test_unreachable_server_is_a_transient_error(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: connections are refused
    ws = make_workspaces(tmp_path, f"http://127.0.0.1:{port}/{{owner}}/{{repo}}.git")
    with pytest.raises(WorkspaceError) as caught:
        await ws.prepare("n", RepoSpec("acme/api"))
    assert not isinstance(caught.value, PermanentError)
    assert "cannot clone acme/api" in str(caught.value)


async def test_a_hanging_server_times_out_as_a_transient_error(tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        url = f"http://127.0.0.1:{port}/{{owner}}/{{repo}}.git"
        ws = make_workspaces(tmp_path, url, fetch_timeout=1.0)
        started = time.monotonic()
        with pytest.raises(WorkspaceError, match="timed out after 1 s") as caught:
            await ws.prepare("h", RepoSpec("acme/api"))
    assert time.monotonic() - started < 10
    assert not isinstance(caught.value, PermanentError)


async def test_layout_helpers_point_into_the_task(ws: Workspaces) -> None:
    dirs: TaskDirs = await ws.prepare("l")
    dirs.prompt_file("main").write_text("# prompt")
    dirs.context_file("issue").write_text("{}")
    assert sorted(p.name for p in dirs.prompts.iterdir()) == ["main.md"]
    assert sorted(p.name for p in dirs.context.iterdir()) == ["issue.json"]


async def test_a_cancelled_body_leaves_its_workspace_for_the_next_attempt(
    tmp_path: Path, upstream: Upstream
) -> None:
    """The worker stops mid-run: nothing is archived or removed; recovery starts afresh."""
    ws = make_workspaces(tmp_path, upstream.template)
    with pytest.raises(asyncio.CancelledError):
        async with ws.workspace("stopped") as handle:
            raise asyncio.CancelledError
    assert handle.archived_to is None and handle.dirs.root.is_dir()
    assert not (tmp_path / "archive" / "task-stopped").exists()
