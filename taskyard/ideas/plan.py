"""The plan a planning agent writes for an idea (`plan.json`), and what taskyard checks before
it runs one: the shape (`PLAN_SCHEMA`), then what a schema cannot say — every dependency
exists, no task waits on itself, the tasks form no cycle, every task says how it is accepted,
the plan is not too big, a milestone names real tasks. `check_plan` gives each problem in
plain words, so the planner can be sent back to fix them (`replan_prompt_errors`); a re-plan
must keep the tasks that already finished (`keep_finished`).

`A → B` means B depends on A: A comes first. No I/O here.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import jsonschema

from taskyard.idea import IdeaTask

ID_PATTERN = r"^[A-Za-z0-9_-]{1,40}$"


def _strings(description: str) -> dict[str, Any]:
    return {"type": "array", "items": {"type": "string"}, "description": description}


def _strict(properties: dict[str, Any], description: str) -> dict[str, Any]:
    """An object whose every property is required and nothing else is allowed: codex's
    `--output-schema` (the model's strict structured output) takes no other kind."""
    return {
        "type": "object",
        "description": description,
        "additionalProperties": False,
        "required": list(properties),
        "properties": properties,
    }


_ID = {"type": "string", "pattern": ID_PATTERN, "description": "a short slug: letters, 0-9, _ -"}
_TASK = _strict(
    {
        "id": _ID,
        "title": {"type": "string", "description": "what the task does, in one line"},
        "stage": {"type": "string", "description": "e.g. design, implement, test, docs"},
        "depends_on": _strings("ids of the tasks that must succeed before this one starts"),
        "acceptance_criteria": _strings("how a reviewer knows the task is done: at least one"),
        "risk_labels": _strings("e.g. migration, security, api-change; empty if none"),
        "estimate": {"type": "string", "description": "e.g. S, M, L or 2h; empty if unknown"},
        "files": _strings("the files or areas the task touches; empty if unknown"),
        "heavy": {"type": "boolean", "description": "whether it needs a big build or test run"},
    },
    "one task: a change an agent makes on its own branch",
)
_MILESTONE = _strict(
    {
        "id": _ID,
        "title": {"type": "string"},
        "tasks": {"type": "array", "items": _ID, "description": "ids of the tasks it groups"},
    },
    "a group of tasks delivered together",
)
_RISK = _strict(
    {
        "risk": {"type": "string"},
        "impact": {"type": "string"},
        "mitigation": {"type": "string"},
    },
    "one entry of the risk register",
)
PLAN_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    **_strict(
        {
            "tasks": {"type": "array", "items": _TASK},
            "milestones": {"type": "array", "items": _MILESTONE},
            "risks": {"type": "array", "items": _RISK},
            "summary": {"type": "string", "description": "the plan in two or three sentences"},
        },
        "an idea's plan: tasks as a dependency graph, milestones and a risk register",
    ),
}

_MESSAGE_CHARS = 200  # a schema message quotes the value: a whole task list, at worst
_PROMPT_ERRORS = 20
_PROMPT_LINE_CHARS = 300


def check_plan(plan: Any, max_tasks: int) -> list[str]:
    """Every problem of `plan`, in plain words and always in the same order: the schema's
    first (each with its JSON path), then the graph's. The graph is checked as far as the
    plan's shape allows, so one refusal tells the planner as much as it can."""
    problems = _schema_problems(plan)
    tasks = _task_entries(plan)
    if tasks is None:
        return problems
    deps = _dependencies(tasks)
    problems += _duplicate_ids(tasks)
    problems += _missing_dependencies(deps)
    problems += [f"task {key} depends on itself" for key, on in deps.items() if key in on]
    problems += [_cycle_line(cycle, tangle) for cycle, tangle in _cycles(deps)]
    problems += _without_criteria(tasks)
    if not tasks:
        problems.append("the plan has no tasks")
    if len(tasks) > max_tasks:
        problems.append(f"the plan has {len(tasks)} tasks; at most {max_tasks} are allowed")
    problems += _unknown_milestone_tasks(plan, deps)
    return problems


def _schema_problems(plan: Any) -> list[str]:
    validator = jsonschema.Draft202012Validator(PLAN_SCHEMA)
    errors = sorted(validator.iter_errors(plan), key=_error_order)
    return [f"{err.json_path}: {_clip(err.message, _MESSAGE_CHARS)}" for err in errors]


def _error_order(err: jsonschema.ValidationError) -> tuple[Any, ...]:
    # ints before strings at each level, so tasks[2] comes before tasks[10]
    path = tuple((0, p, "") if isinstance(p, int) else (1, 0, str(p)) for p in err.absolute_path)
    return path, err.message


def _clip(text: str, limit: int) -> str:
    """One line (an id or a message can carry newlines), at most `limit` characters."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _task_entries(plan: Any) -> list[Mapping[str, Any]] | None:
    """The plan's tasks that are objects; None when the plan has no task list at all."""
    tasks = plan.get("tasks") if isinstance(plan, Mapping) else None
    if not isinstance(tasks, list):
        return None
    return [task for task in tasks if isinstance(task, Mapping)]


def _dependencies(tasks: Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
    """Task id → the ids it depends on, in plan order (the first task of a duplicated id)."""
    deps: dict[str, list[str]] = {}
    for task in tasks:
        key, on = task.get("id"), task.get("depends_on")
        if isinstance(key, str) and key not in deps:
            items = on if isinstance(on, list) else []
            deps[key] = list(dict.fromkeys(dep for dep in items if isinstance(dep, str)))
    return deps


def _duplicate_ids(tasks: Sequence[Mapping[str, Any]]) -> list[str]:
    counts: dict[str, int] = {}
    for task in tasks:
        if isinstance(key := task.get("id"), str):
            counts[key] = counts.get(key, 0) + 1
    return [f"task id {key} is used by {n} tasks" for key, n in counts.items() if n > 1]


def _missing_dependencies(deps: Mapping[str, Sequence[str]]) -> list[str]:
    return [
        f"task {key} depends on {dep}, which the plan does not have"
        for key, on in deps.items()
        for dep in on
        if dep not in deps
    ]


def _without_criteria(tasks: Sequence[Mapping[str, Any]]) -> list[str]:
    problems = []
    for task in tasks:
        criteria = task.get("acceptance_criteria")
        if not isinstance(criteria, list):
            continue  # the schema has said so
        if not any(isinstance(c, str) and c.strip() for c in criteria):
            problems.append(f"task {task.get('id')} has no acceptance criteria")
    return problems


def _unknown_milestone_tasks(plan: Mapping[str, Any], deps: Mapping[str, Any]) -> list[str]:
    milestones = plan.get("milestones")
    problems = []
    for milestone in milestones if isinstance(milestones, list) else []:
        named = milestone.get("tasks") if isinstance(milestone, Mapping) else None
        for key in named if isinstance(named, list) else []:
            if isinstance(key, str) and key not in deps:
                problems.append(
                    f"milestone {milestone.get('id')} names task {key}, "
                    "which the plan does not have"
                )
    return problems


def _cycle_line(cycle: Sequence[str], tangle: Sequence[str]) -> str:
    line = f"tasks {' → '.join(cycle)} form a cycle"
    return line + (f" (with {', '.join(tangle)} caught in it)" if tangle else "")


def _dependents(deps: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """Task id → the tasks that depend on it, sorted: the graph's edges `A → B`, without a
    task's dependency on itself or on a task the plan does not have."""
    after: dict[str, list[str]] = {key: [] for key in deps}
    for key, on in deps.items():
        for dep in on:
            if dep in after and dep != key:
                after[dep].append(key)
    return {key: sorted(later) for key, later in after.items()}


def _cycles(deps: Mapping[str, Sequence[str]]) -> Iterator[tuple[list[str], list[str]]]:
    """One cycle for each knot of tasks (a strongly connected component bigger than one),
    the shortest through the knot's smallest id, and the knot's other tasks."""
    after = _dependents(deps)
    for knot in sorted(_knots(after), key=min):
        cycle = _shortest_cycle(min(knot), after, knot)
        yield cycle, sorted(knot - set(cycle))


def _knots(after: Mapping[str, Sequence[str]]) -> list[set[str]]:
    """The strongly connected components with more than one task (Tarjan's, without
    recursion: a plan may chain hundreds of tasks)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    knots: list[set[str]] = []
    for root in after:
        if root in index:
            continue
        work = [(root, iter(after[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    knot = _pop_component(stack, on_stack, node)
                    if len(knot) > 1:
                        knots.append(knot)
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(after[child])))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return knots


def _pop_component(stack: list[str], on_stack: set[str], root: str) -> set[str]:
    component = set()
    while True:
        node = stack.pop()
        on_stack.discard(node)
        component.add(node)
        if node == root:
            return component


def _shortest_cycle(start: str, after: Mapping[str, Sequence[str]], knot: set[str]) -> list[str]:
    """start → … → start, by breadth-first search inside the knot (neighbours sorted, so the
    same plan always names the same cycle)."""
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in after[node]:
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [*reversed(path), start]
                if child in knot and child not in came_from:
                    came_from[child] = node
                    following.append(child)
        frontier = following
    raise ValueError(f"{start} is in no cycle")  # a knot always has one through each task


def ready_order(plan: Mapping[str, Any]) -> list[list[str]]:
    """The plan's tasks in waves: the first wave depends on nothing, each later one only on
    tasks of the waves before it; each wave sorted. For a plan `check_plan` passed:
    ValueError on a dependency the plan does not have or a cycle."""
    deps = _dependencies(plan["tasks"])
    waiting = {key: set(on) for key, on in deps.items()}
    for key, on in waiting.items():
        if unknown := sorted(on - waiting.keys()):
            raise ValueError(f"task {key} depends on {', '.join(unknown)}, not in the plan")
    after = _dependents(deps)
    waves = []
    wave = sorted(key for key, on in waiting.items() if not on)
    while wave:
        waves.append(wave)
        ready = set()
        for key in wave:
            for later in after[key]:
                waiting[later].discard(key)
                if not waiting[later]:
                    ready.add(later)
        wave = sorted(ready)
    if sum(map(len, waves)) < len(deps):
        raise ValueError("the plan's tasks form a cycle")
    return waves


def tasks_of(idea_id: str, version: int, plan: Mapping[str, Any]) -> list[IdeaTask]:
    """What an idea keeps of a checked plan: one IdeaTask per task, in dependency order
    (wave by wave), each with the plan's entry as its spec."""
    entries = {task["id"]: task for task in reversed(plan["tasks"])}  # the first of an id
    return [
        IdeaTask(
            idea_id=idea_id,
            key=key,
            title=str(entries[key]["title"]),
            depends_on=tuple(dict.fromkeys(entries[key]["depends_on"])),
            plan_version=version,
            spec=dict(entries[key]),
        )
        for wave in ready_order(plan)
        for key in wave
    ]


def replan_prompt_errors(errors: Sequence[str]) -> str:
    """The markdown the planner is given back with a refused plan: each problem on one
    line, and only the first few, so a plan broken everywhere does not flood the prompt."""
    lines = [f"- {_clip(error, _PROMPT_LINE_CHARS)}" for error in errors[:_PROMPT_ERRORS]]
    if len(errors) > _PROMPT_ERRORS:
        lines.append(f"- … and {len(errors) - _PROMPT_ERRORS} more")
    head = "Your plan was refused: fix every problem below and write the whole plan again."
    return "\n".join([head, "", *lines]) + "\n"


def keep_finished(
    new_plan: Mapping[str, Any],
    finished: set[str],
    previous: Mapping[str, Any] | None = None,
) -> list[str]:
    """What a re-plan does wrong to the tasks that already finished: each must stay, under
    the same id, and keep its dependencies — as they were in `previous` (the plan it
    replaces) when given, and in any case only on tasks that finished too (finished work
    cannot wait on work still to come)."""
    new = _dependencies(_task_entries(new_plan) or [])
    old = _dependencies(_task_entries(previous) or []) if previous is not None else {}
    problems = []
    for key in sorted(finished):
        if key not in new:
            problems.append(f"task {key} has finished: the new plan must keep it, same id")
        elif key in old and set(new[key]) != set(old[key]):
            was, now = _names(old[key]), _names(new[key])
            problems.append(
                f"task {key} has finished: keep its dependencies as they were ({was}), not ({now})"
            )
        elif pending := [dep for dep in new[key] if dep not in finished]:
            problems.append(
                f"task {key} has finished, so it cannot depend on {_names(pending)}, "
                f"which {'has' if len(pending) == 1 else 'have'} not"
            )
    return problems


def _names(keys: Sequence[str]) -> str:
    return ", ".join(sorted(keys)) or "none"
