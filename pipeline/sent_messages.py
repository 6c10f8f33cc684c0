"""A message of ours went out: it joins the conversation, and what waits on it is settled.

``mark_sent`` is called by the outbound worker once the gateway accepted a send, and by the
status webhook when a receipt proves that a send we could not confirm did arrive: one given up as
unconfirmed, one still in flight, or one waiting for a retry after an error answer that was not
the whole truth (a proxy's 5xx after Meta accepted). A retry then finds the row sent and sends
nothing.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from domain.replies import RESPONDER_OF
from domain.senders import sender_of_trigger
from domain.statuses import RANKS
from integrations.whatsapp.cloud import outbox_id_from_callback
from models import OutboundMessage
from models.contacts import current_contact
from models.outbox import FAILED, QUEUED, SENDING, SENT
from pipeline import adaptive_followups, context, locks, orders, outbox

log = logging.getLogger(__name__)


def locked_with_contact(
    session: Session, outbound_id: int, contact_id: int | None = None
) -> OutboundMessage | None:
    """The outbox row, locked after its contact: recording a sent message changes the contact's
    conversation, which inbound messages change too under the same contact lock (taken first,
    as everywhere else, so no two paths wait on each other in opposite order). A caller that
    knows the row's ``contact_id`` (it never changes) saves a look-up."""
    if contact_id is None:
        contact_id = session.scalar(
            select(OutboundMessage.contact_id).where(OutboundMessage.id == outbound_id)
        )
    if contact_id is None:
        return None
    locks.contact(session, contact_id)
    return session.get(OutboundMessage, outbound_id, with_for_update=True)


def mark_sent(
    session: Session,
    row: OutboundMessage,
    external_id: str,
    sent_as: str,
    request: dict[str, Any],
    sent_at: datetime,
    warning: dict[str, Any] | None = None,
) -> None:
    """The row went out as ``external_id``: it joins the conversation and its receipts apply.
    ``warning``: how it went out other than it should have (kept as the row's error)."""
    contact = current_contact(session, row.contact_id)
    assert contact is not None
    message = context.record_outbound_message(
        session,
        contact,
        external_id=external_id,
        type=sent_as,
        text=row.text,
        payload=request,
        sent_at=sent_at,
        responder=RESPONDER_OF.get(row.trigger),
        channel_id=row.channel_id,
        sender_type=sender_of_trigger(row.trigger),
        sender_agent=row.sender_agent,
    )
    row.state, row.external_id, row.sent_as, row.message_id = SENT, external_id, sent_as, message.id
    row.sent_at = row.updated_at = sent_at
    row.error = warning
    if message.status_rank >= RANKS["delivered"]:
        orders.on_followup_delivered(session, external_id)
    adaptive_followups.after_our_message(session, contact, row, message)
    outbox.release_next(session, row)


def confirm_from_receipt(session: Session, status: dict[str, Any]) -> None:
    """A status webhook names our outbox row (``biz_opaque_callback_data = "outbox:<id>"``): a
    send we could not confirm did reach the gateway after all, even one queued for a retry."""
    outbound_id = outbox_id_from_callback(status.get("biz_opaque_callback_data"))
    if outbound_id is None:
        return
    row = locked_with_contact(session, outbound_id)
    if row is None or row.external_id is not None or row.state not in (QUEUED, SENDING, FAILED):
        return
    if row.state == QUEUED and row.attempts == 0:
        return  # never tried: no receipt can be about it
    sent_at = datetime.fromtimestamp(int(status["timestamp"]), UTC)
    mark_sent(session, row, status["id"], row.sent_as or "text", {}, sent_at)
    log.info("unconfirmed send confirmed by a status webhook", extra={"outbound_id": row.id})
