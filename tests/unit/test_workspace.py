"""Workspace layout (workspace.py); repository URLs, names and git failures (mirrors.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from taskyard.config import load_settings
from taskyard.exceptions import (
    ConfigError,
    PermanentError,
    RepositoryNotFound,
    RevisionNotFound,
    WorkspaceError,
)
from taskyard.run.mirrors import (
    DEFAULT_URL_TEMPLATE,
    RepoMirrors,
    RepoSpec,
    fetch_error,
    git_environment,
    public_url,
    resolve_repo_url,
    stderr_tail,
    url_resolver,
)
from taskyard.run.workspace import TaskDirs, Workspaces


def test_layout_of_a_task_matches_the_design(tmp_path: Path) -> None:
    dirs = TaskDirs.layout(tmp_path, "01HX", with_repo=True)
    task = tmp_path / "task-01HX"
    assert dirs.root == task
    assert dirs.workspace == task / "workspace" and dirs.repo == task / "workspace" / "repo"
    assert dirs.context == task / "context" and dirs.prompts == task / "prompts"
    assert dirs.outputs == task / "outputs" and dirs.artifacts == task / "outputs" / "artifacts"
    assert dirs.result_file == task / "outputs" / "result.json"
    assert dirs.log_file == task / "outputs" / "log.jsonl"
    assert dirs.prompt_file("review") == task / "prompts" / "review.md"
    assert dirs.context_file("pull_request") == task / "context" / "pull_request.json"
    assert dirs.agent_env() == {
        "TASK_ID": "01HX",
        "CONTEXT_DIR": str(task / "context"),
        "OUTPUT_DIR": str(task / "outputs"),
    }
    assert TaskDirs.layout(tmp_path, "01HX", with_repo=False).repo is None


def test_create_makes_every_directory_but_the_repo(tmp_path: Path) -> None:
    dirs = TaskDirs.layout(tmp_path, "t", with_repo=True)
    dirs.create()
    assert all(p.is_dir() for p in (dirs.workspace, dirs.context, dirs.prompts, dirs.artifacts))
    assert dirs.repo is not None and not dirs.repo.exists()


@pytest.mark.parametrize("task_id", ["", "../x", "a/b", ".hidden", "-x", "a b", "x" * 200])
def test_task_ids_that_would_escape_or_hide_are_refused(tmp_path: Path, task_id: str) -> None:
    with pytest.raises(ValueError, match="cannot name a workspace"):
        TaskDirs.layout(tmp_path, task_id, with_repo=False)


@pytest.mark.parametrize("name", ["../secrets", "a/b", ".env", ""])
def test_file_names_stay_in_their_directory(tmp_path: Path, name: str) -> None:
    dirs = TaskDirs.layout(tmp_path, "t", with_repo=False)
    with pytest.raises(ValueError, match="cannot name a workspace file"):
        dirs.prompt_file(name)
    with pytest.raises(ValueError, match="cannot name a workspace file"):
        dirs.context_file(name)


def test_url_override_wins_over_template_which_wins_over_github() -> None:
    template = "file:///srv/mirrors/{owner}/{repo}.git"
    overrides = {"Acme/Special": "ssh://git@internal/special.git"}
    assert resolve_repo_url("acme/api") == "https://github.com/acme/api.git"
    assert resolve_repo_url("acme/api", template=template) == "file:///srv/mirrors/acme/api.git"
    assert (
        resolve_repo_url("acme/special", template=template, overrides=overrides)
        == "ssh://git@internal/special.git"
    )
    assert DEFAULT_URL_TEMPLATE.format(owner="o", repo="r") == "https://github.com/o/r.git"


def test_url_settings_come_from_the_file_and_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "taskyard.yaml"
    path.write_text("runs:\n  repo_urls:\n    acme/special: file:///special.git\n")
    env = {"TASKYARD_GIT_URL_TEMPLATE": "file:///srv/{owner}/{repo}.git"}
    url_for = url_resolver(load_settings(path, env).runs)
    assert url_for("acme/special") == "file:///special.git"
    assert url_for("acme/api") == "file:///srv/acme/api.git"
    assert url_resolver(load_settings(None, {}).runs)("acme/api") == (
        "https://github.com/acme/api.git"
    )


@pytest.mark.parametrize("template", ["https://h/{org}/{repo}.git", "https://h/{0}.git", "{"])
def test_a_template_with_unknown_placeholders_is_a_config_error(template: str) -> None:
    with pytest.raises(ConfigError, match="git_url_template"):
        load_settings(None, {"TASKYARD_GIT_URL_TEMPLATE": template})


def test_workspaces_from_settings_put_mirrors_and_archive_under_the_root(tmp_path: Path) -> None:
    settings = load_settings(None, {"TASKYARD_HOME": str(tmp_path)})
    ws = Workspaces.from_settings(settings, {"PATH": "/usr/bin"})
    root = (tmp_path / "workspaces").resolve()
    assert ws.root == root and ws.archive == root / "archive"
    assert ws.mirrors.root == root / "mirrors"
    assert ws.mirrors.url("acme/api") == "https://github.com/acme/api.git"
    assert ws.keep is False and ws.stale_hours == 6.0


def test_public_url_drops_user_and_password() -> None:
    assert public_url("https://x:tok@github.com/a/b.git") == "https://github.com/a/b.git"
    assert public_url("https://github.com/a/b.git") == "https://github.com/a/b.git"
    assert public_url("git@github.com:a/b.git") == "git@github.com:a/b.git"


def test_mirror_path_ignores_case_as_github_does(tmp_path: Path) -> None:
    mirrors = RepoMirrors(tmp_path, lambda n: n, env={})
    assert mirrors.path_for("Acme/API") == mirrors.path_for("acme/api")
    assert mirrors.path_for("acme/api") == tmp_path.resolve() / "acme" / "api.git"


def test_revision_prefers_sha_then_pr_then_ref_then_default() -> None:
    assert RepoSpec("a/b", ref="main", sha="abc1234", pr_number=3).revision == "abc1234"
    assert RepoSpec("a/b", ref="main", pr_number=3).revision == "refs/pull/3/head"
    assert RepoSpec("a/b", ref="release/1.x").revision == "release/1.x"
    assert RepoSpec("a/b").revision == "HEAD" and RepoSpec("a/b").wants_default_branch
    assert RepoSpec("a/b", pr_number=3).describe() == "a/b#3"


@pytest.mark.parametrize("name", ["acme", "acme/api/x", "../api", "acme/..", "-x/y", "a/b c"])
def test_bad_repository_names_are_permanent_errors(name: str) -> None:
    with pytest.raises(RepositoryNotFound) as caught:
        RepoSpec(name)
    assert isinstance(caught.value, PermanentError)


@pytest.mark.parametrize(
    "kwargs", [{"sha": "xyz"}, {"sha": "--all"}, {"ref": "--upload-pack=x"}, {"pr_number": 0}]
)
def test_bad_revisions_are_permanent_errors(kwargs: dict[str, object]) -> None:
    with pytest.raises(RevisionNotFound) as caught:
        RepoSpec("acme/api", **kwargs)  # type: ignore[arg-type]
    assert isinstance(caught.value, PermanentError)


def test_dotted_repository_names_are_valid() -> None:
    assert RepoSpec("acme/.github").full_name == "acme/.github"
    assert RepoSpec("my-org/site.io").full_name == "my-org/site.io"


@pytest.mark.parametrize(
    "stderr",
    [
        "remote: Repository not found.\nfatal: repository 'https://github.com/a/b.git/' not found",
        "fatal: '/srv/a/b.git' does not appear to be a git repository",
        "fatal: could not read Username for 'https://github.com': terminal prompts disabled",
        "fatal: unable to access 'https://h/a/b.git/': The requested URL returned error: 403",
        "git@github.com: Permission denied (publickey).",
    ],
)
def test_missing_or_forbidden_repositories_are_permanent(stderr: str) -> None:
    error = fetch_error("cannot clone a/b from https://github.com/a/b.git", stderr)
    assert isinstance(error, RepositoryNotFound) and isinstance(error, PermanentError)
    assert str(error).startswith("cannot clone a/b from https://github.com/a/b.git: ")


@pytest.mark.parametrize(
    "stderr",
    [
        "fatal: unable to access 'https://github.com/a/b.git/': Could not resolve host: github.com",
        "fatal: unable to access 'https://h/a/b.git/': Failed to connect to h port 443",
        "error: RPC failed; HTTP 502 curl 22 The requested URL returned error: 502",
        "fatal: early EOF",
    ],
)
def test_network_failures_are_transient(stderr: str) -> None:
    error = fetch_error("cannot fetch a/b", stderr)
    assert type(error) is WorkspaceError and not isinstance(error, PermanentError)


def test_error_text_hides_credentials() -> None:
    stderr = "fatal: unable to access 'https://x-access-token:ghs_abc@github.com/a/b.git/': 500"
    tail = stderr_tail(stderr + "\nBearer ghs_other", hidden=["ghs_other"])
    assert "ghs_abc" not in tail and "ghs_other" not in tail
    assert "https://***@github.com/a/b.git/" in tail


def test_error_text_is_the_last_lines_and_bounded() -> None:
    stderr = "\n".join(f"line {i}" for i in range(10)) + "\n" + "x" * 2000
    tail = stderr_tail(stderr)
    assert tail.startswith("…") and len(tail) <= 601 and "line 0" not in tail


def test_git_gets_a_minimal_environment_without_prompts() -> None:
    environ = {
        "PATH": "/usr/bin",
        "HOME": "/home/t",
        "GITHUB_TOKEN": "ghp_secret",
        "TASKYARD_GITHUB_SECRET": "s",
        "GIT_DIR": "/elsewhere",
        "https_proxy": "http://proxy:3128",
    }
    env = git_environment(environ)
    assert env == {
        "PATH": "/usr/bin",
        "HOME": "/home/t",
        "https_proxy": "http://proxy:3128",
        "GIT_TERMINAL_PROMPT": "0",
        "GCM_INTERACTIVE": "never",
        "LC_ALL": "C",
    }
