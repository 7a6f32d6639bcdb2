"""deploy/: the alert rules and the approvals dashboard are well formed and query only metrics
(and label values) taskyard exposes. `.ci/check-deploy` checks them further with promtool."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from taskyard import exceptions
from taskyard.actions.records import ActionStatus
from taskyard.models import TaskStatus
from taskyard.observe import EVENT_STATES, TASK_STATES, Metrics

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "taskyard-alerts.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "taskyard-alerts.test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "taskyard-approvals.json"

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


def _exposed() -> tuple[set[str], set[str]]:
    """(series names, family names) from a Metrics registry with every live gauge watched."""
    metrics = Metrics()
    metrics.watch_tasks(dict)
    metrics.watch_agents(["codex"], lambda _: 0, lambda _: 0)
    metrics.watch_queue(dict)
    metrics.watch_approvals(dict)
    names: set[str] = set()
    families: set[str] = set()
    for family in metrics.registry.collect():
        families.add(family.name)
        names |= _series(family.name, family.type)
        names |= {sample.name for sample in family.samples}
    return names | PROMETHEUS_SERIES, families


EXPOSED, FAMILIES = _exposed()


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
}


def _allowed_values(metric: str, label: str) -> set[str] | None:
    if metric.startswith("taskyard_approval_") and label == "risk":
        return RISKS
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


def _check_query(expr: str, where: str) -> None:
    assert promql_problems(expr) == [], f"{where}: {expr}"
    unknown = metric_names(expr) - EXPOSED
    assert not unknown, f"{where} uses metrics taskyard does not expose: {sorted(unknown)}"
    for metric, label, value in label_values_used(expr):
        allowed = _allowed_values(metric, label)
        assert allowed is None or value in allowed, (
            f"{where}: {metric}{{{label}={value!r}}} never exists (values: {sorted(allowed)})"
        )


# --- alert rules --------------------------------------------------------------------------


def _alerts() -> list[dict[str, Any]]:
    data = yaml.safe_load(RULES.read_text())
    return [rule for group in data["groups"] for rule in group["rules"] if "alert" in rule]


ALERTS = {rule["alert"]: rule for rule in _alerts()}


def test_the_rules_file_is_prometheus_groups_with_unique_alert_names() -> None:
    data = yaml.safe_load(RULES.read_text())
    groups = data["groups"]
    assert {g["name"] for g in groups} >= {"taskyard-approvals", "taskyard-intake"}
    names = [r["alert"] for g in groups for r in g["rules"]]
    assert len(names) == len(set(names)) == len(ALERTS)
    assert all(re.fullmatch(r"Taskyard[A-Z]\w+", name) for name in names)


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


def test_the_promtool_tests_cover_firing_and_quiet_cases() -> None:
    data = yaml.safe_load(RULE_TESTS.read_text())
    assert data["rule_files"] == [RULES.name]
    cases: dict[str, set[bool]] = {}
    for test in data["tests"]:
        for case in test["alert_rule_test"]:
            assert case["alertname"] in ALERTS
            cases.setdefault(case["alertname"], set()).add(bool(case["exp_alerts"]))
    assert cases["TaskyardApprovalCriticalPending"] == {True, False}
    assert cases["TaskyardApprovalTimeoutRateHigh"] == {True, False}


# --- the approvals dashboard --------------------------------------------------------------

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
GRAFANA_BUILTINS = {"__rate_interval", "__interval", "__range", "__all", "__data", "__value"}


def _dashboard() -> dict[str, Any]:
    data = json.loads(DASHBOARD.read_text())
    assert isinstance(data, dict)
    return data


def _targets(dashboard: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield panel, target


def _variables(dashboard: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in dashboard["templating"]["list"]}


def test_the_dashboard_has_identity_time_and_variables() -> None:
    dashboard = _dashboard()
    assert dashboard["schemaVersion"] >= 36
    assert dashboard["uid"] == "taskyard-approvals"
    assert dashboard["title"]
    assert set(dashboard["time"]) == {"from", "to"}
    variables = _variables(dashboard)
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["taskyard_url"]["type"] in {"textbox", "constant"}
    assert variables["taskyard_url"]["query"].startswith("http")


def test_every_variable_the_dashboard_uses_is_defined() -> None:
    dashboard = _dashboard()
    used = set(re.findall(r"\$\{(\w+)|\$(\w+)", json.dumps(dashboard)))
    names = {a or b for a, b in used}
    assert names - GRAFANA_BUILTINS <= set(_variables(dashboard))


def test_panels_have_unique_ids_and_do_not_overlap() -> None:
    panels = _dashboard()["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    cells: dict[tuple[int, int], int] = {}
    for panel in panels:
        pos = panel["gridPos"]
        assert all(isinstance(pos[k], int) for k in ("x", "y", "w", "h"))
        assert pos["w"] > 0 and pos["h"] > 0 and pos["x"] >= 0 and pos["x"] + pos["w"] <= 24
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"panels {cells[x, y]} and {panel['id']} overlap"
                cells[x, y] = panel["id"]


def test_every_panel_queries_the_chosen_prometheus() -> None:
    dashboard = _dashboard()
    for panel in dashboard["panels"]:
        assert panel["datasource"] == DATASOURCE, panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), panel["title"]
    for panel, target in _targets(dashboard):
        assert target["datasource"] == DATASOURCE, panel["title"]
        assert target["expr"].strip(), panel["title"]


def test_every_dashboard_query_uses_what_taskyard_exposes() -> None:
    dashboard = _dashboard()
    for panel, target in _targets(dashboard):
        _check_query(target["expr"], f"panel {panel['title']!r} {target['refId']}")
    for variable in _variables(dashboard).values():
        if variable["type"] == "query":
            query = variable["query"]["query"]
            metric = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", query)
            assert metric and metric.group(1) in EXPOSED, query


def _panel(title: str) -> dict[str, Any]:
    matches: list[dict[str, Any]] = [p for p in _dashboard()["panels"] if p["title"] == title]
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
