"""The ideas part of the store's interface (`taskyard.store.base.Store` inherits it)."""

from __future__ import annotations

import abc
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from taskyard.idea import Idea, IdeaEvent, IdeaStatus, IdeaStep, IdeaTask


class IdeaStore(abc.ABC):
    @abc.abstractmethod
    def create_idea(self, idea: Idea, data: Mapping[str, Any]) -> Idea:
        """Store a new idea and its first event (`registered`, with `data`), in one
        transaction; the idea as stored. An idea whose id is taken is not stored again (the
        same delivery submitted twice): the one stored first is returned."""

    @abc.abstractmethod
    def get_idea(self, idea_id: str) -> Idea:
        """NotFound for an unknown id."""

    @abc.abstractmethod
    def list_ideas(self, status: IdeaStatus | None = None, limit: int = 100) -> list[Idea]:
        """Newest first."""

    @abc.abstractmethod
    def idea_transition(
        self,
        idea_id: str,
        step: IdeaStep,
        kind: str,
        data: Mapping[str, Any],
        now: float,
        **fields: Any,
    ) -> Idea | None:
        """Take one step of the idea's state machine (`taskyard.idea.IDEA_STEPS`), with the
        columns `fields` allows (reason, plan_version, branch, pr_url, budget_usd) and its event
        (`kind`, `data`, on the step's subject), in one transaction, only while the idea is in
        one of the step's from-states: the idea as it now is, or None (it was elsewhere)."""

    @abc.abstractmethod
    def note_idea(
        self, idea_id: str, subject: str, kind: str, data: Mapping[str, Any], now: float
    ) -> IdeaEvent:
        """Append an event to the idea's log without changing its state (a task started,
        ended, was integrated…): the event with its `seq`."""

    @abc.abstractmethod
    def idea_events(self, idea_id: str, after_seq: int = 0) -> list[IdeaEvent]:
        """The idea's events after `after_seq`, in order."""

    @abc.abstractmethod
    def unpublished_idea_events(self, limit: int = 500) -> list[IdeaEvent]:
        """Events not yet published (the outbox), each idea's in `seq` order."""

    @abc.abstractmethod
    def mark_idea_events_published(self, keys: Iterable[tuple[str, int]], now: float) -> None:
        """The events (idea id, seq) were published."""

    @abc.abstractmethod
    def add_idea_plan(
        self,
        idea_id: str,
        version: int,
        plan: Mapping[str, Any],
        errors: Sequence[str],
        now: float,
    ) -> None:
        """Keep a version of the idea's plan, with the errors it was sent back for (none: it
        was accepted). A version is written once."""

    @abc.abstractmethod
    def idea_plans(self, idea_id: str) -> list[dict[str, Any]]:
        """Every version of the idea's plan: {version, plan, errors, created_at}, oldest first."""

    @abc.abstractmethod
    def set_idea_tasks(self, idea_id: str, tasks: Sequence[IdeaTask]) -> list[IdeaTask]:
        """The idea's tasks as its accepted plan has them: new ones added, changed ones
        updated (what ran of them stays: task id, branch, integration), and those the plan
        dropped removed unless they ran. The idea's tasks now, by key."""

    @abc.abstractmethod
    def idea_tasks(self, idea_id: str) -> list[IdeaTask]:
        """By key."""

    @abc.abstractmethod
    def update_idea_task(
        self, idea_id: str, key: str, replaces: str | None = None, **fields: Any
    ) -> bool:
        """Set the task's `task_id` (and `branch`) once — a second scheduler finds it set —
        or in place of the task `replaces` (a redo); or its `integrated` commit. True if it
        changed."""
