"""Risk rules: the shipped defaults, the match criteria, first match wins, invalid files."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml

from taskyard.actions.models import ParsedAction, Target, parse_actions
from taskyard.approvals.risk import (
    DEFAULT_RULE,
    RiskLevel,
    RiskRules,
    RiskSubject,
    RiskVerdict,
    subject_of,
)
from taskyard.exceptions import ConfigError

PR = Target(platform="github", repo="acme/api", number=7, pull_request=True)
ISSUE = Target(platform="github", repo="acme/api", number=3, pull_request=False)
LINEAR = Target(platform="linear", issue_id="i-1", team_id="t-1")
SLACK = Target(platform="slack", channel="C0BUGS", thread_ts="1.1", message_ts="1.2")
SENTRY = Target(platform="sentry", team_id="t-1")
LOW, MEDIUM, HIGH, CRITICAL = RiskLevel


def action(kind: str, params: dict[str, Any] | None = None) -> ParsedAction:
    [parsed] = parse_actions("t1", [{"type": kind, "params": params or {}}])
    assert isinstance(parsed, ParsedAction), parsed
    return parsed


def on(target: Target, **fields: Any) -> Target:
    return Target(**{**{f: getattr(target, f) for f in target.__slots__}, **fields})


def review(verdict: str = "comment", *paths: str) -> tuple[str, dict[str, Any]]:
    comments = [{"path": p, "line": 1, "body": "look"} for p in paths]
    return "review", {"summary": "ok", "verdict": verdict, "comments": comments}


LABELS = ("add_labels", {"labels": ["bug"]})
COMMENT = ("comment", {"body": "triaged"})
ISSUE_PARAMS = {"title": "Crash", "body": "trace"}
MERGE: tuple[str, dict[str, Any]] = ("merge_pr", {})

# (action, target, environment) → (level, rule)
SHIPPED = [
    (LABELS, LINEAR, "production", CRITICAL, "production-environment"),
    (("run_command", {"argv": ["make"]}), PR, "production", CRITICAL, "production-environment"),
    (review("approve", "config/prod/db.yaml"), PR, None, CRITICAL, "production-config"),
    (review("approve", "src/a.py", "deploy/production/x"), PR, None, CRITICAL, "production-config"),
    (review("approve", "settings.prod.json"), PR, None, CRITICAL, "production-config"),
    (review("comment", "prod/values.yaml"), PR, None, LOW, "review-comments"),
    (MERGE, on(PR, branch="main", lines_changed=3), None, CRITICAL, "merge-main"),
    (MERGE, on(PR, branch="master"), None, CRITICAL, "merge-main"),
    (MERGE, on(PR, branch="develop", lines_changed=500), None, CRITICAL, "merge-large"),
    (MERGE, on(PR, branch="develop", lines_changed=499), None, HIGH, "merge"),
    (MERGE, PR, None, HIGH, "merge"),
    (("run_command", {"argv": ["make"]}), PR, "staging", HIGH, "run-command"),
    (("post_channel", {"text": "hi", "channel": "C0ALL"}), SENTRY, None, HIGH, "channel-post"),
    (("post_channel", {"text": "hi"}), SLACK, None, HIGH, "channel-post"),
    (
        ("mention_users", {"users": ["@alice"], "message": "look"}),
        SLACK,
        None,
        MEDIUM,
        "mentions-outside-team",
    ),
    (("create_pr", {"title": "Fix", "head": "fix", "base": "main"}), PR, None, MEDIUM, "create-pr"),
    (review("comment", "src/product/app.py"), PR, None, LOW, "review-comments"),
    (review("comment"), PR, None, LOW, "review-comments"),
    (review("approve"), PR, None, MEDIUM, "review-approval"),
    (review("request_changes", "config/prod/db.yaml"), PR, None, LOW, "review-changes-requested"),
    (("close_issue", {}), ISSUE, None, MEDIUM, "close-issue"),
    (("remove_labels", {"labels": ["bug"]}), LINEAR, None, MEDIUM, "remove-labels"),
    (LABELS, ISSUE, None, LOW, "triage"),
    (("set_priority", {"priority": "P1"}), LINEAR, None, LOW, "triage"),
    (("set_state", {"state": "Todo"}), LINEAR, "staging", LOW, "triage"),
    (("assign", {"assignee": "alice"}), ISSUE, None, LOW, "triage"),
    (COMMENT, LINEAR, None, LOW, "triage-comments"),
    (COMMENT, ISSUE, None, LOW, "triage-comments"),
    (COMMENT, SLACK, None, LOW, "thread-replies"),
    (("create_issue", ISSUE_PARAMS), SLACK, None, LOW, "linear-issues"),
    (("create_issue", ISSUE_PARAMS), SENTRY, None, LOW, "linear-issues"),
    (("create_issue", ISSUE_PARAMS), LINEAR, None, LOW, "linear-issues"),
    (("react", {"emoji": "eyes"}), SLACK, None, LOW, "reactions"),
    (("set_check", {"name": "t", "conclusion": "success", "title": "ok"}), PR, None, LOW, "checks"),
    # Nothing matches: the default.
    (("create_issue", ISSUE_PARAMS), ISSUE, None, MEDIUM, DEFAULT_RULE),
    (COMMENT, SENTRY, None, MEDIUM, DEFAULT_RULE),
]


@pytest.fixture(scope="module")
def shipped() -> RiskRules:
    return RiskRules.load(None)


@pytest.mark.parametrize(("act", "target", "environment", "level", "rule"), SHIPPED)
def test_shipped_rules(
    shipped: RiskRules,
    act: tuple[str, dict[str, Any]],
    target: Target,
    environment: str | None,
    level: RiskLevel,
    rule: str,
) -> None:
    subject = subject_of(action(*act), target, environment)
    assert shipped.assess(subject) == RiskVerdict(level, rule)


# A change task's code change, rated before taskyard commits it (run.personreview):
# (paths, lines changed) → (level, rule)
CHANGES = [
    ((".github/workflows/ci.yml", "src/a.py"), 4, HIGH, "change-sensitive-paths"),
    (("deploy/helm/values.yaml",), 2, HIGH, "change-sensitive-paths"),
    (("poetry.lock",), 2, HIGH, "change-sensitive-paths"),
    (("src/a.py",), 300, HIGH, "change-large"),
    (("src/a.py",), 299, LOW, "change"),
    ((), 0, LOW, "change"),
]


@pytest.mark.parametrize(("paths", "lines", "level", "rule"), CHANGES)
def test_shipped_rules_for_changes(
    shipped: RiskRules, paths: tuple[str, ...], lines: int, level: RiskLevel, rule: str
) -> None:
    subject = RiskSubject(
        type="change", platform="github", repo="acme/api", branch="fix", paths=paths,
        lines_changed=lines, params={"mode": "push"},
    )  # fmt: skip
    assert shipped.assess(subject) == RiskVerdict(level, rule)


def test_every_shipped_rule_is_exercised(shipped: RiskRules) -> None:
    exercised = {case[4] for case in SHIPPED} | {"team-mentions"}  # the test below
    exercised |= {case[3] for case in CHANGES}
    assert {rule.name for rule in shipped.rules} == exercised - {DEFAULT_RULE}
    assert shipped.default is MEDIUM


def test_shipped_mentions_of_the_team_are_low_once_the_team_is_listed() -> None:
    data = yaml.safe_load(
        resources.files("taskyard.approvals").joinpath("defaults", "risk-rules.yaml").read_text()
    )
    [outside] = [r for r in data["rules"] if r["name"] == "mentions-outside-team"]
    outside["match"]["mentions_outside"] = ["alice", "U0BOB"]
    with_team = RiskRules.from_mapping(data)
    team = action("mention_users", {"users": ["@Alice", "U0BOB"], "message": "look"})
    others = action("mention_users", {"users": ["alice", "carol"], "message": "look"})
    assert with_team.assess(subject_of(team, SLACK, None)) == RiskVerdict(LOW, "team-mentions")
    assert with_team.assess(subject_of(others, ISSUE, None)) == RiskVerdict(
        MEDIUM, "mentions-outside-team"
    )


# --- the subject ---------------------------------------------------------------------------


def test_subject_says_where_requests_go_and_what_is_touched() -> None:
    post = subject_of(action("post_channel", {"text": "hi", "channel": "C0ALL"}), SENTRY, None)
    assert (post.platform, post.channel) == ("slack", "C0ALL")
    reply = subject_of(action("post_channel", {"text": "hi"}), SLACK, "dev")
    assert (reply.platform, reply.channel, reply.environment) == ("slack", "C0BUGS", "dev")
    linear_issue = subject_of(action("create_issue", ISSUE_PARAMS), SLACK, None)
    github_issue = subject_of(action("create_issue", ISSUE_PARAMS), ISSUE, None)
    assert (linear_issue.platform, github_issue.platform) == ("linear", "github")
    kind, params = review("approve", "a.py", "b/c.py")
    reviewed = subject_of(action(kind, params), on(PR, branch="main", lines_changed=9), None)
    assert reviewed == RiskSubject(
        type="review",
        platform="github",
        repo="acme/api",
        branch="main",
        paths=("a.py", "b/c.py"),
        lines_changed=9,
        params=action(kind, params).params_json(),
    )


def test_create_pr_goes_to_its_base_branch_and_touches_no_paths() -> None:
    pr = action("create_pr", {"title": "Fix", "head": "fix", "base": "release/2"})
    subject = subject_of(pr, on(PR, branch="main"), None)
    assert (subject.branch, subject.paths) == ("release/2", ())


def test_mentions_are_the_people_named() -> None:
    mention = action("mention_users", {"users": ["@a", "b"], "message": "hi"})
    assert subject_of(mention, ISSUE, None).mentions == ("@a", "b")
    assert subject_of(action(*COMMENT), ISSUE, None).mentions == ()


# --- matching ------------------------------------------------------------------------------


def rules(*entries: tuple[str, str, dict[str, Any]], default: str = "medium") -> RiskRules:
    listed = [{"name": n, "level": lv, "match": m} for n, lv, m in entries]
    return RiskRules.from_mapping({"default": default, "rules": listed})


def matches(match: dict[str, Any], subject: RiskSubject) -> bool:
    return rules(("r", "high", match)).assess(subject).rule == "r"


def subject(**fields: Any) -> RiskSubject:
    return RiskSubject(**{"type": "comment", "platform": "github", **fields})


def test_first_matching_rule_wins_and_unmatched_get_the_default() -> None:
    ordered = rules(
        ("merge-main", "critical", {"types": ["merge_pr"], "branches": ["main"]}),
        ("merges", "high", {"types": ["merge_pr"]}),
        ("everything", "low", {}),
        default="high",
    )
    assert ordered.assess(subject(type="merge_pr", branch="main")) == RiskVerdict(
        CRITICAL, "merge-main"
    )
    assert ordered.assess(subject(type="merge_pr", branch="dev")).rule == "merges"
    assert ordered.assess(subject(type="react")).rule == "everything"
    fallback = rules(("merges", "high", {"types": ["merge_pr"]}), default="low")
    assert fallback.assess(subject(type="react")) == RiskVerdict(LOW, DEFAULT_RULE)


def test_every_criterion_set_must_hold() -> None:
    match = {"types": ["comment"], "platforms": ["github"], "repos": ["acme/*"]}
    assert matches(match, subject(repo="acme/api"))
    assert not matches(match, subject(repo="other/api"))
    assert not matches(match, subject(repo="acme/api", platform="linear"))


@pytest.mark.parametrize(
    ("match", "fields", "expected"),
    [
        ({"types": ["set_*"]}, {"type": "set_state"}, True),
        ({"types": ["set_*"]}, {"type": "add_labels"}, False),
        ({"types": "comment"}, {}, True),
        ({"platforms": ["lin*"]}, {"platform": "linear"}, True),
        ({"environments": ["prod*"]}, {"environment": "production"}, True),
        ({"environments": ["prod*"]}, {"environment": "staging"}, False),
        ({"environments": ["*"]}, {}, False),  # no environment never matches
        ({"repos": ["acme/*"]}, {"repo": "ACME/Api"}, True),  # GitHub names ignore case
        ({"repos": ["acme/*"]}, {}, False),
        ({"branches": ["release/*"]}, {"branch": "release/1.2"}, True),
        ({"branches": ["main"]}, {"branch": "main-old"}, False),
        ({"branches": ["main"]}, {}, False),
        ({"channels": ["C0PUBLIC*"]}, {"channel": "C0PUBLIC42"}, True),
        ({"channels": ["C0PUBLIC*"]}, {"channel": "C0PRIVATE"}, False),
        ({"channels": ["C0PUBLIC*"]}, {}, False),
    ],
)
def test_glob_criteria(match: dict[str, Any], fields: dict[str, Any], expected: bool) -> None:
    assert matches(match, subject(**fields)) is expected


@pytest.mark.parametrize(
    ("glob", "path", "expected"),
    [
        ("config/prod/**", "config/prod/db.yaml", True),
        ("config/prod/**", "config/prod/a/b.yaml", True),
        ("config/prod/**", "config/production/db.yaml", False),
        ("config/prod/**", "x/config/prod/db.yaml", False),
        ("**/prod/**", "prod/db.yaml", True),
        ("**/prod/**", "a/b/prod/c/db.yaml", True),
        ("**/prod/**", "a/product/db.yaml", False),
        ("*.prod.*", "app.prod.yaml", True),
        ("*.prod.*", "deep/dir/app.prod.yaml", True),
        ("*.prod.*", "app.production.yaml", False),
        ("src/*.py", "src/app.py", True),
        ("src/*.py", "src/pkg/app.py", False),  # `*` stays within one directory
        ("src/**/*.py", "src/app.py", True),
        ("src/?.py", "src/a.py", True),
        ("src/[ab].py", "src/b.py", True),
        ("src/[!ab].py", "src/c.py", True),
        ("src/[!ab].py", "src/a.py", False),
        ("/docs/**", "docs/a.md", True),
        ("a+b.py", "a+b.py", True),
    ],
)
def test_path_globs(glob: str, path: str, expected: bool) -> None:
    assert matches({"paths": [glob]}, subject(type="review", paths=(path,))) is expected


def test_paths_match_when_any_path_does_and_never_without_paths() -> None:
    match = {"paths": ["**/prod/**"]}
    assert matches(match, subject(type="review", paths=("src/a.py", "env/prod/x.yaml")))
    assert not matches(match, subject(type="review", paths=("src/a.py",)))
    pr = action("create_pr", {"title": "t", "head": "h", "base": "main"})
    assert not matches(match, subject_of(pr, PR, None))


@pytest.mark.parametrize(
    ("bounds", "lines", "expected"),
    [
        ({"min_lines": 500}, 500, True),
        ({"min_lines": 500}, 499, False),
        ({"max_lines": 50}, 50, True),
        ({"max_lines": 50}, 51, False),
        ({"min_lines": 10, "max_lines": 20}, 15, True),
        ({"min_lines": 10, "max_lines": 20}, 21, False),
        ({"min_lines": 0}, None, False),  # unknown size never matches a bound
        ({"max_lines": 10**9}, None, False),
    ],
)
def test_line_bounds(bounds: dict[str, int], lines: int | None, expected: bool) -> None:
    assert matches(bounds, subject(lines_changed=lines)) is expected


def test_params_are_compared_as_the_actions_json_has_them() -> None:
    approve = {"types": ["review"], "params": {"verdict": "approve"}}
    kind, params = review("approve")
    assert matches(approve, subject_of(action(kind, params), PR, None))
    kind, params = review("comment")
    assert not matches(approve, subject_of(action(kind, params), PR, None))
    urgent = {"types": ["set_priority"], "params": {"priority": 0}}
    assert matches(urgent, subject_of(action("set_priority", {"priority": "P0"}), LINEAR, None))
    assert not matches(urgent, subject_of(action("set_priority", {"priority": 1}), LINEAR, None))
    drafts = {"types": ["create_pr"], "params": {"draft": False}}
    pr = {"title": "t", "head": "h", "base": "main"}
    assert not matches(drafts, subject_of(action("create_pr", pr), PR, None))
    assert matches(drafts, subject_of(action("create_pr", {**pr, "draft": False}), PR, None))


def test_params_of_an_action_without_them_never_match() -> None:
    # `labels` is a param of add_labels and create_issue; a comment has none.
    match = {"params": {"labels": ["bug"]}}
    assert matches(match, subject_of(action(*LABELS), ISSUE, None))
    assert not matches(match, subject_of(action(*COMMENT), ISSUE, None))


@pytest.mark.parametrize(
    ("users", "expected"),
    [
        (["alice"], False),
        (["@Alice", "BOB"], False),  # `@` and case ignored
        (["alice", "carol"], True),
        (["U999"], True),
    ],
)
def test_mentions_outside_the_team(users: list[str], expected: bool) -> None:
    match = {"mentions_outside": ["alice", "bob"]}
    mention = action("mention_users", {"users": users, "message": "hi"})
    assert matches(match, subject_of(mention, SLACK, None)) is expected


def test_mentions_outside_an_empty_team_is_any_mention_and_nothing_else() -> None:
    match: dict[str, Any] = {"mentions_outside": []}
    mention = action("mention_users", {"users": ["alice"], "message": "hi"})
    assert matches(match, subject_of(mention, SLACK, None))
    assert not matches(match, subject_of(action(*COMMENT), SLACK, None))


# --- levels --------------------------------------------------------------------------------


def test_levels_are_ordered_and_compare_with_their_names() -> None:
    assert LOW < MEDIUM < HIGH < CRITICAL
    assert max([MEDIUM, CRITICAL, LOW]) is CRITICAL
    assert sorted([HIGH, LOW, CRITICAL, MEDIUM]) == [LOW, MEDIUM, HIGH, CRITICAL]
    assert HIGH >= "medium" and HIGH <= "high" and not HIGH > "critical"
    assert CRITICAL == "critical" and str(CRITICAL) == "critical"
    with pytest.raises(ValueError, match="'urgent' is not a valid RiskLevel"):
        _ = HIGH < "urgent"
    with pytest.raises(TypeError):
        _ = HIGH < 3


# --- invalid files -------------------------------------------------------------------------


def rule(**fields: Any) -> dict[str, Any]:
    return {"name": "gate", "level": "high", "match": {}, **fields}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"rules": [rule(level="urgent")]}, "rule 'gate' (#1).level: Input should be 'low',"),
        ({"default": "huge"}, "default: Input should be 'low', 'medium', 'high' or 'critical'"),
        (
            {"rules": [rule(), rule(name="typo", match={"types": ["add_label"]})]},
            "rule 'typo' (#2).match.types: 'add_label' names no action type (known: add_labels,",
        ),
        ({"rules": [rule(match={"types": []})]}, "rule 'gate' (#1).match.types: Tuple should"),
        (
            {"rules": [rule(match={"types": ["review"], "params": {"verdic": "approve"}})]},
            "rule 'gate' (#1).match.params: 'verdic' is not a param of review",
        ),
        (
            {"rules": [rule(match={"types": ["review"], "params": {"verdict": "approved"}})]},
            "match.params: 'approved' is not a valid verdict of review",
        ),
        (
            {"rules": [rule(match={"min_lines": 100, "max_lines": 10})]},
            "rule 'gate' (#1).match: min_lines 100 is above max_lines 10: nothing would match",
        ),
        ({"rules": [rule(match={"min_lines": -1})]}, "match.min_lines: Input should be greater"),
        (
            {"rules": [rule(match={"severity": "high"})]},
            "rule 'gate' (#1).match.severity: Extra inputs are not permitted",
        ),
        ({"rules": [{"name": "gate", "level": "high"}]}, "rule 'gate' (#1).match: Field required"),
        ({"rules": [{"level": "high", "match": {}}]}, "rule #1.name: Field required"),
        ({"rules": [rule(), rule()]}, "rule 'gate' is named more than once"),
        ({"rules": [rule(name="default")]}, "'default' names the default level, not a rule"),
        ({"rule": []}, "rule: Extra inputs are not permitted"),
    ],
)
def test_invalid_rules_name_the_rule_and_the_problem(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        RiskRules.from_mapping(data, "rules.yaml")
    assert str(caught.value).startswith("invalid risk rules rules.yaml: ")
    assert message in str(caught.value)


def test_a_file_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "risk.yaml"
    path.write_text("- just\n- a list\n")
    with pytest.raises(
        ConfigError, match=re.escape(f"invalid risk rules {path}: expected a mapping")
    ):
        RiskRules.load(path)
    path.write_text("")
    with pytest.raises(ConfigError, match="expected a mapping"):
        RiskRules.load(path)


def test_unreadable_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=re.escape(f"cannot read risk rules {tmp_path / 'none.yaml'}")
    ):
        RiskRules.load(tmp_path / "none.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("rules: [\n")
    with pytest.raises(ConfigError, match=re.escape(f"cannot read risk rules {broken}")):
        RiskRules.load(broken)


def test_a_file_is_loaded_and_its_errors_name_it(tmp_path: Path) -> None:
    path = tmp_path / "risk.yaml"
    path.write_text(
        "default: low\n"
        "rules:\n"
        "  - name: merges\n"
        "    level: critical\n"
        "    match: {types: merge_pr}\n"
    )
    loaded = RiskRules.load(path)
    assert loaded.assess(subject(type="merge_pr")) == RiskVerdict(CRITICAL, "merges")
    assert loaded.assess(subject()) == RiskVerdict(LOW, DEFAULT_RULE)
    path.write_text("rules:\n  - name: merges\n    level: severe\n    match: {}\n")
    with pytest.raises(
        ConfigError, match=re.escape(f"invalid risk rules {path}: rule 'merges' (#1)")
    ):
        RiskRules.load(path)
