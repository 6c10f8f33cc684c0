"""Delivery receipts (sent, delivered, read, failed) for the messages we sent.

A receipt is always stored, then applied to its message if that row exists. A receipt can beat
its own message row (the gateway's webhook arrives before the sending worker commits the wamid);
``context.record_outbound_message`` applies the stored receipts when the row appears. Both sides
hold the same per-wamid lock (taken after the contact, pipeline/locks.py), so neither can miss
the other.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from domain.statuses import RANKS
from models import DeliveryStatus, Message
from models.conversations import OUTBOUND
from pipeline import live


def record_status(session: Session, payload: dict[str, Any]) -> None:
    """Store one Cloud API status (as the producer put it in the inbox) and apply it. The caller
    holds the message's lock (``delivery_reports``)."""
    status = payload["status"]
    external_id = status["id"]
    session.add(
        DeliveryStatus(
            external_id=external_id,
            status=status["status"],
            occurred_at=datetime.fromtimestamp(int(status["timestamp"]), UTC),
            errors=status.get("errors"),
        )
    )
    session.flush()
    apply_recorded(session, external_id)


def apply_recorded(session: Session, external_id: str) -> None:
    """Move the message to the highest-ranked receipt stored for it; never backwards."""
    receipts = session.scalars(select(DeliveryStatus).where(DeliveryStatus.external_id == external_id)).all()
    known = [r for r in receipts if r.status in RANKS]
    if not known:
        return
    best = max(known, key=lambda r: (RANKS[r.status], r.occurred_at))
    error = best.errors[0] if best.status == "failed" and best.errors else None
    moved = session.execute(
        update(Message)
        .where(
            Message.external_id == external_id,
            Message.direction == OUTBOUND,
            Message.status_rank < RANKS[best.status],
        )
        .values(status=best.status, status_rank=RANKS[best.status], status_at=best.occurred_at, error=error)
        .returning(Message.id, Message.conversation_id, Message.status)
    ).all()
    live.status_changed(session, moved)  # the inbox's delivery ticks, after the commit
