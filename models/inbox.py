"""The inbox: every accepted webhook event, committed before the producer answers 2xx."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, utcnow
from models.types import BigId

PENDING, PROCESSED, FAILED = "pending", "processed", "failed"
# An event for a number that is no channel of ours (or a disabled one): kept, never processed.
UNKNOWN_CHANNEL = "unknown_channel"


class InboxEvent(Base):
    """One event from one source, unique on the source's own id so replays insert nothing."""

    __tablename__ = "inbox_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    source: Mapped[str] = mapped_column(String(16))  # whatsapp | waha | orders
    kind: Mapped[str] = mapped_column(String(40))  # message | status | order.created | ...
    dedupe_key: Mapped[str] = mapped_column(String(255))
    payload: Mapped[dict[str, Any]]
    occurred_at: Mapped[datetime | None]
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    enqueued_at: Mapped[datetime] = mapped_column(default=utcnow)
    state: Mapped[str] = mapped_column(String(16), default=PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    processed_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        UniqueConstraint("source", "dedupe_key"),
        # The sweeper's scan: only pending rows are indexed, so its cost follows the backlog.
        Index(
            "ix_inbox_events_pending",
            "enqueued_at",
            postgresql_where=text("state = 'pending'"),
            sqlite_where=text("state = 'pending'"),
        ),
    )
