"""The `changes:` section: the bounds on the code changes taskyard makes when a comment asks
it to fix something (how big a change may be, how often and at what cost
it may try, and where it may push). The words that ask for a fix are the route's (`fix:`,
`taskyard.config.routes.FixTrigger`)."""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Literal

from pydantic import Field, field_validator

from taskyard.config.sections import _Frozen


class RepositoryChanges(_Frozen):
    """`changes.repositories.<owner/name>`: one repository's own settings for change routes
    (a route's own `changes_mode` and `test_commands` win over them)."""

    mode: Literal["suggest", "push"] | None = None  # None: `changes.mode`
    test_commands: tuple[str, ...] = ()

    @field_validator("test_commands")
    @classmethod
    def _commands(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(not command.strip() for command in value):
            raise ValueError("test_commands: a blank command tests nothing")
        return value


class ChangesConfig(_Frozen):
    """`mode`: `suggest` posts the change for a person to apply; `push` commits it to the pull
    request's branch, never to a protected one (`protected_branches`, glob patterns like
    `release/*`). A change over `max_changed_lines`, or one that adds a secret, is refused."""

    max_changed_lines: int = Field(default=500, ge=1)  # lines added + removed
    attempts_per_comment: int = Field(default=3, ge=1)  # agent runs for one trigger comment
    fixes_per_pr_per_hour: int = Field(default=5, ge=1)
    cost_ceiling_per_pr_usd: float = Field(default=3.0, gt=0)
    mode: Literal["suggest", "push"] = "suggest"
    max_revisions: int = Field(default=3, ge=1)  # follow-up changes asked of one fix
    # Subtasks a change task's agent may create (`create_subtask`), and how deep they nest.
    max_subtasks: int = Field(default=5, ge=0)
    max_subtask_depth: int = Field(default=2, ge=0)
    protected_branches: tuple[str, ...] = ("main", "master", "release/*")
    # The test gate (a route's `test_commands`, `taskyard.run.testgate`): each command's time
    # limit, and how much of the end of its output is kept and posted.
    test_timeout_seconds: float = Field(default=600.0, gt=0)
    test_output_tail_bytes: int = Field(default=4000, ge=1)
    # Per repository (`owner/name`): auto-push or suggest, and the test commands of its routes
    # that name none.
    repositories: dict[str, RepositoryChanges] = Field(default_factory=dict)

    def for_repository(self, name: str | None) -> RepositoryChanges:
        return self.repositories.get(name or "", RepositoryChanges())

    @field_validator("protected_branches")
    @classmethod
    def _patterns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(not pattern.strip() for pattern in value):
            raise ValueError("changes.protected_branches: a blank pattern protects nothing")
        return tuple(pattern.strip() for pattern in value)

    def is_protected(self, branch: str) -> bool:
        """Whether taskyard may not push to `branch` (a name like `main`, not `refs/heads/…`)."""
        return any(fnmatchcase(branch, pattern) for pattern in self.protected_branches)
