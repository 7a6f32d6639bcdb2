"""What the agent may see of a context fetcher's answer: cleaned, and as of the trigger.

`screen(name, data, cutoff, payload)` runs on every answer before it is written to `context/`:

- every string goes through `taskyard.util.untrusted.clean_json` (hidden text out);
- comments and messages written or edited after `cutoff` are left out, and the answer says
  how many: `"left_out": {"count": N, "reason": "…"}`. A comment edited after the trigger
  is one the person who triggered the task never saw: someone may have swapped in
  instructions once they knew an agent would read it. A comment without any timestamp is
  kept; one whose timestamp cannot be read is left out. When the payload names the
  triggering comment or message, every other one stamped at the very cutoff is left out too
  (GitHub stamps whole seconds: a bot could answer the trigger within its second).
- the title and body of the issue or pull request itself (`github.issue`, `github.pr`,
  `linear.issue`) are the signed payload's when it carries the same object (same number or
  id) and they differ: the platforms give no edit time for a body, and an issue's author
  could rewrite it right after someone asked an agent to look at it. The answer says so:
  `"as_of_trigger": {"fields": ["body"], "reason": "…"}`.

The cutoff (`trigger_time`) is the platform's own time of the triggering event when the signed
payload carries one (the triggering comment's `updated_at`, a review's `submitted_at`, a Linear
`updatedAt`/`createdAt`, a Slack message's `ts`), so it compares with the comments' timestamps
on the same clock and the triggering comment itself is kept; else the time taskyard received
the delivery.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from taskyard.platforms.base import JSONObject
from taskyard.util.paths import dig
from taskyard.util.untrusted import clean_json

Stamps = Callable[[Mapping[str, Any]], tuple[Any, ...]]

# The payload paths that give the triggering event's own time, per source, first found wins.
_TRIGGER_PATHS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "github": (
            "comment.updated_at",
            "review.submitted_at",
            "issue.updated_at",
            "pull_request.updated_at",
        ),
        "linear": ("data.editedAt", "data.updatedAt", "createdAt", "webhookTimestamp"),
        "slack": ("event.event_ts", "event.ts", "event_time"),
    }
)


# Per list fetcher: where the payload names the triggering comment or message, and the key
# that names it in the list.
_TRIGGER_ITEM: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        "github.comments": ("comment.id", "id"),
        "linear.issue": ("data.id", "id"),
        "slack.thread": ("event.ts", "ts"),
    }
)

# Per fetcher: where the signed payload holds the same object (matched by `key`), and the
# fields people write in it. The fetch is live; the payload is what it was at the trigger.
_SIGNED: Mapping[str, tuple[tuple[str, ...], str, tuple[str, ...]]] = MappingProxyType(
    {
        "github.pr": (("pull_request", "issue"), "number", ("title", "body")),
        "github.issue": (("issue", "pull_request"), "number", ("title", "body")),
        "linear.issue": (("data",), "id", ("title", "description")),
    }
)


def _edited_ts(message: Mapping[str, Any]) -> Any:
    edited = message.get("edited")
    return edited.get("ts") if isinstance(edited, Mapping) else None


# Per fetcher: the list of comments or messages, and the timestamps that say when each was
# written or last edited.
_LISTS: Mapping[str, tuple[str, Stamps]] = MappingProxyType(
    {
        "github.comments": ("comments", lambda c: (c.get("created_at"), c.get("updated_at"))),
        "linear.issue": ("comments", lambda c: (c.get("createdAt"), c.get("editedAt"))),
        "slack.thread": ("messages", lambda m: (m.get("ts"), _edited_ts(m))),
    }
)


def parse_time(value: Any) -> float | None:
    """Seconds since the epoch from an ISO 8601 text, a Slack `ts` ("1700000000.000100"), or a
    number (epoch seconds, or milliseconds when it is that large). None when unreadable."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        try:
            seconds = float(value)
        except ValueError:
            try:
                when = datetime.datetime.fromisoformat(value)
            except ValueError:
                return None
            if when.tzinfo is None:
                when = when.replace(tzinfo=datetime.UTC)
            return when.timestamp()
    else:
        return None
    if not math.isfinite(seconds):
        return None
    return seconds / 1000 if seconds > 1e11 else seconds


def trigger_time(source: str, payload: Mapping[str, Any], received_at: float) -> float:
    """When the triggering event happened, by the platform's clock if the payload says."""
    for path in _TRIGGER_PATHS.get(source, ()):
        when = parse_time(dig(payload, path))
        if when is not None:
            return when
    return received_at


def _after(stamps: tuple[Any, ...], cutoff: float, *, at_too: bool = False) -> bool:
    """Written or edited after the cutoff (`at_too`: or at it); an unreadable timestamp counts
    as after."""
    for stamp in stamps:
        if stamp is None:
            continue
        when = parse_time(stamp)
        if when is None or when > cutoff or (at_too and when == cutoff):
            return True
    return False


def _kept(item: Any, stamps: Stamps, cutoff: float, trigger: tuple[str, Any] | None) -> bool:
    """Whether a comment or message is as of the trigger. When the trigger's own item is
    known, every other one written or edited in the very same instant is left out too:
    GitHub's times are whole seconds, and a bot answering the trigger within that second
    would otherwise slip in."""
    if not isinstance(item, Mapping):
        return True
    if trigger is None or item.get(trigger[0]) == trigger[1]:
        return not _after(stamps(item), cutoff)
    return not _after(stamps(item), cutoff, at_too=True)


def _trigger_item(name: str, payload: Mapping[str, Any] | None) -> tuple[str, Any] | None:
    found = _TRIGGER_ITEM.get(name)
    if found is None or payload is None:
        return None
    path, key = found
    value = dig(payload, path)
    return None if value is None or isinstance(value, Mapping | list) else (key, value)


def _as_of(
    name: str, data: JSONObject, cutoff: float, payload: Mapping[str, Any] | None = None
) -> JSONObject:
    found = _LISTS.get(name)
    items = data.get(found[0]) if found else None
    if found is None or not isinstance(items, list):
        return data
    key, stamps = found
    trigger = _trigger_item(name, payload)
    kept = [i for i in items if _kept(i, stamps, cutoff, trigger)]
    if len(kept) == len(items):
        return data
    when = datetime.datetime.fromtimestamp(cutoff, datetime.UTC).isoformat(timespec="seconds")
    left_out = {
        "count": len(items) - len(kept),
        "reason": f"{key} written or edited after the event that started this task ({when})",
    }
    return {**data, key: kept, "left_out": left_out}


def _as_signed(name: str, data: JSONObject, payload: Mapping[str, Any]) -> JSONObject:
    found = _SIGNED.get(name)
    if found is None:
        return data
    places, key, fields = found
    mine = data.get(key)
    signed = next(
        (
            p
            for p in (payload.get(place) for place in places)
            if isinstance(p, Mapping) and mine is not None and p.get(key) == mine
        ),
        None,
    )
    if signed is None:
        return data
    changed = [
        f for f in fields if isinstance(signed.get(f), str | None) and signed.get(f) != data.get(f)
    ]
    if not changed:
        return data
    note = {"fields": changed, "reason": "edited after the event that started this task"}
    return {**data, **{f: signed.get(f) for f in changed}, "as_of_trigger": note}


def screen(
    name: str, data: JSONObject, cutoff: float, payload: Mapping[str, Any] | None = None
) -> JSONObject:
    """The answer of fetcher `name` as the agent may see it (see the module's doc);
    `payload`: the triggering event's signed body."""
    if payload is not None:
        data = _as_signed(name, data, payload)
    cleaned: JSONObject = clean_json(data)
    return _as_of(name, cleaned, cutoff, payload)
