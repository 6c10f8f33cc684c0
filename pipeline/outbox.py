"""Queueing an automated message: a row in the outbox, in the caller's transaction.

``queue`` inserts the row unique on its ``dedupe_key`` (what caused it), so a replayed event, a
retried task or a second beat process inserts nothing and sends nothing. The send task is
published only after the transaction commits (a rolled-back decision sends nothing); if that
publish is lost, the outbox sweeper publishes the row again.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, update
from sqlalchemy.orm import Session

from models import OutboundMessage
from models.base import utcnow
from models.db import dialect_insert
from models.outbox import CANCELLED, QUEUED
from queueing import publish
from queueing.after_commit import publish_after_commit

_PENDING_KEY = "outbound_to_publish"


def queue(
    session: Session,
    *,
    dedupe_key: str,
    trigger: str,
    contact_id: int,
    text: str,
    template: dict[str, Any] | None = None,
    order_id: int | None = None,
    broadcast_id: int | None = None,
) -> int | None:
    """Add a message to the outbox; returns its id, or None if that cause already queued one."""
    now = utcnow()
    insert = dialect_insert(session.get_bind().dialect.name)
    outbound_id = session.scalar(
        insert(OutboundMessage)
        .values(
            dedupe_key=dedupe_key,
            trigger=trigger,
            contact_id=contact_id,
            order_id=order_id,
            broadcast_id=broadcast_id,
            text=text,
            template=template,
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
        publish_after_commit(session, _PENDING_KEY, outbound_id, publish.send_outbound)
    return outbound_id


def cancel_queued(session: Session, *where: ColumnElement[bool], why: str | None = None) -> int:
    """Cancel the queued rows matching ``where`` (with ``why`` as their error, when given); a row
    a sender has already claimed goes out. Returns how many were cancelled."""
    values: dict[str, Any] = {"state": CANCELLED, "updated_at": utcnow()}
    if why is not None:
        values["error"] = {"message": why}
    result = session.execute(
        update(OutboundMessage).where(OutboundMessage.state == QUEUED, *where).values(**values)
    )
    return result.rowcount or 0
