"""Queueing the Conversions API events of ad-originated conversations (docs/campaigns.md).

``LeadSubmitted`` when a conversation starts from a Click-to-WhatsApp ad (its first message
carries the ``ctwa_clid``); ``Purchase`` when an order of such a conversation is paid. Each is a
row of the ``conversion_events`` outbox, unique on its ``event_id``, written in the event's
transaction and published after the commit (workers/conversions.py sends it, the sweeper in
schedules/conversions.py retries it). Nothing is queued while META_CONVERSIONS_ENABLED is off.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from integrations import meta_conversions
from models import Order
from models.base import utcnow
from models.campaigns import FAILED, QUEUED, SENT, ConversionEvent, Touch
from models.db import dialect_insert
from pipeline import attribution
from queueing import publish
from queueing.after_commit import publish_after_commit
from settings import settings

LEAD, PURCHASE = "LeadSubmitted", "Purchase"


def queue_lead(session: Session, touch: Touch) -> None:
    """The ad's click became a conversation."""
    if touch.ctwa_clid is None:
        return
    _queue(session, LEAD, f"lead-{touch.conversation_id}", touch, None, touch.occurred_at)


def queue_purchase(session: Session, order: Order) -> None:
    """A paid order of an ad-originated conversation. Meta requires a Purchase's value and
    currency, so it waits for the event that brings the total (the payment may come first)."""
    if not settings.meta_conversions_enabled or order.conversation_id is None:
        return
    if order.paid_at is None or order.total is None or order.stage == "cancelled":
        return
    touch = attribution.ad_touch_of(session, order.conversation_id)
    if touch is None:
        return
    value = {"currency": order.currency or settings.default_currency, "value": float(order.total)}
    _queue(session, PURCHASE, f"purchase-{order.external_id}", touch, order, order.paid_at, **value)


def _queue(
    session: Session, name: str, event_id: str, touch: Touch, order: Order | None, at: datetime, **custom: Any
) -> None:
    if not settings.meta_conversions_enabled:
        return
    payload = meta_conversions.event(
        name, event_id, int(at.timestamp()), settings.whatsapp_waba_id, touch.ctwa_clid or "", **custom
    )
    now = utcnow()
    inserted = session.scalar(
        dialect_insert(session.get_bind().dialect.name)(ConversionEvent)
        .values(
            event_id=event_id,
            event_name=name,
            conversation_id=touch.conversation_id,
            order_id=order.id if order else None,
            payload=payload,
            next_attempt_at=now,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["event_id"])
        .returning(ConversionEvent.id)
    )
    if inserted is not None:
        publish_after_commit(session, "conversion_events", inserted, publish.send_conversions)


# Sending: a claim moves the row's next attempt a lease ahead (committed before the request), so
# a worker that dies mid-send leaves it to the sweeper once the lease is over; the resend is safe,
# Meta deduplicates on event_id.
LEASE_SECONDS = 120


def claim(session: Session, event_row_id: int) -> dict[str, Any] | None:
    """The event's payload if it is due and now ours for a lease, else None."""
    now = utcnow()
    return session.scalar(
        update(ConversionEvent)
        .where(
            ConversionEvent.id == event_row_id,
            ConversionEvent.state == QUEUED,
            ConversionEvent.next_attempt_at <= now,
        )
        .values(next_attempt_at=now + timedelta(seconds=LEASE_SECONDS), updated_at=now)
        .returning(ConversionEvent.payload)
    )


def settle(session: Session, event_row_id: int, error: str | None, transient: bool) -> str:
    """Record how the attempt went: sent, queued again after a backoff, or failed for good."""
    row = session.get_one(ConversionEvent, event_row_id, with_for_update=True)
    now = utcnow()
    row.attempts += 1
    row.updated_at = now
    if error is None:
        row.state, row.sent_at, row.last_error = SENT, now, None
    elif transient and row.attempts < settings.meta_conversions_max_attempts:
        # 30 s, 1 min, 2 min ... at most an hour: Meta's outages are minutes, attribution lasts 7 days.
        wait = settings.meta_conversions_retry_base_seconds * 2 ** (row.attempts - 1)
        row.next_attempt_at = now + timedelta(seconds=min(wait, 3600))
        row.last_error = error
    else:
        row.state, row.last_error = FAILED, error
    return row.state


def due(session: Session, limit: int = 500) -> list[int]:
    """Queued events whose next attempt is due (the sweeper publishes them)."""
    return list(
        session.scalars(
            select(ConversionEvent.id)
            .where(ConversionEvent.state == QUEUED, ConversionEvent.next_attempt_at <= utcnow())
            .order_by(ConversionEvent.next_attempt_at)
            .limit(limit)
        )
    )
