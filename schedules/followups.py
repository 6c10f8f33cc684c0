"""Delivery follow-ups: beat's tick queues every follow-up that has fallen due.

Each tick claims due rows in batches (``FOR UPDATE SKIP LOCKED`` on the partial index over
scheduled rows), marks them fired and puts their message in the outbox, one transaction per
batch. A second beat process by mistake, or a tick that overlaps the previous one, skips the
rows already claimed; the outbox's unique key would stop a duplicate message anyway.
"""

from __future__ import annotations

import logging

from sqlalchemy import select

from domain.followup_time import day_gone
from domain.order_messages import ORDER_FOLLOWUP_DELIVERY
from models import Contact, DeliveryFollowup, Order
from models.base import utcnow
from models.db import session_scope
from models.orders import CANCELLED, FIRED, MISSED, SCHEDULED
from observability.metrics import FOLLOWUPS_FIRED
from pipeline import crm_sync, orders
from queueing import names
from queueing.tasks import periodic_task
from settings import settings

log = logging.getLogger(__name__)

BATCH = 500


@periodic_task(names.FIRE_DUE_FOLLOWUPS)
def fire_due_followups() -> int:
    """Queue the message of every follow-up due by now. Returns how many fired."""
    fired = 0
    while True:
        claimed = _fire_batch()
        fired += claimed
        if claimed < BATCH:
            break
    if fired:
        FOLLOWUPS_FIRED.inc(fired)
        log.info("delivery follow-ups fired", extra={"count": fired})
    return fired


def _fire_batch() -> int:
    now = utcnow()
    with session_scope() as session:
        due = session.scalars(
            select(DeliveryFollowup)
            .where(DeliveryFollowup.state == SCHEDULED, DeliveryFollowup.due_at <= now)
            .order_by(DeliveryFollowup.due_at)
            .limit(BATCH)
            .with_for_update(skip_locked=True)
        ).all()
        if not due:
            return 0
        # The orders too, so a cancellation being processed right now is seen; an order locked by
        # its own event is skipped and its follow-up left for the next tick.
        rows = session.execute(
            select(Order, Contact)
            .join(Contact, Contact.id == Order.contact_id)
            .where(Order.id.in_([f.order_id for f in due]))
            .with_for_update(of=Order, key_share=True, skip_locked=True)
        ).all()
        by_order = {order.id: (order, contact) for order, contact in rows}
        for followup in due:
            if followup.order_id not in by_order:
                continue
            order, contact = by_order[followup.order_id]
            followup.updated_at = now
            if order.stage != "shipped":
                # Cancelled, received, or (a row from before follow-ups waited for the shipment)
                # not shipped yet: its shipment schedules it again.
                followup.state = CANCELLED
                continue
            if day_gone(followup.due_at, settings.timezone, now):
                followup.state = MISSED  # beat was away all of its day: "arriving today" is wrong now
                continue
            followup.state, followup.fired_at = FIRED, now
            orders.queue_message(session, ORDER_FOLLOWUP_DELIVERY, contact, order)
            crm_sync.queue_followup_activity(session, contact, order, followup.id)  # when Odoo sync is on
        return len(by_order)  # fewer than BATCH when some were skipped: the rest waits a tick
