"""When the business is open (``BUSINESS_HOURS``), read in the business's own time zone.

The spec is a list of days followed by time ranges::

    mon-fri 08:00-17:00, sat 08:00-13:00
    mon-fri 08:00-12:00 13:00-17:00          (a lunch break: several ranges per day)
    sat,sun 10:00-14:00; daily 00:00-24:00; sen-jum 08.00-17.00

Days are English (mon..sun, full names too), Indonesian (sen, sel, rab, kam, jum, sab, min and
full names) or ``daily``/``weekdays``/``weekends``; ranges like ``fri-mon`` wrap over the week.
Times take ":" or "." ("08.00" is how Indonesians write it); ``24:00`` ends the day, and a range
that ends before it starts runs past midnight ("fri 20:00-02:00" is open early on Saturday).
Days not mentioned are closed; ``sun closed`` may say so explicitly. An empty spec or ``always``
is open all the time. A spec that cannot be read is a ``ValueError`` naming the bad part, raised
when the worker starts rather than a wrong routing decision at night.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time
from zoneinfo import ZoneInfo

Interval = tuple[time, time]  # [start, end); an end of time.max stands for 24:00
END_OF_DAY = time.max


@dataclass(frozen=True)
class BusinessHours:
    """Open intervals for each weekday, index 0 = Monday, sorted by start."""

    days: tuple[tuple[Interval, ...], ...]


ALWAYS = BusinessHours(tuple(((time.min, END_OF_DAY),) for _ in range(7)))

_DAY_NAMES = {
    0: ("mon", "monday", "sen", "senin"),
    1: ("tue", "tues", "tuesday", "sel", "selasa"),
    2: ("wed", "wednesday", "rab", "rabu"),
    3: ("thu", "thur", "thurs", "thursday", "kam", "kamis"),
    4: ("fri", "friday", "jum", "jumat", "jumaat"),
    5: ("sat", "saturday", "sab", "sabtu"),
    6: ("sun", "sunday", "min", "minggu", "ahad"),
}
_DAYS = {name: day for day, names in _DAY_NAMES.items() for name in names}
_GROUPS = {
    "daily": tuple(range(7)),
    "everyday": tuple(range(7)),
    "weekdays": tuple(range(5)),
    "weekends": (5, 6),
    "weekend": (5, 6),
}
_CLOSED = frozenset({"closed", "tutup", "libur"})
_TIME = r"(\d{1,2})(?:[:.](\d{2}))?"  # 08:00, 8.00 or just 8
_RANGE = re.compile(rf"^{_TIME}-{_TIME}$")


def _days(token: str) -> tuple[int, ...] | None:
    if token in _GROUPS:
        return _GROUPS[token]
    if token in _DAYS:
        return (_DAYS[token],)
    first, dash, last = token.partition("-")
    if dash and first in _DAYS and last in _DAYS:
        start, end = _DAYS[first], _DAYS[last]
        return tuple((start + i) % 7 for i in range((end - start) % 7 + 1))
    return None


def _time(hours: str, minutes: str | None, token: str, *, end: bool) -> time:
    h, m = int(hours), int(minutes or 0)
    if end and (h, m) == (24, 0):
        return END_OF_DAY
    if h > 23 or m > 59:
        raise ValueError(f"business hours: {h:02d}:{m:02d} in {token!r} is not a time of day")
    return time(h, m)


def _range(token: str) -> tuple[time, time] | None:
    match = _RANGE.match(token)
    if not match:
        return None
    start = _time(match[1], match[2], token, end=False)
    end = _time(match[3], match[4], token, end=True)
    if start == end:
        raise ValueError(f"business hours: {token!r} is an empty range (use 00:00-24:00 for all day)")
    return start, end


def _add(opening: list[list[Interval]], day: int, start: time, end: time) -> None:
    if end > start:
        opening[day].append((start, end))
        return
    # Past midnight: the rest of this day and the start of the next.
    opening[day].append((start, END_OF_DAY))
    if end != time.min:
        opening[(day + 1) % 7].append((time.min, end))


def parse(spec: str) -> BusinessHours:
    """Read a ``BUSINESS_HOURS`` spec; see the module docstring for the grammar."""
    text = re.sub(r"\s*[-\u2013\u2014]\s*", "-", spec.strip().lower())
    if text in ("", "always", "24/7"):
        return ALWAYS
    opening: list[list[Interval]] = [[] for _ in range(7)]
    days: tuple[int, ...] = ()
    written: list[str] = []  # the current days as the spec spells them, for error messages
    ranged = True  # the current days already have hours (or "closed"): a day starts a new list
    for token in re.split(r"[\s,;]+", text):
        if not token:
            continue
        named = _days(token)
        if named is not None:
            days, written = (named, [token]) if ranged else (days + named, [*written, token])
            ranged = False
            continue
        interval = _range(token)
        if interval is None and token not in _CLOSED:
            raise ValueError(
                f"business hours: {token!r} in {spec!r} is neither a day (mon..sun, sen..min) "
                "nor a time range like 08:00-17:00"
            )
        if not days:
            raise ValueError(f"business hours: {token!r} comes before any day in {spec!r}")
        ranged = True
        if interval:
            for day in days:
                _add(opening, day, *interval)
    if not ranged:
        named = ",".join(written)
        raise ValueError(f"business hours: {named!r} has no hours in {spec!r} (say 'closed' if so)")
    return BusinessHours(tuple(tuple(sorted(intervals)) for intervals in opening))


def is_open(hours: BusinessHours, at: datetime, timezone: str) -> bool:
    """Is the business open at ``at`` (timezone-aware), judged on the clock in ``timezone``?"""
    if at.tzinfo is None:
        raise ValueError("business hours: a time without a time zone cannot be placed")
    local = at.astimezone(ZoneInfo(timezone))
    now = local.time()
    return any(
        start <= now and (now < end or end == END_OF_DAY) for start, end in hours.days[local.weekday()]
    )
