"""deploy/ and the container files: the alert rules and the dashboards are well formed and query
only metrics (and label values) taskyard exposes; compose.yaml, the Dockerfile, prometheus.yml
and Grafana's provisioning fit together. `.ci/check-deploy` checks the rules and queries further
with promtool; the image is built, and compose.yaml resolved, where a Docker daemon runs."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from taskyard import exceptions
from taskyard.models import TaskStatus
from taskyard.observe.metrics import (
    AGENT_FAILURE_REASONS,
    DEAD_LETTER_STATES,
    EVENT_STATES,
    PLATFORMS,
    TASK_STATES,
    Metrics,
)
from taskyard.records import ActionStatus

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
GRAFANA_DIR = ROOT / "deploy" / "grafana"
RULES = PROMETHEUS_DIR / "taskyard-alerts.yml"
RULE_TESTS = PROMETHEUS_DIR / "taskyard-alerts.test.yml"
PIPELINE_RULES = PROMETHEUS_DIR / "taskyard-pipeline-alerts.yml"
RULE_FILES = sorted(PROMETHEUS_DIR.glob("*-alerts.yml"))
DASHBOARD = GRAFANA_DIR / "taskyard-approvals.json"
PIPELINE_DASHBOARD = GRAFANA_DIR / "taskyard-pipeline.json"
DASHBOARDS = sorted(GRAFANA_DIR.glob("*.json"))
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
COMPOSE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

# Series Prometheus adds to every scrape itself.
PROMETHEUS_SERIES = {"up"}

# The series names each metric type exposes, after its family name.
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
    "info": ("_info",),
}

RISKS = {"low", "medium", "high", "critical"}
INTAKE_OUTCOMES = {"accepted", "duplicate"}

FUNCTIONS = {
    *("abs", "absent", "absent_over_time", "ceil", "changes", "clamp", "clamp_max"),
    *("clamp_min", "day_of_month", "day_of_week", "day_of_year", "days_in_month", "delta"),
    *("deriv", "exp", "floor", "histogram_count", "histogram_fraction", "histogram_quantile"),
    *("histogram_sum", "holt_winters", "hour", "idelta", "increase", "irate", "label_join"),
    *("label_replace", "ln", "log2", "log10", "minute", "month", "predict_linear", "rate"),
    *("resets", "round", "scalar", "sgn", "sort", "sort_desc", "sqrt", "time", "timestamp"),
    *("vector", "year", "avg_over_time", "min_over_time", "max_over_time", "sum_over_time"),
    *("count_over_time", "quantile_over_time", "stddev_over_time", "stdvar_over_time"),
    *("last_over_time", "present_over_time", "acos", "asin", "atan", "cos", "sin", "tan"),
    *("deg", "rad", "pi"),
}
AGGREGATIONS = {
    *("sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values"),
    *("bottomk", "topk", "quantile"),
}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool"}
KEYWORDS |= {"and", "or", "unless", "atan2", "inf", "nan"}
PAIRS = {")": "(", "]": "[", "}": "{"}


# --- what taskyard exposes ----------------------------------------------------------------


def _series(family: str, kind: str) -> set[str]:
    return {family + suffix for suffix in SUFFIXES.get(kind, ("",))}


# Metric names the dashboards and alerts may use before taskyard/observe/metrics.py defines them:
# added by the metrics work (issue 6), to be removed from here as they land there (the test
# below says so when one lands). Empty: every name they use is defined now.
ADDED_BY_METRICS_WORK: frozenset[str] = frozenset()


def _exposed() -> tuple[set[str], set[str]]:
    """(series names, family names) from a Metrics registry with every live gauge watched."""
    metrics = Metrics()
    metrics.watch_tasks(dict)
    metrics.watch_agents(["codex"], lambda _: 0, lambda _: 0)
    metrics.watch_queue(dict)
    metrics.watch_approvals(dict)
    metrics.watch_dead_letters(dict)
    metrics.watch_workspace_disk(lambda: 0, 60.0)
    metrics.watch_budget(lambda: (0.0, 100.0))
    names: set[str] = set()
    families: set[str] = set()
    for family in metrics.registry.collect():
        families.add(family.name)
        names |= _series(family.name, family.type)
        names |= {sample.name for sample in family.samples}
    return names | PROMETHEUS_SERIES, families


EXPOSED, FAMILIES = _exposed()


@pytest.mark.parametrize("name", sorted(ADDED_BY_METRICS_WORK))
def test_a_name_awaited_from_the_metrics_work_is_not_defined_yet(name: str) -> None:
    assert name not in EXPOSED, f"{name} is defined now: drop it from ADDED_BY_METRICS_WORK"


def _intake_outcomes() -> set[str]:
    """Every `outcome` label taskyard_webhooks_received_total can carry: accepted, duplicate
    and each refusal reason (an IntakeError subclass's, or one passed as reason=…)."""
    import taskyard.intake.app  # noqa: F401  (defines the store-unavailable refusal)

    found = set(INTAKE_OUTCOMES)
    pending: list[type[exceptions.IntakeError]] = [exceptions.IntakeError]
    while pending:
        cls = pending.pop()
        found.add(cls.reason)
        pending += cls.__subclasses__()
    for path in (ROOT / "taskyard" / "intake").glob("*.py"):
        found |= set(re.findall(r'reason="(\w+)"', path.read_text()))
    return found


# Label values each metric can carry, where they form a closed set.
LABEL_VALUES: dict[tuple[str, str], set[str]] = {
    ("taskyard_approval_requests_resolved_total", "status"): {"approved", "denied", "expired"},
    ("taskyard_approval_decisions_refused_total", "reason"): {
        *("not_authorised", "already_decided", "expired", "forged"),
    },
    ("taskyard_tasks_total", "status"): {str(s) for s in TaskStatus},
    ("taskyard_tasks", "status"): set(TASK_STATES),
    ("taskyard_queue_depth", "state"): set(EVENT_STATES),
    ("taskyard_jobs_total", "result"): {"processed", "dead"},  # taskyard/queue/jobs.py
    ("taskyard_actions_total", "status"): {str(s) for s in ActionStatus},
    ("taskyard_webhooks_received_total", "outcome"): _intake_outcomes(),
    ("taskyard_agent_failures_total", "reason"): set(AGENT_FAILURE_REASONS),
    ("taskyard_dead_letters", "status"): set(DEAD_LETTER_STATES),
    ("taskyard_platform_requests_total", "outcome"): {"ok", "error", "rate_limited"},
    ("taskyard_platform_requests_total", "kind"): {"read", "write"},
    ("taskyard_task_tokens_total", "kind"): {"input", "output"},
}


def _allowed_values(metric: str, label: str) -> set[str] | None:
    if metric.startswith("taskyard_approval_") and label == "risk":
        return RISKS
    if metric.startswith("taskyard_platform_") and label == "platform":
        return set(PLATFORMS)
    return LABEL_VALUES.get((metric, label))


# --- a cheap PromQL reader ----------------------------------------------------------------


def _plain(expr: str) -> str:
    """The expression with Grafana variables and string contents blanked."""
    expr = re.sub(r"\$\{\w+(?::\w+)?\}|\$\w+", "", expr)
    return re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)


def promql_problems(expr: str) -> list[str]:
    """What is visibly wrong with a PromQL expression: unbalanced brackets, unknown
    functions, no metric at all. (promtool parses it for real in .ci/check-deploy.)"""
    problems: list[str] = []
    text = _plain(expr)
    stack: list[str] = []
    for char in text:
        if char in "([{":
            stack.append(char)
        elif char in PAIRS and (not stack or stack.pop() != PAIRS[char]):
            problems.append(f"unmatched {char!r}")
            break
    if stack and not problems:
        problems.append(f"unclosed {stack[-1]!r}")
    for name, is_call in _identifiers(text):
        if is_call and name not in FUNCTIONS | AGGREGATIONS and name.lower() not in KEYWORDS:
            problems.append(f"unknown function {name}")
    if not metric_names(expr):
        problems.append("no metric in the expression")
    return problems


def _identifiers(text: str) -> Iterator[tuple[str, bool]]:
    """(identifier, followed by a parenthesis) outside selectors, ranges and label lists."""
    text = re.sub(r"\{[^{}]*\}", " ", text)
    text = re.sub(r"\[[^\[\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", " ", text)
    for match in re.finditer(r"(?<![\w.:])([A-Za-z_:][\w:]*)(\s*\()?", text):
        yield match.group(1), match.group(2) is not None


def metric_names(expr: str) -> set[str]:
    return {
        name
        for name, is_call in _identifiers(_plain(expr))
        if not is_call and name.lower() not in KEYWORDS and name not in FUNCTIONS | AGGREGATIONS
    }


def label_values_used(expr: str) -> Iterator[tuple[str, str, str]]:
    """(metric, label, value) for each literal value a selector matches with = or =~."""
    text = re.sub(r"\$\{\w+(?::\w+)?\}|\$\w+", "", expr)
    for metric, matchers in re.findall(r"([A-Za-z_:][\w:]*)\s*\{([^}]*)\}", text):
        for label, op, value in re.findall(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"', matchers):
            if op == "=" or (op == "=~" and re.fullmatch(r"[\w|]+", value)):
                for one in value.split("|") if op == "=~" else [value]:
                    yield metric, label, one


def test_the_promql_reader_finds_what_it_is_meant_to() -> None:
    expr = (
        'sum by (le) (rate(a_bucket{le="1", x=~"$risk"}[$window])) / on() group_left(x) '
        "b_total offset 1d > 0.95 and bool c"
    )
    assert metric_names(expr) == {"a_bucket", "b_total", "c"}
    assert promql_problems(expr) == []
    assert promql_problems("sum(rate(x_total[5m])") == ["unclosed '('"]
    assert promql_problems("sum(rate(x_total[5m)))") == ["unmatched ')'"]
    assert promql_problems("sume(x_total)") == ["unknown function sume"]
    assert promql_problems("vector(1)") == ["no metric in the expression"]
    assert list(label_values_used('m{a="x", b=~"y|z", c=~".*", d!="w"}')) == [
        ("m", "a", "x"),
        ("m", "b", "y"),
        ("m", "b", "z"),
    ]


# Gauges read from the database: every taskyard process sharing it shows the same value, so
# a query combines them with max (deploy/README.md), never sum.
DATABASE_GAUGES = (
    *("taskyard_queue_depth", "taskyard_tasks", "taskyard_dead_letters"),
    *("taskyard_budget_spent_usd", "taskyard_budget_limit_usd", "taskyard_budget_used_ratio"),
    *("taskyard_approval_backlog", "taskyard_approval_oldest_pending_seconds"),
)


def database_gauges_not_under_max(expr: str) -> list[str]:
    text = " ".join(_plain(expr).split())
    found = []
    for gauge in DATABASE_GAUGES:
        for match in re.finditer(rf"(?<![\w:]){gauge}(?![\w:])", text):
            if not re.search(r"\bmax(?: by \([\w, ]*\))? ?\( ?$", text[: match.start()]):
                found.append(gauge)
    return found


def test_the_max_rule_reader_tells_max_from_sum() -> None:
    assert database_gauges_not_under_max('max by (state) (taskyard_queue_depth{a="b"})') == []
    assert database_gauges_not_under_max("deriv(max(taskyard_tasks)[30m:1m])") == []
    assert database_gauges_not_under_max("sum(taskyard_queue_depth)") == ["taskyard_queue_depth"]
    assert database_gauges_not_under_max("taskyard_tasks > 3") == ["taskyard_tasks"]
    assert database_gauges_not_under_max("sum(taskyard_tasks_total)") == []


def _check_query(expr: str, where: str) -> None:
    assert promql_problems(expr) == [], f"{where}: {expr}"
    unknown = metric_names(expr) - EXPOSED - ADDED_BY_METRICS_WORK
    assert not unknown, f"{where} uses metrics taskyard does not expose: {sorted(unknown)}"
    for metric, label, value in label_values_used(expr):
        allowed = _allowed_values(metric, label)
        assert allowed is None or value in allowed, (
            f"{where}: {metric}{{{label}={value!r}}} never exists (values: {sorted(allowed)})"
        )
    summed = database_gauges_not_under_max(expr)
    assert not summed, f"{where}: take the max of {summed} (same value on every process)"


# --- alert rules --------------------------------------------------------------------------


def _rules(path: Path) -> list[dict[str, Any]]:
    data = yaml.safe_load(path.read_text())
    return [rule for group in data["groups"] for rule in group["rules"] if "alert" in rule]


ALERTS = {rule["alert"]: rule for path in RULE_FILES for rule in _rules(path)}
PIPELINE_ALERTS = {rule["alert"]: rule for rule in _rules(PIPELINE_RULES)}


def test_the_rules_files_are_the_approvals_and_the_pipeline_ones() -> None:
    assert {RULES, PIPELINE_RULES} <= set(RULE_FILES)


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_a_rules_file_is_prometheus_groups_with_unique_alert_names(path: Path) -> None:
    groups = yaml.safe_load(path.read_text())["groups"]
    names = [r["alert"] for g in groups for r in g["rules"]]
    assert len(names) == len(set(names)) == len(_rules(path))
    assert all(re.fullmatch(r"Taskyard[A-Z]\w+", name) for name in names)


def test_alert_and_group_names_are_unique_across_the_rules_files() -> None:
    alerts = [r["alert"] for path in RULE_FILES for r in _rules(path)]
    assert len(alerts) == len(set(alerts)) == len(ALERTS)
    groups = [g["name"] for path in RULE_FILES for g in yaml.safe_load(path.read_text())["groups"]]
    assert len(groups) == len(set(groups))
    assert {"taskyard-approvals", "taskyard-intake", "taskyard-budget"} <= set(groups)


@pytest.mark.parametrize("name", sorted(ALERTS))
def test_every_alert_says_how_bad_what_and_what_to_do(name: str) -> None:
    rule = ALERTS[name]
    assert rule["expr"].strip()
    assert re.fullmatch(r"\d+[smhd]", rule["for"])
    assert rule["labels"]["severity"] in {"critical", "warning", "info"}
    for key in ("summary", "description", "runbook"):
        assert rule["annotations"][key].strip(), f"{name} has no {key}"


@pytest.mark.parametrize("name", sorted(ALERTS))
def test_every_alert_queries_what_taskyard_exposes(name: str) -> None:
    _check_query(ALERTS[name]["expr"], f"alert {name}")


@pytest.mark.parametrize(
    ("name", "severity", "metrics"),
    [
        ("TaskyardApprovalCriticalPending", "critical", {"oldest_pending_seconds"}),
        ("TaskyardApprovalBacklog", "warning", {"backlog"}),
        ("TaskyardApprovalHighRiskBacklog", "warning", {"backlog"}),
        ("TaskyardApprovalTimeoutRateHigh", "warning", {"timeouts", "requests_created"}),
        ("TaskyardApprovalForgedDecision", "critical", {"decisions_refused"}),
    ],
)
def test_the_approval_alerts_watch_the_agreed_metrics(
    name: str, severity: str, metrics: set[str]
) -> None:
    rule = ALERTS[name]
    assert rule["labels"]["severity"] == severity
    used = {m.removeprefix("taskyard_approval_") for m in metric_names(rule["expr"])}
    assert {re.sub(r"_total$", "", m) for m in used} == metrics


def test_the_approval_alert_thresholds_are_the_agreed_ones() -> None:
    def spaced(name: str) -> str:
        return " ".join(ALERTS[name]["expr"].split())

    assert 'oldest_pending_seconds{risk="critical"}) > 1800' in spaced(
        "TaskyardApprovalCriticalPending"
    )
    assert spaced("TaskyardApprovalBacklog").endswith("> 10")
    assert ALERTS["TaskyardApprovalBacklog"]["for"] == "15m"
    assert spaced("TaskyardApprovalTimeoutRateHigh").endswith("> 0.1")
    assert "[1h]" in spaced("TaskyardApprovalTimeoutRateHigh")
    assert 'reason="forged"}[10m])) > 0' in spaced("TaskyardApprovalForgedDecision")


def test_taskyard_as_a_whole_is_watched() -> None:
    assert {
        "TaskyardDown",
        "TaskyardDeadLettersGrowing",
        "TaskyardTasksFailing",
        "TaskyardIntakeStoreUnavailable",
        "TaskyardNoWebhooks",
    } <= set(ALERTS)


def _tested(path: Path) -> dict[str, set[bool]]:
    """alert name -> {True if a case expects it firing, False if one expects silence}."""
    data = yaml.safe_load(path.read_text())
    cases: dict[str, set[bool]] = {}
    for test in data["tests"]:
        for case in test["alert_rule_test"]:
            assert case["alertname"] in ALERTS, case["alertname"]
            cases.setdefault(case["alertname"], set()).add(bool(case["exp_alerts"]))
    return cases


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_every_rules_file_has_promtool_tests_of_its_own(path: Path) -> None:
    tests = path.with_name(path.name.removesuffix(".yml") + ".test.yml")
    assert tests.is_file(), f"{path.name} has no {tests.name}"
    assert yaml.safe_load(tests.read_text())["rule_files"] == [path.name]


def test_the_promtool_tests_cover_firing_and_quiet_cases() -> None:
    cases = _tested(RULE_TESTS)
    assert cases["TaskyardApprovalCriticalPending"] == {True, False}
    assert cases["TaskyardApprovalTimeoutRateHigh"] == {True, False}


def test_every_pipeline_alert_is_tested_firing_and_quiet() -> None:
    cases = _tested(PIPELINE_RULES.with_name("taskyard-pipeline-alerts.test.yml"))
    assert set(cases) == set(PIPELINE_ALERTS)
    assert all(seen == {True, False} for seen in cases.values()), cases


def _spaced(name: str) -> str:
    return " ".join(ALERTS[name]["expr"].split())


@pytest.mark.parametrize(
    ("name", "severity", "metrics"),
    [
        ("TaskyardAgentFailingRepeatedly", "warning", {"taskyard_agent_failures_total"}),
        ("TaskyardRouteConsecutiveFailures", "critical", {"taskyard_tasks_total"}),
        ("TaskyardEventQueueGrowing", "warning", {"taskyard_queue_depth"}),
        ("TaskyardTaskQueueGrowing", "warning", {"taskyard_tasks"}),
        ("TaskyardDeadLettersOpen", "warning", {"taskyard_dead_letters"}),
        ("TaskyardBudgetAlmostSpent", "warning", {"taskyard_budget_used_ratio"}),
        ("TaskyardBudgetExhausted", "critical", {"taskyard_budget_used_ratio"}),
        ("TaskyardPlatformRateLimited", "info", {"taskyard_platform_requests_total"}),
    ],
)
def test_the_pipeline_alerts_watch_the_agreed_metrics(
    name: str, severity: str, metrics: set[str]
) -> None:
    assert PIPELINE_ALERTS[name]["labels"]["severity"] == severity
    assert metric_names(PIPELINE_ALERTS[name]["expr"]) == metrics


def test_the_pipeline_alert_thresholds_are_the_agreed_ones() -> None:
    # more than 5 failures (increase() reads 5 as a little over 5) and no success in the window
    consecutive = _spaced("TaskyardRouteConsecutiveFailures")
    assert re.search(r'status=~"failed\|timed_out"}\[(\d+h)\]\)\) >= 6 unless ', consecutive)
    assert re.search(r'status="succeeded"}\[\d+h\]\)\) > 0$', consecutive)
    for name in ("TaskyardEventQueueGrowing", "TaskyardTaskQueueGrowing"):
        assert _spaced(name).startswith("deriv(") and ALERTS[name]["for"] == "15m"
    assert _spaced("TaskyardDeadLettersOpen") == 'max(taskyard_dead_letters{status="open"}) > 0'
    assert _spaced("TaskyardBudgetAlmostSpent") == "max(taskyard_budget_used_ratio) >= 0.8 < 1"
    assert _spaced("TaskyardBudgetExhausted") == "max(taskyard_budget_used_ratio) >= 1"


# --- the dashboards -----------------------------------------------------------------------

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
GRAFANA_BUILTINS = {"__rate_interval", "__interval", "__range", "__all", "__data", "__value"}


def _load(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    assert isinstance(data, dict)
    return data


def _dashboard(path: Path = DASHBOARD) -> dict[str, Any]:
    return _load(path)


def _targets(dashboard: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield panel, target


def _variables(dashboard: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in dashboard["templating"]["list"]}


each_dashboard = pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)


def test_the_dashboards_are_the_approvals_and_the_pipeline_ones() -> None:
    assert {DASHBOARD, PIPELINE_DASHBOARD} <= set(DASHBOARDS)


@each_dashboard
def test_a_dashboard_has_identity_time_and_a_prometheus_variable(path: Path) -> None:
    dashboard = _load(path)
    assert dashboard["schemaVersion"] >= 36
    assert dashboard["uid"] == path.stem
    assert dashboard["title"].startswith("taskyard / ")
    assert "taskyard" in dashboard["tags"]
    assert set(dashboard["time"]) == {"from", "to"}
    variables = _variables(dashboard)
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"


def test_the_approvals_dashboard_knows_where_taskyard_is() -> None:
    variables = _variables(_dashboard())
    assert variables["taskyard_url"]["type"] in {"textbox", "constant"}
    assert variables["taskyard_url"]["query"].startswith("http")


@each_dashboard
def test_every_variable_the_dashboard_uses_is_defined(path: Path) -> None:
    dashboard = _load(path)
    used = set(re.findall(r"\$\{(\w+)|\$(\w+)", json.dumps(dashboard)))
    names = {a or b for a, b in used}
    assert names - GRAFANA_BUILTINS <= set(_variables(dashboard))


@each_dashboard
def test_panels_have_unique_ids_and_do_not_overlap(path: Path) -> None:
    panels = _load(path)["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    titles = [p["title"] for p in panels]
    assert len(titles) == len(set(titles))
    cells: dict[tuple[int, int], int] = {}
    for panel in panels:
        pos = panel["gridPos"]
        assert all(isinstance(pos[k], int) for k in ("x", "y", "w", "h"))
        assert pos["w"] > 0 and pos["h"] > 0 and pos["x"] >= 0 and pos["x"] + pos["w"] <= 24
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"panels {cells[x, y]} and {panel['id']} overlap"
                cells[x, y] = panel["id"]


@each_dashboard
def test_every_panel_queries_the_chosen_prometheus(path: Path) -> None:
    dashboard = _load(path)
    for panel in dashboard["panels"]:
        assert panel["datasource"] == DATASOURCE, panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), panel["title"]
    for panel, target in _targets(dashboard):
        assert target["datasource"] == DATASOURCE, panel["title"]
        assert target["expr"].strip(), panel["title"]


@each_dashboard
def test_every_dashboard_query_uses_what_taskyard_exposes(path: Path) -> None:
    dashboard = _load(path)
    for panel, target in _targets(dashboard):
        _check_query(target["expr"], f"panel {panel['title']!r} {target['refId']}")
    for variable in _variables(dashboard).values():
        if variable["type"] == "query":
            query = variable["query"]["query"]
            metric = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", query)
            assert metric and metric.group(1) in EXPOSED, query


def _panel(title: str, path: Path = DASHBOARD) -> dict[str, Any]:
    matches: list[dict[str, Any]] = [p for p in _load(path)["panels"] if p["title"] == title]
    assert len(matches) == 1, title
    return matches[0]


def _exprs(panel: dict[str, Any]) -> str:
    return " ".join(" ".join(t["expr"].split()) for t in panel["targets"])


def test_the_dashboard_shows_the_approval_panels() -> None:
    backlog = _panel("Pending requests by risk")
    assert backlog["type"] == "timeseries"
    assert backlog["fieldConfig"]["defaults"]["custom"]["stacking"]["mode"] == "normal"
    assert "taskyard_approval_backlog" in _exprs(backlog)

    latency = _exprs(_panel("Time to decision (p50 / p95 / p99)"))
    for q in ("0.5", "0.95", "0.99"):
        assert (
            f"histogram_quantile({q}, sum by (le) (rate(taskyard_approval_latency_seconds_bucket{{"
            in latency
        )

    assert "by (status) (rate(taskyard_approval_requests_resolved_total" in _exprs(
        _panel("Outcomes per hour")
    )
    assert "taskyard_approval_timeouts_total" in _exprs(_panel("Timeouts by risk"))
    assert "sum by (reason) (rate(taskyard_approval_decisions_refused_total" in _exprs(
        _panel("Refused decisions by reason")
    )
    oldest = _panel("Oldest pending request by risk")
    assert oldest["type"] == "stat"
    assert "taskyard_approval_oldest_pending_seconds" in _exprs(oldest)


def test_active_requests_is_a_table_linking_to_taskyards_pending_list() -> None:
    table = _panel("Active requests")
    assert table["type"] == "table"
    assert "taskyard_approval_backlog" in _exprs(table)
    assert all(t.get("format") == "table" and t.get("instant") for t in table["targets"])
    links = table["links"] + table["fieldConfig"]["defaults"]["links"]
    assert links and all(link["url"] == "${taskyard_url}/approvals" for link in links)


def _pipeline(title: str) -> tuple[dict[str, Any], str]:
    panel = _panel(title, PIPELINE_DASHBOARD)
    return panel, _exprs(panel)


def test_the_pipeline_dashboard_filters_by_route_agent_and_window() -> None:
    variables = _variables(_load(PIPELINE_DASHBOARD))
    for name in ("route", "agent"):
        assert variables[name]["query"]["query"] == f"label_values(taskyard_tasks_total, {name})"
        assert variables[name]["includeAll"] and variables[name]["multi"]
    assert variables["window"]["current"]["value"] == "1h"
    _, throughput = _pipeline("Throughput")
    assert 'route=~"$route", agent=~"$agent"' in throughput


def test_the_pipeline_dashboard_shows_throughput_success_duration_and_cost() -> None:
    panel, expr = _pipeline("Throughput")
    assert panel["type"] == "stat" and "sum(rate(taskyard_tasks_total{" in expr
    panel, expr = _pipeline("Tasks finished per hour by status")
    assert panel["fieldConfig"]["defaults"]["custom"]["stacking"]["mode"] == "normal"
    assert expr.startswith("sum by (status) (rate(taskyard_tasks_total{")
    for title in ("Success rate", "Success rate by route"):
        panel, expr = _pipeline(title)
        assert panel["fieldConfig"]["defaults"]["unit"] == "percentunit"
        succeeded, finished = expr.split(" / ")
        assert 'taskyard_tasks_total{status="succeeded"' in succeeded
        assert 'taskyard_tasks_total{status!="cancelled"' in finished
        # 0 %, not "no data", when tasks finished and none succeeded
        assert succeeded.startswith("(") and succeeded.endswith(f" or {finished} * 0)")
    _, expr = _pipeline("p95 task duration")
    assert expr.startswith(
        "histogram_quantile(0.95, sum by (le) (rate(taskyard_task_duration_seconds_bucket{"
    )
    _, expr = _pipeline("Task duration by route (p95, p50)")
    assert "histogram_quantile(0.95, sum by (route, le)" in expr
    for title in ("Cost per task", "Cost per task by route"):
        panel, expr = _pipeline(title)
        assert panel["fieldConfig"]["defaults"]["unit"] == "currencyUSD"
        cost, tasks = expr.split(" / ")
        assert "increase(taskyard_task_cost_usd_total{" in cost
        assert "increase(taskyard_tasks_total{" in tasks
        assert cost.endswith(f" or {tasks} * 0)")  # $0 when tasks cost nothing


def test_the_pipeline_dashboard_shows_queues_failures_dead_letters_limits_and_budget() -> None:
    _, expr = _pipeline("Queue depth")
    assert 'taskyard_queue_depth{state=~"received|queued"}' in expr
    assert 'taskyard_tasks{status="queued"}' in expr
    _, expr = _pipeline("Events and tasks by state")
    assert (
        "max by (state) (taskyard_queue_depth" in expr
        and "max by (status) (taskyard_tasks{" in expr
    )
    panel, expr = _pipeline("Failures by reason")
    assert expr.startswith("sum by (reason) (rate(taskyard_agent_failures_total{")
    assert panel["fieldConfig"]["defaults"]["custom"]["stacking"]["mode"] == "normal"
    assert 'max(taskyard_dead_letters{status="open"})' in _pipeline("Open dead letters")[1]
    assert "max by (status) (taskyard_dead_letters)" in _pipeline("Dead letters")[1]
    _, expr = _pipeline("Platform rate limits")
    assert "taskyard_platform_rate_limit_wait_seconds_total" in expr
    assert 'taskyard_platform_requests_total{outcome="rate_limited"}' in expr
    panel, expr = _pipeline("Budget used")
    assert panel["type"] == "gauge" and expr == "max(taskyard_budget_used_ratio)"
    steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [s["value"] for s in steps] == [None, 0.8, 1]  # the alerts' 80 % and 100 %
    _, expr = _pipeline("Budget this month")
    assert "max(taskyard_budget_spent_usd)" in expr and "max(taskyard_budget_limit_usd)" in expr


# --- the container stack: compose.yaml, prometheus.yml, Grafana's provisioning ------------

TASKYARD_SERVICES = ("migrate", "serve", "worker")
SECRET_NAME = re.compile(r"SECRET|TOKEN|PASSWORD|_KEY$|PRIVATE_KEY")


def _compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def _service(name: str) -> dict[str, Any]:
    service: dict[str, Any] = _compose()["services"][name]
    return service


def _bind_mounts(name: str) -> dict[str, str]:
    """Repo path -> container path of a service's bind mounts (./…:/…[:ro])."""
    mounts = {}
    for volume in _service(name).get("volumes", []):
        source, target, *_ = volume.split(":")
        if source.startswith("./"):
            mounts[source] = target
    return mounts


def test_compose_has_the_stack_and_builds_taskyard_from_this_repo() -> None:
    services = _compose()["services"]
    assert {"postgres", "migrate", "serve", "worker", "prometheus", "grafana"} <= set(services)
    images = {services[name]["image"] for name in TASKYARD_SERVICES}
    assert len(images) == 1
    for name in TASKYARD_SERVICES:
        assert services[name]["build"]["context"] == "."
    assert services["migrate"]["command"] == ["migrate"]
    assert services["serve"]["command"][0] == "serve"
    assert services["worker"]["command"] == ["worker"]


def test_compose_starts_in_order_postgres_migrate_then_taskyard() -> None:
    assert _service("migrate")["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert _service("migrate")["restart"] == "no"
    assert "pg_isready" in " ".join(_service("postgres")["healthcheck"]["test"])
    for name in ("serve", "worker"):
        assert _service(name)["depends_on"] == {
            "migrate": {"condition": "service_completed_successfully"}
        }


def test_workers_scale_and_share_serves_database() -> None:
    worker = _service("worker")
    assert not {"container_name", "ports", "hostname"} & set(worker), "would stop --scale"
    # its only HTTP port is /metrics and /healthz (`taskyard worker --metrics-port`)
    env = worker["environment"]
    assert (env["TASKYARD_METRICS_HOST"], env["TASKYARD_METRICS_PORT"]) == ("0.0.0.0", "9464")
    assert f"127.0.0.1:{env['TASKYARD_METRICS_PORT']}/healthz" in str(worker["healthcheck"])
    db = _service("postgres")["environment"]
    for name in TASKYARD_SERVICES:
        url = _service(name)["environment"]["TASKYARD_DATABASE_URL"]
        assert re.fullmatch(
            rf"postgresql://{db['POSTGRES_USER']}:\$\{{POSTGRES_PASSWORD:\?[^}}]+\}}"
            rf"@postgres:5432/{db['POSTGRES_DB']}",
            url,
        ), url


def test_serve_listens_for_others_and_needs_an_api_token() -> None:
    serve = _service("serve")
    command = serve["command"]
    assert command[command.index("--host") + 1] == "0.0.0.0"
    port = command[command.index("--port") + 1]
    assert [p.rsplit(":", 1)[1] for p in serve["ports"]] == [port]
    # without a token taskyard listens on loopback only: compose refuses to start instead
    assert serve["environment"]["TASKYARD_API_TOKEN"].startswith("${TASKYARD_API_TOKEN:?")


def _readme_env() -> set[str]:
    text = (ROOT / "README.md").read_text()
    table = text[text.index("| env | meaning |") :].split("\n\n", 1)[0]
    names = set(re.findall(r"`((?:TASKYARD|OPENAI|ANTHROPIC)_[A-Z_]*[A-Z])\b", table))
    # the image sets the home; a fixed worker id would clash between replicas; a Discord
    # private key only signs `taskyard send`; generic sources are named by the operator
    return names - {"TASKYARD_HOME", "TASKYARD_WORKER_ID", "TASKYARD_DISCORD_PRIVATE_KEY"}


def test_compose_passes_on_the_configuration_the_readme_lists_and_bakes_in_no_secret() -> None:
    assert {"TASKYARD_GITHUB_SECRET", "OPENAI_API_KEY"} <= _readme_env()
    assert _readme_env() <= set(_service("serve")["environment"])
    for name in (*TASKYARD_SERVICES, "postgres"):
        for key, value in _service(name)["environment"].items():
            if SECRET_NAME.search(key):
                assert re.fullmatch(rf"\$\{{{key}(:-|:\?[^}}]*)?\}}", str(value)), (
                    f"{name}: {key} must come from the environment, not compose.yaml"
                )


def test_every_bind_mount_and_named_volume_exists() -> None:
    compose = _compose()
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in compose["volumes"], f"{name} uses undeclared volume {source}"


def test_prometheus_runs_the_repos_config_and_loads_every_rules_file() -> None:
    mounts = _bind_mounts("prometheus")
    target = mounts["./deploy/prometheus"]
    assert f"--config.file={target}/prometheus.yml" in _service("prometheus")["command"]
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    # promtool and Prometheus find rule files relative to the config file
    assert sorted(config["rule_files"]) == [p.name for p in RULE_FILES]
    assert all((PROMETHEUS_CONFIG.parent / f).is_file() for f in config["rule_files"])


def test_prometheus_scrapes_serve_and_every_worker_replica() -> None:
    jobs = {
        j["job_name"]: j for j in yaml.safe_load(PROMETHEUS_CONFIG.read_text())["scrape_configs"]
    }
    serve_port = _service("serve")["command"][-1]
    # TaskyardDown selects up{job="taskyard"}
    assert jobs["taskyard"]["static_configs"] == [{"targets": [f"serve:{serve_port}"]}]
    assert 'up{job="taskyard"}' in ALERTS["TaskyardDown"]["expr"]
    (workers,) = jobs["taskyard-worker"]["dns_sd_configs"]
    assert workers["names"] == ["worker"] and workers["type"] == "A"
    assert str(workers["port"]) == _service("worker")["environment"]["TASKYARD_METRICS_PORT"]


def test_grafana_is_provisioned_with_the_prometheus_and_every_dashboard() -> None:
    mounts = _bind_mounts("grafana")
    provisioning = GRAFANA_DIR / "provisioning"
    assert (
        mounts["./deploy/grafana/provisioning/datasources"]
        == "/etc/grafana/provisioning/datasources"
    )
    assert (
        mounts["./deploy/grafana/provisioning/dashboards"] == "/etc/grafana/provisioning/dashboards"
    )
    (source,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yaml").read_text())[
        "datasources"
    ]
    assert source["type"] == "prometheus" and source["isDefault"] is True
    assert source["url"] == "http://prometheus:9090"
    assert "127.0.0.1:9090:9090" in _service("prometheus")["ports"]
    scrape = yaml.safe_load(PROMETHEUS_CONFIG.read_text())["global"]["scrape_interval"]
    assert source["jsonData"]["timeInterval"] == scrape
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "taskyard.yaml").read_text())[
        "providers"
    ]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == mounts["./deploy/grafana"]
    home = _service("grafana")["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{mounts['./deploy/grafana']}/{PIPELINE_DASHBOARD.name}"


# --- the image: Dockerfile and .dockerignore ------------------------------------------------


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), " ".join(rest.split())))
    return found


def _ignored(path: str, patterns: list[str]) -> bool:
    """Whether Docker leaves `path` out of the build context (last matching pattern wins; a
    pattern that matches a parent directory matches everything under it)."""
    parts = path.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        body = pattern.lstrip("!").strip("/")
        regex = re.escape(body).replace(r"\*\*/", "(?:.*/)?").replace(r"\*\*", ".*")
        regex = regex.replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        if any(re.fullmatch(regex, c) for c in candidates):
            ignored = not negated
    return ignored


def _dockerignore() -> list[str]:
    lines = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def test_the_dockerignore_reader_follows_dockers_rules() -> None:
    patterns = ["*", "!src", "**/__pycache__", "!src/keep/__pycache__"]
    assert _ignored(".venv/bin/python", patterns)
    assert not _ignored("src/a.py", patterns)
    assert _ignored("src/pkg/__pycache__/a.pyc", patterns)
    assert not _ignored("src/keep/__pycache__/a.pyc", patterns)
    assert _ignored("README.md", patterns)


def _copy_sources() -> list[str]:
    sources = []
    for word, args in _instructions():
        if word == "COPY" and "--from=" not in args:
            sources += [a for a in args.split() if not a.startswith("--")][:-1]
    return sources


def test_the_image_is_python_311_slim_run_by_a_user_as_taskyard() -> None:
    steps = _instructions()
    froms = [args.split()[0] for word, args in steps if word == "FROM"]
    assert froms and set(froms) == {"python:3.11-slim"}
    users = [args for word, args in steps if word == "USER"]
    assert users and users[-1] not in {"root", "0"}
    (entrypoint,) = [json.loads(args) for word, args in steps if word == "ENTRYPOINT"]
    assert entrypoint[-1] == "taskyard"
    (cmd,) = [json.loads(args) for word, args in steps if word == "CMD"]
    assert cmd[:1] == ["serve"] and cmd[cmd.index("--host") + 1] == "0.0.0.0"
    (health,) = [args for word, args in steps if word == "HEALTHCHECK"]
    assert "/healthz" in health and f":{cmd[cmd.index('--port') + 1]}/" in health
    installs = " ".join(args for word, args in steps if word == "RUN" and "apt-get install" in args)
    assert re.search(r"apt-get install [^;&]*\bgit\b", installs)
    assert re.search(r"apt-get install [^;&]*\bbubblewrap\b", installs)  # the agent sandbox


def test_the_image_bakes_in_no_secret() -> None:
    for word, args in _instructions():
        if word in {"ENV", "ARG"}:
            for key, value in re.findall(r"(\w+)=(\"[^\"]*\"|\S*)", args):
                assert not (SECRET_NAME.search(key) and value.strip('"')), f"{word} {key}"
    assert all(".env" not in source for source in _copy_sources())
    patterns = _dockerignore()
    for secret in (".env", "deploy/.env", ".taskyard/taskyard.db"):
        assert _ignored(secret, patterns), secret


def test_the_build_context_holds_what_the_dockerfile_copies_and_little_else() -> None:
    patterns = _dockerignore()
    sources = _copy_sources()
    assert {"pyproject.toml", "README.md", "taskyard"} <= set(s.rstrip("/") for s in sources)
    for source in sources:
        assert (ROOT / source).exists(), source
        assert not _ignored(source.rstrip("/"), patterns), f"{source} is left out by .dockerignore"
    for kept in ("taskyard/cli/main.py", "taskyard/store/migrations/0001_initial.sql"):
        assert not _ignored(kept, patterns), kept
    for left_out in (".venv/bin/python", ".git/HEAD", "tests/conftest.py", ".cache/npm/x"):
        assert _ignored(left_out, patterns), left_out
    assert _ignored("taskyard/__pycache__/cli.cpython-311.pyc", patterns)


@pytest.mark.timeout(300)
def test_the_package_builds_from_the_build_context_alone(tmp_path: Path) -> None:
    """What the image's build stage does (`pip wheel .` on the COPY'd files): the wheel holds
    every module and data file of the package, and the `taskyard` command."""
    patterns = _dockerignore()
    context = tmp_path / "context"
    for source in _copy_sources():
        origin = ROOT / source
        files = [origin] if origin.is_file() else [p for p in origin.rglob("*") if p.is_file()]
        for file in files:
            relative = file.relative_to(ROOT).as_posix()
            if not _ignored(relative, patterns):
                (context / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(file, context / relative)
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "-w",
            str(tmp_path),
            str(context),
        ],
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = tmp_path.glob("taskyard-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    wanted = {
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "taskyard").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }
    missing = sorted(wanted - names)
    assert not missing, (
        f"the installed package (and so the image) lacks {len(missing)} files: list them in "
        f"pyproject.toml [tool.setuptools.package-data]: {missing}"
    )
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    assert "taskyard = taskyard.cli.main:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


# --- with Docker: the image builds, compose resolves ------------------------------------------


def _docker(*args: str, timeout: float = 60, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker client on PATH")
    return subprocess.run(
        [docker, *args], capture_output=True, text=True, timeout=timeout, **kwargs
    )


@pytest.mark.timeout(1900)
def test_the_image_builds_and_runs_taskyard_as_a_user() -> None:
    if _docker("info").returncode != 0:
        pytest.skip("no Docker daemon answers (`docker info` fails): the image is not built")
    tag = "taskyard:deploy-artifacts-test"
    built = _docker("build", "-t", tag, str(ROOT), timeout=1800)
    assert built.returncode == 0, built.stderr[-3000:]
    try:
        ran = _docker("run", "--rm", tag, "--help", timeout=120)
        assert ran.returncode == 0, ran.stderr
        assert "worker" in ran.stdout and "migrate" in ran.stdout
        user = _docker("run", "--rm", "--entrypoint", "id", tag, "-u", timeout=120)
        assert user.stdout.strip() not in {"", "0"}
        git = _docker("run", "--rm", "--entrypoint", "git", tag, "--version", timeout=120)
        assert git.returncode == 0
    finally:
        _docker("image", "rm", "-f", tag)


def _compose_cli() -> list[str]:
    """`docker compose` (the plugin), else the older `docker-compose`; skip with neither."""
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0
    ):
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    if legacy:
        return [legacy]
    pytest.skip(
        "no `docker compose` plugin (nor docker-compose): compose.yaml is checked statically"
    )


def test_docker_compose_resolves_the_stack_and_refuses_it_without_its_secrets(
    tmp_path: Path,
) -> None:
    base = [*_compose_cli(), "--project-directory", str(ROOT), "-f", str(COMPOSE)]
    env_file = tmp_path / "compose.env"
    clean = {
        k: v for k, v in os.environ.items() if k not in {"POSTGRES_PASSWORD", "TASKYARD_API_TOKEN"}
    }

    def config(*extra: str) -> subprocess.CompletedProcess[str]:
        argv = [*base, "--env-file", str(env_file), "config", *extra]
        return subprocess.run(argv, capture_output=True, text=True, timeout=60, env=clean)

    env_file.write_text("POSTGRES_PASSWORD=pw4test\nTASKYARD_API_TOKEN=token4test\n")
    resolved = config()
    assert resolved.returncode == 0, resolved.stderr
    services = yaml.safe_load(resolved.stdout)["services"]
    assert set(services) == set(_compose()["services"])
    assert services["serve"]["environment"]["TASKYARD_API_TOKEN"] == "token4test"
    assert "pw4test@postgres" in services["worker"]["environment"]["TASKYARD_DATABASE_URL"]
    env_file.write_text("POSTGRES_PASSWORD=pw4test\n")
    refused = config("--quiet")
    assert refused.returncode != 0 and "set TASKYARD_API_TOKEN in .env" in refused.stderr
