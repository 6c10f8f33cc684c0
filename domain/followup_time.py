"""When a delivery follow-up is due: the first FOLLOWUP_CRON time on the delivery date.

The cron expression is read in local time (TIMEZONE), so "0 10 * * *" means ten in the morning
in Jakarta whatever the server's clock says. With a cron that has no time on that date (say,
Mondays only), the follow-up goes at the first time after the date begins.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter


def followup_due(delivery_date: date, cron: str, timezone: str) -> datetime:
    day_start = datetime.combine(delivery_date, time.min, tzinfo=ZoneInfo(timezone))
    # croniter returns the first time strictly after its start: start just before midnight.
    due = croniter(cron, day_start - timedelta(seconds=1)).get_next(datetime)
    return due.astimezone(UTC)


def day_gone(due: datetime, timezone: str, now: datetime) -> bool:
    """Whether the local day a follow-up is due on is over: its text says the order arrives
    "today", so it is not sent on a later day (a due time earlier today still goes)."""
    zone = ZoneInfo(timezone)
    return due.astimezone(zone).date() < now.astimezone(zone).date()


def check_cron(cron: str) -> None:
    """Raise ValueError naming FOLLOWUP_CRON when it is not a valid cron expression."""
    if not croniter.is_valid(cron):
        raise ValueError(f"FOLLOWUP_CRON {cron!r} is not a valid cron expression")
