"""WhatsApp's customer-service window: free-form messages are allowed until 24 h after the
customer last wrote; outside it only approved templates may be sent."""

from __future__ import annotations

from datetime import datetime, timedelta

SERVICE_WINDOW = timedelta(hours=24)


def closes_at(last_inbound_at: datetime) -> datetime:
    return last_inbound_at + SERVICE_WINDOW


def is_open(last_inbound_at: datetime | None, now: datetime) -> bool:
    return last_inbound_at is not None and now < closes_at(last_inbound_at)
