"""The ideas half of the in-memory store (`MemoryStore` inherits it), under the store's one
lock, with the rules of the SQL store (`taskyard.store.sql_ideas`)."""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from taskyard.exceptions import NotFound
from taskyard.idea import (
    INTENT,
    SUBJECT_OF_STEP,
    Idea,
    IdeaEvent,
    IdeaStatus,
    IdeaStep,
    IdeaTask,
    idea_changes,
)


class MemoryIdeas:
    _lock: threading.Lock
    _ideas: dict[str, Idea]
    _idea_events: dict[str, list[IdeaEvent]]
    _idea_plans: dict[str, list[dict[str, Any]]]
    _idea_tasks: dict[str, dict[str, IdeaTask]]

    def create_idea(self, idea: Idea, data: Mapping[str, Any]) -> Idea:
        with self._lock:
            if idea.id not in self._ideas:  # else: it was there
                self._ideas[idea.id] = replace(idea, last_seq=0)
                self._append(idea.id, INTENT, "registered", data, idea.created_at)
            return self._ideas[idea.id]

    def get_idea(self, idea_id: str) -> Idea:
        with self._lock:
            return self._idea(idea_id)

    def list_ideas(self, status: IdeaStatus | None = None, limit: int = 100) -> list[Idea]:
        with self._lock:
            found = [i for i in self._ideas.values() if status is None or i.status is status]
        found.sort(key=lambda i: (-i.created_at, i.id))
        return found[:limit]

    def idea_transition(
        self,
        idea_id: str,
        step: IdeaStep,
        kind: str,
        data: Mapping[str, Any],
        now: float,
        **fields: Any,
    ) -> Idea | None:
        with self._lock:
            idea = self._idea(idea_id)
            changes = idea_changes(idea, step, fields, now)
            if changes is None:
                return None
            self._ideas[idea_id] = replace(idea, **changes)
            self._append(idea_id, SUBJECT_OF_STEP[step], kind, data, now)
            return self._ideas[idea_id]

    def note_idea(
        self, idea_id: str, subject: str, kind: str, data: Mapping[str, Any], now: float
    ) -> IdeaEvent:
        with self._lock:
            self._idea(idea_id)
            return self._append(idea_id, subject, kind, data, now)

    def idea_events(self, idea_id: str, after_seq: int = 0) -> list[IdeaEvent]:
        with self._lock:
            return [e for e in self._idea_events.get(idea_id, []) if e.seq > after_seq]

    def unpublished_idea_events(self, limit: int = 500) -> list[IdeaEvent]:
        with self._lock:
            found = [e for log in self._idea_events.values() for e in log if e.published_at is None]
        return sorted(found, key=lambda e: (e.idea_id, e.seq))[:limit]

    def mark_idea_events_published(self, keys: Iterable[tuple[str, int]], now: float) -> None:
        with self._lock:
            for idea_id, seq in keys:
                log = self._idea_events.get(idea_id, [])
                if 0 < seq <= len(log) and log[seq - 1].published_at is None:
                    log[seq - 1] = replace(log[seq - 1], published_at=now)

    def add_idea_plan(
        self,
        idea_id: str,
        version: int,
        plan: Mapping[str, Any],
        errors: Sequence[str],
        now: float,
    ) -> None:
        with self._lock:
            plans = self._idea_plans.setdefault(idea_id, [])
            if any(p["version"] == version for p in plans):
                raise ValueError(f"idea {idea_id} has a plan version {version} already")
            entry = {"version": version, "plan": copy.deepcopy(dict(plan))}
            plans.append({**entry, "errors": list(errors), "created_at": now})

    def idea_plans(self, idea_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(sorted(self._idea_plans.get(idea_id, []), key=_version))

    def set_idea_tasks(self, idea_id: str, tasks: Sequence[IdeaTask]) -> list[IdeaTask]:
        with self._lock:
            held = self._idea_tasks.setdefault(idea_id, {})
            keys = {t.key for t in tasks}
            for key in [k for k, t in held.items() if k not in keys and t.task_id is None]:
                del held[key]
            for task in tasks:
                old = held.get(task.key)
                if old is not None:  # what ran of it stays
                    task = replace(
                        task, task_id=old.task_id, branch=old.branch, integrated=old.integrated
                    )
                held[task.key] = task
            return sorted(held.values(), key=lambda t: t.key)

    def idea_tasks(self, idea_id: str) -> list[IdeaTask]:
        with self._lock:
            return sorted(self._idea_tasks.get(idea_id, {}).values(), key=lambda t: t.key)

    def update_idea_task(
        self, idea_id: str, key: str, replaces: str | None = None, **fields: Any
    ) -> bool:
        allowed = {"task_id", "branch", "integrated"}
        if not fields or set(fields) - allowed:
            raise ValueError(f"an idea task's {sorted(set(fields) - allowed)} cannot be set")
        with self._lock:
            task = self._idea_tasks.get(idea_id, {}).get(key)
            if task is None or ("task_id" in fields and task.task_id != replaces):
                return False
            self._idea_tasks[idea_id][key] = replace(task, **fields)
            return True

    def _idea(self, idea_id: str) -> Idea:
        idea = self._ideas.get(idea_id)
        if idea is None:
            raise NotFound(f"no idea {idea_id}")
        return idea

    def _append(
        self, idea_id: str, subject: str, kind: str, data: Mapping[str, Any], now: float
    ) -> IdeaEvent:
        idea = self._idea(idea_id)
        seq = idea.last_seq + 1
        self._ideas[idea_id] = replace(idea, last_seq=seq)
        event = IdeaEvent(idea_id, seq, subject, kind, copy.deepcopy(dict(data)), now)
        self._idea_events.setdefault(idea_id, []).append(event)
        return event


def _version(plan: Mapping[str, Any]) -> int:
    return int(plan["version"])
