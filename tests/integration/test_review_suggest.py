"""Suggestion mode with real git: a fix's `git diff` against the pull request's head turned
into GitHub suggested changes, what cannot be one into the review body's diff, and every
review body checked against GitHub's OpenAPI description of `pulls/create-review` (npm
@octokit/openapi; TASKYARD_REQUIRE_AGENT_BINARIES=1, as CI sets it, fails when it is
missing instead of skipping)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from taskyard.review import (
    SuggestionPlan,
    commentable_lines,
    review_request,
    suggestions_from_diff,
)
from taskyard.review.hash import git_env
from taskyard.review.suggest import MAX_BODY
from tests.platform_servers import INSTALL, OPENAPI, github_operation, openapi_problems

IDENTITY = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
}
TEN = "".join(f"line {n}\n" for n in range(1, 11))
THIRTY = "".join(f"line {n}\n" for n in range(1, 31))


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args],
        env={**git_env(), **IDENTITY},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, f"git {args}: {done.stderr}"
    return done.stdout


def head_repo(root: Path, files: dict[str, str | bytes]) -> Path:
    """A repository whose one commit is the pull request's head."""
    root.mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    write(root, files)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "head")
    return root


def write(root: Path, files: dict[str, str | bytes]) -> None:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)


def fix_diff(repo: Path, files: dict[str, str | bytes], *options: str) -> str:
    """The fix made in the work tree, as `git diff` against the head prints it."""
    write(repo, files)
    git(repo, "add", "-A")
    return git(repo, "diff", "--cached", "HEAD", *options)


@pytest.fixture(scope="module")
def review_operation() -> tuple[dict[str, Any], dict[str, Any]]:
    """GitHub's description and the request body schema of `pulls/create-review`."""
    path = OPENAPI / "api.github.com.json"
    if not path.is_file():
        message = f"GitHub's OpenAPI description is missing ({path}); run: {INSTALL}"
        if os.environ.get("TASKYARD_REQUIRE_AGENT_BINARIES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    spec: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    found = github_operation("POST", "/repos/acme/app/pulls/7/reviews")
    assert found is not None
    operation = found[1]
    assert operation["operationId"] == "pulls/create-review"
    schema: dict[str, Any] = operation["requestBody"]["content"]["application/json"]["schema"]
    return spec, schema


@pytest.fixture
def valid(
    review_operation: tuple[dict[str, Any], dict[str, Any]],
) -> Any:
    """Builds the review body of a plan and checks it against GitHub's description."""
    spec, schema = review_operation

    def build(plan: SuggestionPlan, summary: str = "Suggested fixes") -> dict[str, Any]:
        body = review_request(plan, "a" * 40, summary)
        assert openapi_problems(spec, schema, body) == []
        jsonschema.validate(body, schema)
        assert body["event"] == "COMMENT"
        assert body["commit_id"] == "a" * 40
        return body

    return build


def test_a_one_line_change_is_a_one_line_suggestion(tmp_path: Path, valid: Any) -> None:
    repo = head_repo(tmp_path / "r", {"app.py": TEN})
    diff = fix_diff(repo, {"app.py": TEN.replace("line 4\n", "line four\n")})
    plan = suggestions_from_diff(diff)
    assert plan.fallback == ""
    body = valid(plan)
    assert body["comments"] == [
        {"path": "app.py", "line": 4, "side": "RIGHT", "body": "```suggestion\nline four\n```"}
    ]
    assert body["body"] == "Suggested fixes"


def test_a_multi_line_replacement_spans_start_line_to_line(tmp_path: Path, valid: Any) -> None:
    repo = head_repo(tmp_path / "r", {"app.py": TEN})
    new = TEN.replace("line 3\nline 4\nline 5\n", "three\nfour\n")
    (comment,) = valid(suggestions_from_diff(fix_diff(repo, {"app.py": new})))["comments"]
    assert comment == {
        "path": "app.py",
        "line": 5,
        "side": "RIGHT",
        "start_line": 3,
        "start_side": "RIGHT",
        "body": "```suggestion\nthree\nfour\n```",
    }


def test_a_pure_deletion_is_an_empty_suggestion(tmp_path: Path, valid: Any) -> None:
    repo = head_repo(tmp_path / "r", {"app.py": TEN})
    diff = fix_diff(repo, {"app.py": TEN.replace("line 6\nline 7\n", "")})
    (comment,) = valid(suggestions_from_diff(diff))["comments"]
    assert (comment["start_line"], comment["line"]) == (6, 7)
    assert comment["body"] == "```suggestion\n```"


def test_a_pure_insertion_repeats_the_line_before_it(tmp_path: Path, valid: Any) -> None:
    repo = head_repo(tmp_path / "r", {"app.py": TEN})
    diff = fix_diff(repo, {"app.py": TEN.replace("line 2\n", "line 2\nnew a\nnew b\n")})
    (comment,) = valid(suggestions_from_diff(diff))["comments"]
    assert "start_line" not in comment
    assert comment["line"] == 2
    assert comment["body"] == "```suggestion\nline 2\nnew a\nnew b\n```"


def test_an_insertion_without_context_reads_the_head_line(tmp_path: Path, valid: Any) -> None:
    repo = head_repo(tmp_path / "r", {"app.py": TEN})
    diff = fix_diff(repo, {"app.py": "first\n" + TEN.replace("line 5\n", "line 5\nnew\n")}, "-U0")
    assert suggestions_from_diff(diff).suggestions == ()
    head = {"app.py": TEN.splitlines()}
    plan = suggestions_from_diff(diff, head.__getitem__)
    top, middle = valid(plan)["comments"]
    assert (top["line"], top["body"]) == (1, "```suggestion\nfirst\nline 1\n```")
    assert (middle["line"], middle["body"]) == (5, "```suggestion\nline 5\nnew\n```")


def test_two_hunks_in_one_file_are_two_suggestions(tmp_path: Path, valid: Any) -> None:
    repo = head_repo(tmp_path / "r", {"app.py": THIRTY})
    new = THIRTY.replace("line 2\n", "two\n").replace("line 25\n", "twenty-five\n")
    diff = fix_diff(repo, {"app.py": new})
    assert diff.count("\n@@ ") == 2
    comments = valid(suggestions_from_diff(diff))["comments"]
    assert [(c["line"], c["body"]) for c in comments] == [
        (2, "```suggestion\ntwo\n```"),
        (25, "```suggestion\ntwenty-five\n```"),
    ]


def test_a_new_file_falls_back_to_a_diff_in_the_body(tmp_path: Path, valid: Any) -> None:
    repo = head_repo(tmp_path / "r", {"app.py": TEN})
    diff = fix_diff(repo, {"app.py": TEN.replace("line 1\n", "one\n"), "new.py": "x = 1\n"})
    plan = suggestions_from_diff(diff)
    assert [s.path for s in plan.suggestions] == ["app.py"]
    assert "new file mode" in plan.fallback
    assert "+x = 1" in plan.fallback
    body = valid(plan)["body"]
    assert body.startswith("Suggested fixes\n\n")
    assert "```diff\ndiff --git a/new.py b/new.py\n" in body
    assert body.endswith("+x = 1\n```")


def test_a_binary_file_falls_back(tmp_path: Path, valid: Any) -> None:
    repo = head_repo(tmp_path / "r", {"logo.bin": b"\x00\x01\x02"})
    diff = fix_diff(repo, {"logo.bin": b"\x00\x01\x03"})
    plan = suggestions_from_diff(diff)
    assert plan.suggestions == ()
    assert "Binary files a/logo.bin and b/logo.bin differ" in plan.fallback
    assert "comments" not in valid(plan)


def test_deleted_renamed_and_mode_changed_files_fall_back(tmp_path: Path, valid: Any) -> None:
    repo = head_repo(tmp_path / "r", {"gone.py": TEN, "old.py": THIRTY, "run.sh": "echo\n"})
    (repo / "gone.py").unlink()
    git(repo, "mv", "old.py", "moved.py")
    (repo / "run.sh").chmod(0o755)
    plan = suggestions_from_diff(fix_diff(repo, {}, "-M"))
    assert plan.suggestions == ()
    for marker in ("deleted file mode", "rename from old.py", "new mode 100755"):
        assert marker in plan.fallback
    valid(plan)


def test_a_line_with_a_fence_gets_a_longer_fence(tmp_path: Path, valid: Any) -> None:
    readme = "# App\n\n```\nmake\n```\n"
    repo = head_repo(tmp_path / "r", {"README.md": readme})
    diff = fix_diff(repo, {"README.md": readme.replace("```\nmake", "```sh\nmake test")})
    (comment,) = valid(suggestions_from_diff(diff))["comments"]
    assert comment["body"] == "````suggestion\n```sh\nmake test\n````"
    assert (comment["start_line"], comment["line"]) == (3, 4)


def test_lines_outside_the_pull_requests_diff_fall_back(tmp_path: Path, valid: Any) -> None:
    repo = head_repo(tmp_path / "r", {"app.py": THIRTY})
    base = git(repo, "rev-parse", "HEAD").strip()
    write(repo, {"app.py": THIRTY.replace("line 2\n", "line two\n")})
    git(repo, "commit", "-q", "-am", "the pull request")
    commentable = commentable_lines(git(repo, "diff", base, "HEAD"))
    assert commentable == {"app.py": frozenset(range(1, 6))}
    new = THIRTY.replace("line two\n", "line 2\n").replace("line 20\n", "twenty\n")
    plan = suggestions_from_diff(fix_diff(repo, {"app.py": new}), commentable=commentable)
    assert [(s.line, s.replacement) for s in plan.suggestions] == [(2, ("line 2",))]
    assert "-line 20\n+twenty\n" in plan.fallback
    assert plan.fallback.startswith("diff --git a/app.py b/app.py\n")
    assert "-line two" not in plan.fallback
    valid(plan)


def test_a_path_with_unusual_bytes_is_unquoted(tmp_path: Path, valid: Any) -> None:
    repo = head_repo(tmp_path / "r", {"dir/é x.py": TEN})
    diff = fix_diff(repo, {"dir/é x.py": TEN.replace("line 1\n", "one\n")})
    assert '"a/dir/\\303\\251 x.py"' in diff
    (comment,) = valid(suggestions_from_diff(diff))["comments"]
    assert comment["path"] == "dir/é x.py"


def test_no_newline_at_end_of_file_is_not_a_line(tmp_path: Path, valid: Any) -> None:
    repo = head_repo(tmp_path / "r", {"app.py": "a\nb"})
    diff = fix_diff(repo, {"app.py": "a\nc"})
    assert "\\ No newline at end of file" in diff
    (comment,) = valid(suggestions_from_diff(diff))["comments"]
    assert (comment["line"], comment["body"]) == (2, "```suggestion\nc\n```")


def test_a_fallback_diff_holding_a_fence_stays_one_block(tmp_path: Path, valid: Any) -> None:
    repo = head_repo(tmp_path / "r", {"app.py": TEN})
    diff = fix_diff(repo, {"notes.md": "```\ncode\n```\n"})
    body = valid(suggestions_from_diff(diff), summary="")["body"]
    assert body.startswith("Part of the change")
    assert "\n````diff\n" in body
    assert body.endswith("\n````")


def test_a_fallback_too_long_for_github_is_cut_and_says_so(tmp_path: Path, valid: Any) -> None:
    repo = head_repo(tmp_path / "r", {"app.py": TEN})
    big = "".join(f"value_{n} = {'x' * 60}\n" for n in range(3000))
    body = valid(suggestions_from_diff(fix_diff(repo, {"big.py": big})))["body"]
    assert len(body) <= MAX_BODY
    assert body.startswith("Suggested fixes\n\nPart of the change")
    assert re.search(r"\n```\n… \d+ more lines of the diff are not shown$", body)
