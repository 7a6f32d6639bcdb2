"""The helpers CEL rules call for time: the weekday and hour in a time zone, and whether a
moment is inside a weekly window such as a weekend freeze.

    in_window(time, "Fri 18:00", "Mon 06:00", "Europe/Berlin")

The window is read on the wall clock of its zone (zoneinfo), so it opens at 18:00 Berlin time
in summer and in winter alike, and a window that wraps the week's end (Fri → Mon) is handled.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_WEEK = 7 * 24 * 60


def local(time: datetime, zone: str) -> datetime:
    """`time` on the wall clock of `zone`; a naive time is taken as UTC."""
    if time.tzinfo is None:
        time = time.replace(tzinfo=UTC)
    try:
        return time.astimezone(ZoneInfo(zone))
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {zone!r}") from exc


def weekday(time: datetime, zone: str) -> str:
    """ "Mon" … "Sun" in `zone`."""
    return DAYS[local(time, zone).weekday()]


def hour(time: datetime, zone: str) -> int:
    return local(time, zone).hour


def in_window(time: datetime, start: str, end: str, zone: str) -> bool:
    """Whether `time` falls in the weekly window from `start` up to (not including) `end`,
    each "Ddd HH:MM" on the wall clock of `zone`."""
    at = local(time, zone)
    now = at.weekday() * 24 * 60 + at.hour * 60 + at.minute
    opens, closes = _minute_of_week(start), _minute_of_week(end)
    if opens <= closes:
        return opens <= now < closes
    return now >= opens or now < closes  # the window wraps the week's end


def _minute_of_week(text: str) -> int:
    try:
        day, clock = text.split()
        hours, minutes = (int(part) for part in clock.split(":"))
        index = DAYS.index(day.capitalize())
    except ValueError:
        raise ValueError(f"window bound {text!r} is not 'Ddd HH:MM' (e.g. 'Fri 18:00')") from None
    if not (0 <= hours < 24 and 0 <= minutes < 60):
        raise ValueError(f"window bound {text!r} is not a time of day")
    return (index * 24 * 60 + hours * 60 + minutes) % _WEEK
