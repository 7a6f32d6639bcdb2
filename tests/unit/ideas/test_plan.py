from __future__ import annotations

import copy
from typing import Any

import jsonschema
import pytest

from taskyard.ideas.plan import (
    PLAN_SCHEMA,
    check_plan,
    keep_finished,
    ready_order,
    replan_prompt_errors,
    tasks_of,
)


def task(key: str, *depends_on: str, criteria: list[str] | None = None) -> dict[str, Any]:
    return {
        "id": key,
        "title": f"do {key}",
        "stage": "implement",
        "depends_on": list(depends_on),
        "acceptance_criteria": [f"{key} works"] if criteria is None else criteria,
        "risk_labels": [],
        "estimate": "S",
        "files": [f"src/{key}.py"],
        "heavy": False,
    }


def plan(*tasks: dict[str, Any], milestones: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "tasks": list(tasks),
        "milestones": milestones or [],
        "risks": [{"risk": "merge conflicts", "impact": "low", "mitigation": "rebase"}],
        "summary": "a plan",
    }


def diamond() -> dict[str, Any]:
    return plan(task("A"), task("B", "A"), task("C", "A"), task("D", "B", "C"))


def test_the_schema_is_valid_and_strict_at_every_level() -> None:
    jsonschema.Draft202012Validator.check_schema(PLAN_SCHEMA)
    objects = [PLAN_SCHEMA]
    while objects:
        node = objects.pop()
        if node.get("type") == "object":
            assert node["additionalProperties"] is False
            assert set(node["required"]) == set(node["properties"])
        objects += [v for v in node.get("properties", {}).values()]
        objects += [node["items"]] if "items" in node else []


def test_a_diamond_passes_in_three_waves() -> None:
    assert check_plan(diamond(), max_tasks=10) == []
    assert ready_order(diamond()) == [["A"], ["B", "C"], ["D"]]


def test_waves_are_sorted_whatever_the_plan_order() -> None:
    shuffled = plan(task("D", "C", "B"), task("C", "A"), task("B", "A"), task("A"))
    assert ready_order(shuffled) == [["A"], ["B", "C"], ["D"]]
    wide = plan(task("A"), *(task(f"w{i}", "A") for i in reversed(range(10))))
    assert ready_order(wide) == [["A"], [f"w{i}" for i in range(10)]]


def test_tasks_of_keeps_each_entry_in_dependency_order() -> None:
    shuffled = plan(task("D", "B", "C"), task("B", "A"), task("C", "A"), task("A"))
    tasks = tasks_of("idea1", 2, shuffled)
    assert [t.key for t in tasks] == ["A", "B", "C", "D"]
    d = tasks[-1]
    assert (d.idea_id, d.title, d.depends_on, d.plan_version) == ("idea1", "do D", ("B", "C"), 2)
    assert d.spec == task("D", "B", "C")


def test_a_cycle_is_named_by_its_path() -> None:
    cyclic = plan(task("A", "C"), task("B", "A"), task("C", "B"), task("D", "C"))
    assert check_plan(cyclic, max_tasks=10) == ["tasks A → B → C → A form a cycle"]
    with pytest.raises(ValueError, match="cycle"):
        ready_order(cyclic)


def test_each_knot_names_one_cycle_and_the_tasks_caught_in_it() -> None:
    knots = plan(
        task("X", "Y"),
        task("Y", "X", "Z"),
        task("Z", "Y"),
        task("P", "Q"),
        task("Q", "P"),
    )
    assert check_plan(knots, max_tasks=10) == [
        "tasks P → Q → P form a cycle",
        "tasks X → Y → X form a cycle (with Z caught in it)",
    ]


def test_a_task_depending_on_itself() -> None:
    assert check_plan(plan(task("A", "A")), max_tasks=10) == ["task A depends on itself"]


def test_a_missing_dependency() -> None:
    problems = check_plan(plan(task("A"), task("B", "A", "X")), max_tasks=10)
    assert problems == ["task B depends on X, which the plan does not have"]
    with pytest.raises(ValueError, match="X"):
        ready_order(plan(task("A"), task("B", "A", "X")))


@pytest.mark.parametrize("criteria", [[], ["", "   "]])
def test_a_task_without_acceptance_criteria(criteria: list[str]) -> None:
    problems = check_plan(plan(task("A"), task("B", "A", criteria=criteria)), max_tasks=10)
    assert problems == ["task B has no acceptance criteria"]


def test_duplicate_ids_and_unknown_milestone_tasks() -> None:
    milestone = {"id": "m1", "title": "first", "tasks": ["A", "Z"]}
    problems = check_plan(plan(task("A"), task("A"), milestones=[milestone]), max_tasks=10)
    assert problems == [
        "task id A is used by 2 tasks",
        "milestone m1 names task Z, which the plan does not have",
    ]


def test_an_empty_plan() -> None:
    assert check_plan(plan(), max_tasks=10) == ["the plan has no tasks"]


def test_more_tasks_than_allowed() -> None:
    chain = plan(task("t0"), *(task(f"t{i}", f"t{i - 1}") for i in range(1, 11)))
    assert check_plan(chain, max_tasks=11) == []
    assert check_plan(chain, max_tasks=10) == ["the plan has 11 tasks; at most 10 are allowed"]


def test_a_long_chain_is_checked_without_recursion() -> None:
    n = 1500  # deeper than Python's recursion limit (its speed: bench/ideas.py)
    chain = plan(task("t0", f"t{n - 1}"), *(task(f"t{i}", f"t{i - 1}") for i in range(1, n)))
    problems = check_plan(chain, max_tasks=n)
    assert len(problems) == 1
    assert problems[0].startswith("tasks t0 → t1 → t2 → ")
    assert problems[0].endswith(f"t{n - 1} → t0 form a cycle")
    chain["tasks"][0]["depends_on"] = []
    assert check_plan(chain, max_tasks=n) == []
    assert len(ready_order(chain)) == n


def test_a_missing_field_and_a_wrong_type_name_their_path() -> None:
    broken = diamond()
    del broken["tasks"][1]["acceptance_criteria"]
    broken["tasks"][2]["heavy"] = "yes"
    broken["summary"] = 5
    assert check_plan(broken, max_tasks=10) == [
        "$.summary: 5 is not of type 'string'",
        "$.tasks[1]: 'acceptance_criteria' is a required property",
        "$.tasks[2].heavy: 'yes' is not of type 'boolean'",
    ]


def test_an_unknown_field_a_bad_id_and_schema_errors_before_graph_errors() -> None:
    broken = plan(task("A", "missing"), task("no spaces"))
    broken["tasks"][0]["notes"] = "extra"
    assert check_plan(broken, max_tasks=10) == [
        "$.tasks[0]: Additional properties are not allowed ('notes' was unexpected)",
        "$.tasks[1].id: 'no spaces' does not match '^[A-Za-z0-9_-]{1,40}$'",
        "task A depends on missing, which the plan does not have",
    ]


def test_paths_sort_by_index_as_numbers() -> None:
    many = plan(*(task(f"t{i}") for i in range(12)))
    for entry in many["tasks"]:
        entry["heavy"] = None
    paths = [p.split(":")[0] for p in check_plan(many, max_tasks=20)]
    assert paths == [f"$.tasks[{i}].heavy" for i in range(12)]


@pytest.mark.parametrize("shapeless", [None, [], "plan", {"tasks": "all of them"}])
def test_a_plan_of_the_wrong_shape_gives_only_schema_errors(shapeless: Any) -> None:
    problems = check_plan(shapeless, max_tasks=10)
    assert problems
    assert all(p.startswith("$") for p in problems)


def test_a_huge_value_is_not_quoted_whole() -> None:
    broken = diamond()
    broken["risks"] = {"text": "x" * 10_000}
    (problem,) = check_plan(broken, max_tasks=10)
    assert problem.startswith("$.risks: ")
    assert len(problem) < 250


def test_the_replan_prompt_lists_each_error_on_one_line() -> None:
    text = replan_prompt_errors(["task B depends on X", "line\nbreak"])
    assert text.startswith("Your plan was refused:")
    assert text.splitlines()[-2:] == ["- task B depends on X", "- line break"]


def test_the_replan_prompt_stays_short() -> None:
    text = replan_prompt_errors([f"problem {i} " + "y" * 1000 for i in range(50)])
    bullets = [line for line in text.splitlines() if line.startswith("- ")]
    assert len(bullets) == 21
    assert bullets[-1] == "- … and 30 more"
    assert len(text) < 8000


def test_a_replan_that_keeps_finished_tasks_passes() -> None:
    new = diamond()
    new["tasks"].append(task("E", "D"))
    assert keep_finished(new, {"A", "B"}, previous=diamond()) == []


def test_a_replan_must_not_drop_a_finished_task() -> None:
    new = plan(task("A"), task("C", "A"), task("D", "C"))
    assert keep_finished(new, {"A", "B"}, previous=diamond()) == [
        "task B has finished: the new plan must keep it, same id"
    ]


def test_a_replan_must_not_change_a_finished_tasks_dependencies() -> None:
    new = copy.deepcopy(diamond())
    new["tasks"][1]["depends_on"] = []
    assert keep_finished(new, {"A", "B"}, previous=diamond()) == [
        "task B has finished: keep its dependencies as they were (A), not (none)"
    ]


def test_a_finished_task_cannot_come_to_depend_on_unfinished_work() -> None:
    new = plan(task("A"), task("B", "A", "N"), task("N"))
    assert keep_finished(new, {"A", "B"}) == [
        "task B has finished, so it cannot depend on N, which has not"
    ]
