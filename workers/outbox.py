"""Queueing an automated message: a row in the outbox, in the caller's transaction.

``queue`` inserts the row unique on its ``dedupe_key`` (what caused it), so a replayed event, a
retried task or a second beat process inserts nothing and sends nothing. The send task is
published only after the transaction commits (a rolled-back decision sends nothing); if that
publish is lost, the outbox sweeper publishes the row again.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from models import OutboundMessage
from models.base import utcnow
from models.db import dialect_insert
from models.outbox import QUEUED

log = logging.getLogger(__name__)

SEND_OUTBOUND = "workers.outbound.send_outbound"
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
        publish_after_commit(session, [outbound_id])
    return outbound_id


def publish_after_commit(session: Session, outbound_ids: list[int]) -> None:
    """Publish the send tasks once (and only if) the session's transaction commits."""
    pending: list[int] = session.info.setdefault(_PENDING_KEY, [])
    if not pending:
        event.listen(session, "after_commit", _publish_pending, once=True)
        event.listen(session, "after_rollback", _forget_pending, once=True)
    pending.extend(outbound_ids)


def publish(outbound_ids: list[int]) -> None:
    """Put one send task per outbox row on the ``outbound`` queue. Raises if the broker is away."""
    from workers.celery_app import app

    for outbound_id in outbound_ids:
        app.send_task(SEND_OUTBOUND, args=(outbound_id,))


def _publish_pending(session: Session) -> None:
    ids = session.info.pop(_PENDING_KEY, [])
    try:
        publish(ids)
    except Exception:
        log.warning("broker unavailable; the outbox sweeper will send these", exc_info=True)


def _forget_pending(session: Session) -> None:
    session.info.pop(_PENDING_KEY, None)
