"""The hours of the day in which a customer usually writes to us, and the next such hour.

A customer's messages are counted per local hour (TIMEZONE) in 24 buckets. An hour is "usual"
once the customer has written at least ``MIN_MESSAGES`` times and that hour holds at least
``USUAL_SHARE`` of them: a nudge sent then is read, one sent at 3 a.m. to a lunch-time writer
is buried. With fewer messages nothing is known and the plain delay stands.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

HOURS = 24
MIN_MESSAGES = 5
USUAL_SHARE = 0.1


def counted(counts: list[int] | None, moment: datetime, zone: ZoneInfo) -> list[int]:
    """``counts`` with one more message at ``moment``'s local hour (a new list)."""
    updated = list(counts) if counts and len(counts) == HOURS else [0] * HOURS
    updated[moment.astimezone(zone).hour] += 1
    return updated


def usual_hours(counts: list[int] | None) -> frozenset[int]:
    """The local hours in which the customer usually writes; empty while too little is known."""
    if not counts or len(counts) != HOURS:
        return frozenset()
    total = sum(counts)
    if total < MIN_MESSAGES:
        return frozenset()
    return frozenset(hour for hour, n in enumerate(counts) if n >= USUAL_SHARE * total)


def at_usual_hour(candidate: datetime, latest: datetime, hours: frozenset[int], zone: ZoneInfo) -> datetime:
    """The first moment from ``candidate`` that falls in a usual hour, if it is no later than
    ``latest``; else ``candidate`` itself (the nudge goes when it would have anyway)."""
    if not hours or candidate.astimezone(zone).hour in hours:
        return candidate
    local = candidate.astimezone(zone).replace(minute=0, second=0, microsecond=0)
    for step in range(1, HOURS + 1):
        # From the start of the local hour, in absolute time (a DST day has 23 or 25 hours).
        moment = (local.astimezone(UTC) + timedelta(hours=step)).astimezone(zone)
        if moment.astimezone(UTC) > latest:
            break
        if moment.hour in hours:
            return moment.astimezone(UTC)
    return candidate
