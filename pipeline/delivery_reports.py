"""A status webhook for a message we sent: the receipt, and what it settles.

The receipt itself is kept by ``receipts``. Here it also confirms a send whose answer we never
got (the Cloud API echoes our outbox id), and a delivered follow-up triggers the order's
"was it what you expected?" message. The message's contact is locked before the message
(pipeline/locks.py), as when a send is recorded.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from domain.statuses import RANKS
from integrations.whatsapp.cloud import outbox_id_from_callback
from models import DeliveryStatus, Message, OutboundMessage
from models.conversations import OUTBOUND
from pipeline import locks, orders, receipts, sent_messages


def record_status(session: Session, payload: dict[str, Any], *, skip_known: bool = False) -> None:
    """Store the receipt and settle what it settles; with ``skip_known``, nothing if a receipt
    of this status for this message is stored already (WAHA repeats its acks)."""
    status = payload["status"]
    locks.contact_then_message(session, status["id"], lambda: contact_of(session, status))
    if skip_known and session.scalar(
        select(DeliveryStatus.id).where(
            DeliveryStatus.external_id == status["id"], DeliveryStatus.status == status["status"]
        )
    ):
        return
    receipts.record_status(session, payload)
    sent_messages.confirm_from_receipt(session, status)
    if RANKS.get(status["status"], 0) >= RANKS["delivered"]:
        orders.on_followup_delivered(session, status["id"])


def contact_of(session: Session, status: dict[str, Any]) -> int | None:
    """The contact a receipt is about, as our rows say: the outbox row it names, else our
    message with its id; None while neither exists (the receipt beat the send's record)."""
    outbound_id = outbox_id_from_callback(status.get("biz_opaque_callback_data"))
    if outbound_id is not None:
        contact_id = session.scalar(
            select(OutboundMessage.contact_id).where(OutboundMessage.id == outbound_id)
        )
        if contact_id is not None:
            return contact_id
    return session.scalar(
        select(Message.contact_id)
        .where(Message.external_id == status["id"], Message.direction == OUTBOUND)
        .limit(1)
    )
