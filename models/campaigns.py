"""Where conversations come from and what Meta is told about them: tracked links and their clicks,
the touches (an ad, a link, a broadcast) that brought a contact in, and the Conversions API
outbox (pipeline/attribution.py, pipeline/conversions.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy import text as sql
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, utcnow
from models.types import BigId

AD, LINK, BROADCAST, ORGANIC = "ad", "link", "broadcast", "organic"


class TrackedLink(Base):
    """A short link ``/r/{code}``: it redirects to ``url`` and nowhere else."""

    __tablename__ = "tracked_links"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    url: Mapped[str] = mapped_column(Text)
    utm_source: Mapped[str] = mapped_column(String(128))
    utm_medium: Mapped[str] = mapped_column(String(128))
    utm_campaign: Mapped[str] = mapped_column(String(128))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LinkClick(Base):
    """One visit of ``/r/{code}``; ``conversation_id`` once a message carrying the code came."""

    __tablename__ = "link_clicks"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    link_id: Mapped[int] = mapped_column(ForeignKey("tracked_links.id"))
    clicked_at: Mapped[datetime] = mapped_column(default=utcnow)
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id"))

    __table_args__ = (Index("ix_link_clicks_link_time", "link_id", "clicked_at"),)


class Touch(Base):
    """A campaign reached a contact in a conversation (once per conversation and campaign)."""

    __tablename__ = "touches"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), index=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"))
    kind: Mapped[str] = mapped_column(String(16))  # ad | link | broadcast
    # The campaign's key ("ad:<source_id>", "link:<utm_campaign>", "broadcast:<id>") and its
    # name as the team knows it (the ad's headline, the link's utm_campaign, the broadcast's label).
    campaign: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(255))
    utm_source: Mapped[str | None] = mapped_column(String(128))
    utm_medium: Mapped[str | None] = mapped_column(String(128))
    ctwa_clid: Mapped[str | None] = mapped_column(String(255))
    occurred_at: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("conversation_id", "campaign"),)


QUEUED, SENT, FAILED = "queued", "sent", "failed"


class ConversionEvent(Base):
    """One event for Meta's Conversions API, written with what caused it and unique on its
    ``event_id`` (Meta's own dedupe key too), so no cause is told twice."""

    __tablename__ = "conversion_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(191), unique=True)  # lead-<conv> | purchase-<order>
    event_name: Mapped[str] = mapped_column(String(32))  # LeadSubmitted | Purchase
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"), index=True)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"))
    payload: Mapped[dict[str, Any]]  # the event as sent (one item of "data")
    state: Mapped[str] = mapped_column(String(16), default=QUEUED)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        Index(
            "ix_conversion_events_due",
            "next_attempt_at",
            postgresql_where=sql("state = 'queued'"),
            sqlite_where=sql("state = 'queued'"),
        ),
    )
