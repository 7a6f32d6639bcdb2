"""The engine: freeze windows on the wall clock of a time zone (across DST and the week's
end), errors at evaluation failing closed, input refused when it is not the documented one,
and a decision recorded in the audit chain."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from taskyard.audit import verify_chain
from taskyard.policy.engine import InputError, evaluate, policy_input, record
from taskyard.policy.rules import Outcome, Point, parse_policy
from taskyard.policy.windows import hour, in_window, weekday
from taskyard.store.memory import MemoryStore

BERLIN = "Europe/Berlin"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.mark.parametrize(
    ("moment", "inside"),
    [
        ("2026-03-27T16:59:00+00:00", False),  # Fri 17:59 CET
        ("2026-03-27T17:00:00+00:00", True),  # Fri 18:00 CET: opens
        ("2026-03-29T01:30:00+00:00", True),  # Sun 03:30 CEST, just after the clocks go forward
        ("2026-03-30T03:59:00+00:00", True),  # Mon 05:59 CEST (UTC+2 now)
        ("2026-03-30T04:00:00+00:00", False),  # Mon 06:00 CEST: closed, though 05:00 CET
        ("2026-10-23T15:59:00+00:00", False),  # Fri 17:59 CEST
        ("2026-10-23T16:00:00+00:00", True),  # Fri 18:00 CEST
        ("2026-10-26T04:59:00+00:00", True),  # Mon 05:59 CET, after the clocks go back
        ("2026-10-26T05:00:00+00:00", False),  # Mon 06:00 CET
        ("2026-03-25T10:00:00+00:00", False),  # a Wednesday
    ],
)
def test_weekend_freeze_on_berlin_wall_clock_across_dst(moment: str, inside: bool) -> None:
    assert in_window(at(moment), "Fri 18:00", "Mon 06:00", BERLIN) is inside


def test_window_inside_one_week_and_the_time_helpers() -> None:
    wednesday_noon = at("2026-03-25T11:00:00+00:00")  # 12:00 in Berlin
    assert in_window(wednesday_noon, "Wed 09:00", "Wed 17:00", BERLIN)
    assert not in_window(wednesday_noon, "Wed 13:00", "Wed 17:00", BERLIN)
    assert weekday(wednesday_noon, "Pacific/Auckland") == "Thu"
    assert hour(wednesday_noon, BERLIN) == 12


def test_a_freeze_rule_denies_with_its_id_and_reason() -> None:
    policy = parse_policy(
        "rules:\n"
        "  - id: freeze\n"
        "    point: pre_deploy\n"
        '    when: in_window(time, "Fri 18:00", "Mon 06:00", "Europe/Berlin")\n'
        "    outcome: deny\n"
        "    reason: weekend freeze\n"
    )
    saturday = evaluate(policy, Point.PRE_DEPLOY, {"time": "2026-03-28T12:00:00Z"})
    assert saturday.outcome == Outcome.DENY
    assert [(f.rule_id, f.reason) for f in saturday.fired] == [("freeze", "weekend freeze")]
    tuesday = evaluate(policy, Point.PRE_DEPLOY, {"time": "2026-03-31T12:00:00Z"})
    assert tuesday.outcome == Outcome.ALLOW


def test_a_rule_failing_at_evaluation_denies_naming_the_error() -> None:
    policy = parse_policy(
        "rules:\n"
        "  - {id: budget, point: pre_deploy, when: 'deploys_today[service] >= 3',"
        " outcome: approve, risk: low, reason: budget}\n"
        "  - {id: zone, point: pre_deploy, when: 'hour(time, \"Mars/Base\") > 3',"
        " outcome: allow, reason: zone}\n"
    )
    decision = evaluate(policy, Point.PRE_DEPLOY, {"service": "api", "deploys_today": {}})
    assert decision.outcome == Outcome.DENY
    assert [f.rule_id for f in decision.fired] == ["budget", "zone"]
    assert all("could not be evaluated" in f.reason for f in decision.fired)


def test_input_refused_when_not_documented() -> None:
    with pytest.raises(InputError, match="unknown input names"):
        policy_input({"lables": []})
    with pytest.raises(InputError, match="RFC 3339"):
        policy_input({"time": "friday"})
    with pytest.raises(InputError, match="offset"):
        policy_input({"time": "2026-03-28T12:00:00"})
    now = datetime(2026, 1, 1, tzinfo=UTC)
    merged = policy_input({"diff": {"lines_added": 3}}, now)
    assert merged["diff"] == {"files": 0, "lines_added": 3, "lines_removed": 0, "paths": []}
    assert merged["time"] == now


def test_record_appends_a_verifiable_policy_entry() -> None:
    store = MemoryStore()
    policy = parse_policy(
        "rules:\n"
        "  - {id: hi, point: pre_merge, when: '\"auth\" in labels', outcome: approve,"
        " risk: high, reason: auth needs a look}\n"
    )
    decision = evaluate(policy, Point.PRE_MERGE, {"labels": ["auth"]})
    store.append_audit("gate", None, "taskyard", {"n": 1}, 1.0)
    entry = record(store, decision, Point.PRE_MERGE, "idea-7", 2.0)
    assert entry.kind == "policy"
    assert entry.data == {
        "point": "pre_merge",
        "subject": "idea-7",
        "outcome": "approve",
        "risk": "high",
        "fired": [{"rule": "hi", "outcome": "approve", "reason": "auth needs a look"}],
    }
    entries = store.audit_entries()
    assert [e.kind for e in entries] == ["gate", "policy"]
    assert verify_chain(entries) == []
