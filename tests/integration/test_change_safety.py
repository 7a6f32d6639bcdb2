"""The safety checks on a change, with real git: its size (files, lines, binaries, renames)
and the secrets it adds, found by detect-secrets and never repeated in a finding."""

from __future__ import annotations

import random
import string
import subprocess
from pathlib import Path

import pytest

from taskyard.exceptions import ReviewHashError
from taskyard.review import (
    ChangeLimits,
    DiffStats,
    check_change,
    diff_stats,
    scan_secrets,
)
from taskyard.review.hash import git_env

IDENTITY = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
}
_RANDOM = random.Random(15)  # the planted secrets are made here, so none sits in this file


def _chars(alphabet: str, count: int) -> str:
    return "".join(_RANDOM.choice(alphabet) for _ in range(count))


AWS_KEY = "AKIA" + _chars(string.ascii_uppercase + "234567", 16)
GITHUB_TOKEN = "ghp_" + _chars(string.ascii_letters + string.digits, 36)
KEY_BODY = _chars(string.ascii_letters + string.digits + "+/", 64)
PRIVATE_KEY = "\n".join(
    ["-----BEGIN RSA " + "PRIVATE KEY-----", KEY_BODY, "-----END RSA " + "PRIVATE KEY-----"]
)
NUL_BYTES = bytes(range(256)) * 8


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args],
        env={**git_env(), **IDENTITY},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, f"git {args}: {done.stderr}"
    return done.stdout.strip()


def write(repo: Path, files: dict[str, str | bytes]) -> None:
    for name, content in files.items():
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)


def stage(repo: Path, files: dict[str, str | bytes]) -> Path:
    write(repo, files)
    git(repo, "add", "-A")
    return repo


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository with one commit: a README and a module of 20 lines."""
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    module = "".join(f"value_{n} = {n}\n" for n in range(1, 21))
    stage(root, {"README.md": "hello\n", "src/app.py": module})
    git(root, "commit", "-q", "-m", "start")
    return root


def lines(count: int, word: str = "line") -> str:
    return "".join(f"{word} {n}\n" for n in range(count))


# --- secrets ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "line", "detector", "value"),
    [
        (f'import os\n\nAWS_KEY = "{AWS_KEY}"\n', 3, "AWS Access Key", AWS_KEY),
        (f'# settings\nTOKEN = "{GITHUB_TOKEN}"\n', 2, "GitHub Token", GITHUB_TOKEN),
        (f"x = 1\nKEY = '''\n{PRIVATE_KEY}\n'''\n", 3, "Private Key", KEY_BODY),
    ],
    ids=["aws", "github", "private-key"],
)
def test_a_staged_secret_is_found_by_file_line_and_detector_and_never_repeated(
    repo: Path, content: str, line: int, detector: str, value: str
) -> None:
    stage(repo, {"app/settings.py": content})
    findings = scan_secrets(repo)
    assert (("app/settings.py", line, detector)) in {(f.file, f.line, f.detector) for f in findings}
    refusals = check_change(repo, ChangeLimits())
    assert f"a secret ({detector}) was found in app/settings.py line {line}: " in "\n".join(
        refusals
    )
    shown = [*map(str, findings), *map(repr, findings), *refusals]
    assert not [text for text in shown if value in text]
    assert not [text for text in shown if "BEGIN RSA" in text]


def test_a_secret_added_to_an_existing_file_is_found_at_its_line_in_the_new_file(
    repo: Path,
) -> None:
    module = (repo / "src/app.py").read_text().splitlines(keepends=True)
    module.insert(10, f'TOKEN = "{GITHUB_TOKEN}"\n')
    stage(repo, {"src/app.py": "".join(module)})
    found = {(f.file, f.line) for f in scan_secrets(repo) if f.detector == "GitHub Token"}
    assert found == {("src/app.py", 11)}


def test_an_untouched_committed_secret_is_not_blamed_on_the_change(repo: Path) -> None:
    stage(repo, {"conf/keys.py": f'AWS = "{AWS_KEY}"\n', "docs/token.txt": GITHUB_TOKEN + "\n"})
    git(repo, "commit", "-q", "-m", "secrets from long ago")
    keys = (repo / "conf/keys.py").read_text()
    stage(repo, {"conf/keys.py": "# keys\n" + keys + "REGION = 'eu-west-1'\n"})
    git(repo, "mv", "docs/token.txt", "docs/moved.txt")
    assert scan_secrets(repo) == []
    assert check_change(repo, ChangeLimits()) == []


def test_a_clean_change_and_an_empty_one_have_no_findings(repo: Path) -> None:
    assert scan_secrets(repo) == []
    stage(repo, {"src/more.py": "def f() -> int:\n    return 1\n"})
    assert scan_secrets(repo) == []


def test_odd_file_names_are_named_as_they_are(repo: Path) -> None:
    stage(repo, {"dir with space/ünïcode.env": f"AWS_ACCESS_KEY_ID={AWS_KEY}\n"})
    files = {(f.file, f.line) for f in scan_secrets(repo) if f.detector == "AWS Access Key"}
    assert files == {("dir with space/ünïcode.env", 1)}


# --- size ---------------------------------------------------------------------------------


def test_a_600_line_change_is_refused_and_a_400_line_one_is_not(repo: Path) -> None:
    stage(repo, {"src/big.py": lines(400)})
    assert diff_stats(repo).changed_lines == 400
    assert check_change(repo, ChangeLimits()) == []
    stage(repo, {"src/big.py": lines(600)})
    assert check_change(repo, ChangeLimits()) == [
        "the change has 600 changed lines, over the limit of 500"
    ]
    assert check_change(repo, ChangeLimits(max_changed_lines=600)) == []


def test_added_and_removed_lines_both_count(repo: Path) -> None:
    module = (repo / "src/app.py").read_text().splitlines(keepends=True)
    stage(repo, {"src/app.py": "".join(module[:15]) + "extra = 1\n", "notes.txt": lines(3)})
    assert diff_stats(repo) == DiffStats(
        files_changed=2, lines_added=4, lines_removed=5, binary_files=0, renamed_files=0
    )
    git(repo, "rm", "-q", "README.md")
    stats = diff_stats(repo)
    assert (stats.files_changed, stats.lines_removed, stats.changed_lines) == (3, 6, 10)


def test_binary_files_are_counted_without_lines_and_scanned_without_crashing(
    repo: Path,
) -> None:
    stage(repo, {"assets/logo.png": NUL_BYTES, "assets/key.bin": NUL_BYTES + AWS_KEY.encode()})
    stats = diff_stats(repo)
    assert (stats.files_changed, stats.binary_files, stats.changed_lines) == (2, 2, 0)
    assert scan_secrets(repo) == []
    git(repo, "commit", "-q", "-m", "assets")
    stage(repo, {"assets/logo.png": NUL_BYTES[::-1]})
    assert diff_stats(repo).binary_files == 1
    assert check_change(repo, ChangeLimits()) == []


def test_a_rename_counts_as_one_file_with_only_its_edited_lines(repo: Path) -> None:
    git(repo, "mv", "src/app.py", "src/renamed.py")
    assert diff_stats(repo) == DiffStats(1, 0, 0, 0, 1)
    stage(repo, {"src/renamed.py": (repo / "src/renamed.py").read_text() + "value_21 = 21\n"})
    assert diff_stats(repo) == DiffStats(1, 1, 0, 0, 1)


# --- which change -------------------------------------------------------------------------


def test_against_a_base_the_commits_since_and_the_staged_change_count(repo: Path) -> None:
    base = git(repo, "rev-parse", "HEAD")
    stage(repo, {"src/one.py": lines(300), "conf/aws.py": f'KEY = "{AWS_KEY}"\n'})
    git(repo, "commit", "-q", "-m", "one")
    stage(repo, {"src/two.py": lines(300)})
    assert diff_stats(repo).changed_lines == 300
    assert scan_secrets(repo) == []
    assert diff_stats(repo, base).changed_lines == 601
    assert [(f.file, f.line) for f in scan_secrets(repo, base)] == [("conf/aws.py", 1)]
    assert len(check_change(repo, ChangeLimits(), base=base)) == 2


def test_an_unknown_base_says_so(repo: Path) -> None:
    with pytest.raises(ReviewHashError, match="'no-such-branch' names no commit"):
        diff_stats(repo, "no-such-branch")


def test_a_repository_without_commits_counts_everything_staged(tmp_path: Path) -> None:
    root = tmp_path / "fresh"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    stage(root, {"a.py": lines(2), "b.env": f"TOKEN={GITHUB_TOKEN}\n"})
    assert diff_stats(root) == DiffStats(2, 3, 0, 0, 0)
    assert ("b.env", 1, "GitHub Token") in {
        (f.file, f.line, f.detector) for f in scan_secrets(root)
    }
