"""Queueing an automated message: a row in the outbox, in the caller's transaction.

``queue`` inserts the row unique on its ``dedupe_key`` (what caused it), so a replayed event, a
retried task or a second beat process inserts nothing and sends nothing. The send task is
published only after the transaction commits (a rolled-back decision sends nothing), on the bulk
send queue for bulk triggers (domain.replies.BULK); if that publish is lost, the outbox sweeper
publishes the row again.

One after the other: the order system's messages to one customer (domain.replies.ORDER_SEQUENCE:
the welcome and every order step) reach them in the order they were queued. The outbound worker
claims such a row only when no older one of the same contact, or of the same order, is still
``queued`` or ``sending`` (``waits_behind``); the row held back stays ``queued``. When the older
one ends (sent, failed, blocked, cancelled), ``release_next`` publishes the next one waiting, and
the outbox sweeper publishes it again if that publish was lost. So neither a retry nor a faster
parallel worker lets "payment verified" reach the customer before "your order is being
processed". Which steps get a message at all is still pipeline/orders.py's rule (no earlier step
after a later one was known).
"""

from __future__ import annotations

from functools import partial
from typing import Any

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.orm import Session

from domain.replies import BULK, ORDER_SEQUENCE
from models import OutboundMessage
from models.base import utcnow
from models.db import dialect_insert
from models.outbox import CANCELLED, QUEUED, SENDING
from queueing import publish
from queueing.after_commit import publish_after_commit

_PENDING_KEY = "outbound_to_publish"
_PENDING_BULK_KEY = "outbound_bulk_to_publish"


def queue(
    session: Session,
    *,
    dedupe_key: str,
    trigger: str,
    contact_id: int,
    channel_id: int | None,
    text: str,
    template: dict[str, Any] | None = None,
    order_id: int | None = None,
    broadcast_id: int | None = None,
    body: dict[str, Any] | None = None,
    media_file_id: int | None = None,
    sender_agent: str | None = None,
) -> int | None:
    """Add a message to the outbox; returns its id, or None if that cause already queued one.

    ``channel_id`` is the number it goes out through (None: the settings channel): a reply's is
    its conversation's, an order message's its order's (pipeline/channels.py). ``body``: a rich
    message already checked (pipeline/rich_messages.py), sent instead of ``text``. ``sender_agent``:
    the agent who wrote it, shown as its sender once sent."""
    now = utcnow()
    insert = dialect_insert(session.get_bind().dialect.name)
    outbound_id = session.scalar(
        insert(OutboundMessage)
        .values(
            dedupe_key=dedupe_key,
            trigger=trigger,
            contact_id=contact_id,
            channel_id=channel_id,
            order_id=order_id,
            broadcast_id=broadcast_id,
            sender_agent=sender_agent,
            text=text,
            template=template,
            body=body,
            media_file_id=media_file_id,
            state=QUEUED,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(OutboundMessage.id)
    )
    if outbound_id is not None:
        publish_send_after_commit(session, outbound_id, trigger)
    return outbound_id


def publish_send_after_commit(session: Session, outbound_id: int, trigger: str) -> None:
    """Publish the row's send task once the transaction commits, on the queue its trigger uses."""
    if trigger in BULK:
        send_bulk = partial(publish.send_outbound, bulk=True)
        publish_after_commit(session, _PENDING_BULK_KEY, outbound_id, send_bulk)
    else:
        publish_after_commit(session, _PENDING_KEY, outbound_id, publish.send_outbound)


def waits_behind(session: Session, row: OutboundMessage) -> bool:
    """Whether ``row`` must wait: an order message with an older one of its contact or order
    still queued or sending (see "One after the other" above)."""
    if row.trigger not in ORDER_SEQUENCE:
        return False
    same_customer = OutboundMessage.contact_id == row.contact_id
    if row.order_id is not None:
        same_customer = or_(same_customer, OutboundMessage.order_id == row.order_id)
    older = session.scalar(
        select(OutboundMessage.id)
        .where(
            same_customer,
            OutboundMessage.id < row.id,
            OutboundMessage.trigger.in_(ORDER_SEQUENCE),
            OutboundMessage.state.in_((QUEUED, SENDING)),
        )
        .limit(1)
    )
    return older is not None


def release_next(session: Session, ended: OutboundMessage) -> None:
    """``ended`` left queued/sending for good: publish, after commit, the next order message of its
    contact that waited behind it (the oldest still queued and due), if any."""
    if ended.trigger not in ORDER_SEQUENCE:
        return
    _release_next_of(session, ended.contact_id, ended.order_id)


def _release_next_of(session: Session, contact_id: int, order_id: int | None) -> None:
    same_customer = OutboundMessage.contact_id == contact_id
    if order_id is not None:
        same_customer = or_(same_customer, OutboundMessage.order_id == order_id)
    waiting = session.execute(
        select(OutboundMessage.id, OutboundMessage.trigger)
        .where(
            same_customer,
            OutboundMessage.state == QUEUED,
            OutboundMessage.trigger.in_(ORDER_SEQUENCE),
            # One still waiting for its own retry has its countdown task; it releases the rest.
            OutboundMessage.next_attempt_at <= utcnow(),
        )
        .order_by(OutboundMessage.id)
        .limit(1)
    ).first()
    if waiting is not None:
        publish_send_after_commit(session, waiting.id, waiting.trigger)


def cancel_queued(session: Session, *where: ColumnElement[bool], why: str | None = None) -> int:
    """Cancel the queued rows matching ``where`` (with ``why`` as their error, when given); a row
    a sender has already claimed goes out. Returns how many were cancelled."""
    values: dict[str, Any] = {"state": CANCELLED, "updated_at": utcnow()}
    if why is not None:
        values["error"] = {"message": why}
    cancelled = session.execute(
        update(OutboundMessage)
        .where(OutboundMessage.state == QUEUED, *where)
        .values(**values)
        .returning(OutboundMessage.contact_id, OutboundMessage.order_id, OutboundMessage.trigger)
    ).all()
    # Order messages that waited behind a cancelled one may go now.
    for contact_id, order_id in {(c, o) for c, o, trigger in cancelled if trigger in ORDER_SEQUENCE}:
        _release_next_of(session, contact_id, order_id)
    return len(cancelled)
