"""The lifecycle table is whole and consistent: every status is reached, ended tasks leave only
by a person's do-over, and a transition writes only columns a task has."""

from __future__ import annotations

import pytest

from taskyard.exceptions import NotFound
from taskyard.lifecycle import (
    TERMINAL,
    TRANSITIONS,
    Kind,
    changes_for,
    ends_in,
    workflow_id,
)
from taskyard.models import TaskStatus
from taskyard.store import MemoryStore
from taskyard.store.base import TASK_COLUMNS
from tests.lifecycle_paths import NoPath, drive, path_to

NOW = 1_700_000_000.0


def test_every_kind_has_one_transition() -> None:
    assert set(TRANSITIONS) == set(Kind)
    assert all(step.kind is kind for kind, step in TRANSITIONS.items())


@pytest.mark.parametrize("status", list(TaskStatus))
def test_every_status_has_a_way_in(status: TaskStatus) -> None:
    targets = {step.target for step in TRANSITIONS.values()}
    assert status in targets or status is TaskStatus.QUEUED


@pytest.mark.parametrize("status", list(TaskStatus))
def test_every_status_is_reached_from_queued(status: TaskStatus) -> None:
    assert path_to(TaskStatus.QUEUED, status)


def test_an_ended_task_leaves_only_by_a_do_over() -> None:
    leaving = {kind for kind, step in TRANSITIONS.items() if step.sources & TERMINAL}
    assert leaving == {Kind.RETRY, Kind.REAPPLY, Kind.RESUBMIT}
    assert all(TRANSITIONS[kind].again for kind in leaving)
    assert {s for s in TaskStatus if s.terminal} == TERMINAL and TERMINAL


@pytest.mark.parametrize("kind", list(Kind))
def test_from_states_are_real_and_columns_are_task_columns(kind: Kind) -> None:
    step = TRANSITIONS[kind]
    assert step.sources and step.sources <= set(TaskStatus)
    assert step.target is None or step.target in TaskStatus
    assert step.fields <= TASK_COLUMNS and set(step.fixed) <= TASK_COLUMNS
    assert "status" not in step.fields | set(step.fixed)  # its target says it


@pytest.mark.parametrize("kind", list(Kind))
def test_changes_for_refuses_a_field_it_does_not_allow(kind: Kind) -> None:
    refused = sorted(TASK_COLUMNS - TRANSITIONS[kind].fields - {"updated_at", "workflow_id"})
    with pytest.raises(ValueError, match=f"may not set \\['{refused[0]}'\\]"):
        changes_for("t1", kind, {refused[0]: None}, NOW)
    with pytest.raises(ValueError, match="may not set"):
        changes_for("t1", kind, {"route": "x"}, NOW)


@pytest.mark.parametrize("kind", list(Kind))
def test_changes_for_writes_its_status_fixed_columns_and_the_time(kind: Kind) -> None:
    step = TRANSITIONS[kind]
    given = {name: f"value of {name}" for name in step.fields}
    changes = changes_for("t1", kind, given, NOW)
    assert changes["updated_at"] == NOW
    assert changes.get("status") == step.target
    assert {**step.fixed, **given}.items() <= changes.items()
    assert changes_for("t1", kind, {"updated_at": NOW + 1}, NOW)["updated_at"] == NOW + 1


@pytest.mark.parametrize("kind", [k for k, step in TRANSITIONS.items() if step.mints_workflow])
def test_a_hand_over_mints_a_workflow_id_unless_given(kind: Kind) -> None:
    first = changes_for("t1", kind, {}, NOW)["workflow_id"]
    second = changes_for("t1", kind, {}, NOW)["workflow_id"]
    assert first != second and first.startswith("t1-") and first != workflow_id("t1")
    assert changes_for("t1", kind, {"workflow_id": "wf-9"}, NOW)["workflow_id"] == "wf-9"


@pytest.mark.parametrize("kind", [k for k, step in TRANSITIONS.items() if not step.mints_workflow])
def test_a_transition_that_keeps_its_worker_keeps_its_workflow_id(kind: Kind) -> None:
    assert "workflow_id" not in changes_for("t1", kind, {}, NOW)
    with pytest.raises(ValueError, match="may not set"):
        changes_for("t1", kind, {"workflow_id": "wf-9"}, NOW)


@pytest.mark.parametrize("status", sorted(TERMINAL))
def test_ends_in_names_a_transition_for_every_ended_status(status: TaskStatus) -> None:
    step = TRANSITIONS[ends_in(status)]
    assert step.target is status
    assert TaskStatus.RUNNING in step.sources or TaskStatus.APPLYING in step.sources


@pytest.mark.parametrize("status", sorted(set(TaskStatus) - TERMINAL))
def test_ends_in_refuses_a_status_that_is_not_an_ending(status: TaskStatus) -> None:
    with pytest.raises(ValueError, match="not a status a run ends in"):
        ends_in(status)


def test_paths_give_each_field_to_the_last_step_that_allows_it() -> None:
    steps = path_to(TaskStatus.QUEUED, TaskStatus.RUNNING, ["attempts", "process", "worker"])
    assert steps == [
        (Kind.START_ATTEMPT, frozenset({"attempts", "worker"})),
        (Kind.AGENT_STARTED, frozenset({"process"})),
    ]
    assert path_to(TaskStatus.QUEUED, TaskStatus.QUEUED) == [(Kind.HOLD_FOR_BUDGET, frozenset())]
    assert path_to(TaskStatus.AWAITING_APPROVAL, TaskStatus.AWAITING_APPROVAL) == [
        (Kind.RESUBMIT, frozenset())
    ]
    with pytest.raises(NoPath, match="sets \\['reason'\\]"):
        path_to(TaskStatus.QUEUED, TaskStatus.RUNNING, ["reason"])  # a start clears it


def test_drive_needs_a_task() -> None:
    with pytest.raises(NotFound):
        drive(MemoryStore(), "nope", TaskStatus.FAILED)
