"""`Target.message_ts`: the Slack message an event is about (what `react` reacts to), in each
shape Slack delivers (Events API message, edited message, reaction, interaction, command)."""

from __future__ import annotations

from typing import Any

import pytest

from taskyard.actions.target import message_ts, target_from_event
from tests.unit.routing.events import event_for, slack_message


def test_a_top_level_message_is_its_own_thread_and_message() -> None:
    payload = slack_message(ts="1700000000.000100")
    target = target_from_event(event_for("slack", payload), payload)
    assert (target.thread_ts, target.message_ts) == ("1700000000.000100", "1700000000.000100")


def test_a_reply_is_the_reply_not_its_thread_root() -> None:
    payload = slack_message(ts="1700000000.000900", thread_ts="1700000000.000100")
    target = target_from_event(event_for("slack", payload), payload)
    assert (target.thread_ts, target.message_ts) == ("1700000000.000100", "1700000000.000900")


EDITED = {
    "event": {
        "type": "message",
        "subtype": "message_changed",
        "channel": "C1",
        "ts": "1700000050.000001",  # the edit's own event
        "message": {"type": "message", "text": "fixed typo", "ts": "1700000000.000100"},
        "previous_message": {"type": "message", "ts": "1700000000.000100"},
    }
}
REPLIED = {  # the parent of a thread, told that it has a reply
    "event": {
        "type": "message",
        "subtype": "message_replied",
        "channel": "C1",
        "ts": "1700000060.000001",
        "message": {"ts": "1700000000.000100", "thread_ts": "1700000000.000100"},
    }
}
REACTION = {
    "event": {
        "type": "reaction_added",
        "user": "U1",
        "reaction": "bug",
        "item": {"type": "message", "channel": "C1", "ts": "1700000000.000300"},
        "event_ts": "1700000070.000001",
    }
}
BUTTON = {
    "type": "block_actions",
    "channel": {"id": "C1"},
    "container": {"type": "message", "message_ts": "1700000000.000400", "channel_id": "C1"},
    "message": {"type": "message", "ts": "1700000000.000400", "text": "Approve?"},
}
SHORTCUT = {
    "type": "message_action",
    "channel": {"id": "C1"},
    "message": {"type": "message", "ts": "1700000000.000500", "thread_ts": "1700000000.000100"},
}
COMMAND = {"command": "/taskyard", "channel_id": "C1", "text": "triage"}


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (EDITED, "1700000000.000100"),
        (REPLIED, "1700000060.000001"),
        (REACTION, "1700000000.000300"),
        (BUTTON, "1700000000.000400"),
        (SHORTCUT, "1700000000.000500"),
        (COMMAND, None),
        ({"event": {"type": "app_home_opened"}}, None),
    ],
    ids=["edited", "replied", "reaction", "button", "shortcut", "command", "no-message"],
)
def test_the_message_each_delivery_is_about(payload: dict[str, Any], expected: str | None) -> None:
    assert message_ts(payload) == expected
