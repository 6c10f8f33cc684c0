"""Sweepers: beat's guarantee that an accepted event is never lost.

An inbox row still pending well after it was last enqueued lost its task somewhere (the broker
was down when the producer published, a Redis restart dropped the queue, a worker was killed
before it acknowledged). The sweeper claims such rows, bumps their ``enqueued_at`` and publishes
them again; processing is idempotent, so an event that was only slow costs one no-op task.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select, update

from models import InboxEvent
from models.base import utcnow
from models.db import session_scope
from models.inbox import PENDING
from observability.metrics import INBOX_REQUEUED
from settings import settings
from workers.celery_app import app
from workers.publish import enqueue

log = logging.getLogger(__name__)

BATCH = 1000


@app.task(name="schedules.sweepers.sweep_inbox")
def sweep_inbox() -> int:
    """Re-enqueue pending inbox rows not enqueued for INBOX_SWEEP_AFTER_SECONDS. Returns how many."""
    cutoff = utcnow() - timedelta(seconds=settings.inbox_sweep_after_seconds)
    with session_scope() as session:
        # SKIP LOCKED: two beats (or a slow previous sweep) never claim the same rows.
        ids = list(
            session.scalars(
                select(InboxEvent.id)
                .where(InboxEvent.state == PENDING, InboxEvent.enqueued_at < cutoff)
                .order_by(InboxEvent.enqueued_at)
                .limit(BATCH)
                .with_for_update(skip_locked=True)
            )
        )
        if ids:
            session.execute(update(InboxEvent).where(InboxEvent.id.in_(ids)).values(enqueued_at=utcnow()))
    if ids:
        enqueue(ids)
        INBOX_REQUEUED.inc(len(ids))
        log.warning("re-enqueued stale inbox events", extra={"count": len(ids)})
    return len(ids)
