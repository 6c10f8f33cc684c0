"""Orders from the order system, and the delivery follow-up each one may be due."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Date, ForeignKey, Index, Numeric, String, text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, utcnow
from models.types import BigId

# How far an order has gone. Events can arrive in any order, so the stage only moves forward;
# a cancellation is final.
STAGES = ("created", "paid", "shipped", "received")
CANCELLED = "cancelled"


class Order(Base):
    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    external_id: Mapped[str] = mapped_column(String(128), unique=True)  # the order system's id
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), index=True)
    deal_id: Mapped[int | None] = mapped_column(ForeignKey("deals.id"))
    # The number its messages go out through (the latest event's channel); NULL: the settings channel.
    channel_id: Mapped[int | None] = mapped_column(ForeignKey("channels.id"))
    stage: Mapped[str] = mapped_column(String(16), default="created")
    # When each step happened, by the order system's clock; set once, by the first event of it.
    ordered_at: Mapped[datetime | None]
    paid_at: Mapped[datetime | None]
    shipped_at: Mapped[datetime | None]
    received_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    total: Mapped[Decimal | None] = mapped_column(Numeric(18, 2))
    currency: Mapped[str | None] = mapped_column(String(8))
    estimated_delivery_date: Mapped[date | None] = mapped_column(Date)
    courier: Mapped[str | None] = mapped_column(String(64))
    tracking_number: Mapped[str | None] = mapped_column(String(128))
    # The event time the details above come from: an older event never overwrites them.
    details_as_of: Mapped[datetime | None]
    # Per detail (total, courier, ...): the time of the event that set it, so the newest event
    # that carries a detail decides it, whatever order the events are processed in.
    detail_times: Mapped[dict[str, Any] | None]
    # Attribution, decided once at the order's first event (pipeline/attribution.py): the
    # conversation it came of (within OUTCOME_ORDER_WINDOW_DAYS), and the contact's first touch and
    # last touch before it (Touch.campaign keys; NULL: organic).
    attributed_at: Mapped[datetime | None]
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id"))
    first_campaign: Mapped[str | None] = mapped_column(String(255))
    last_campaign: Mapped[str | None] = mapped_column(String(255))
    # The public tracker page (api/tracker.py): how often it was opened, and when last.
    tracker_views: Mapped[int] = mapped_column(default=0, server_default="0")
    tracker_viewed_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


# A follow-up that could not go out on its day (the date was already past when the order
# shipped or the date was learned, or beat was away all day) is "missed": its text says "today".
SCHEDULED, FIRED, MISSED = "scheduled", "fired", "missed"


class DeliveryFollowup(Base):
    """When to ask whether an order arrived. Beat claims due rows through the partial index, so a
    tick costs the same with a million follow-ups in the future as with ten."""

    __tablename__ = "delivery_followups"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), unique=True)
    due_at: Mapped[datetime]
    state: Mapped[str] = mapped_column(
        String(16), default=SCHEDULED
    )  # scheduled | fired | cancelled | missed
    fired_at: Mapped[datetime | None]
    answered_at: Mapped[datetime | None]  # the customer wrote within FOLLOWUP_EFFECT_HOURS of it
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        Index(
            "ix_delivery_followups_due",
            "due_at",
            postgresql_where=text("state = 'scheduled'"),
            sqlite_where=text("state = 'scheduled'"),
        ),
    )


class OrderItem(Base):
    """A line of an order, as the newest event that listed the order's ``items`` gave it: what
    the order becomes in Odoo (a ``sale.order`` line each). The producer's limits for ``items``
    come from these columns."""

    __tablename__ = "order_items"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    position: Mapped[int]
    sku: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(255))
    qty: Mapped[Decimal] = mapped_column(Numeric(12, 3))
    price: Mapped[Decimal] = mapped_column(Numeric(18, 2))
