"""Odoo as the order system: the order steps read from Odoo become order events in the inbox.

``record(session, changes)`` turns each step (a sale order confirmed, its invoice paid, its
delivery done with a tracking number; integrations.crm.OrderChange) into the order-system event
the order step already knows (``order.created``, ``order.paid``, ``order.shipped``), keyed by the
Odoo record that says so (``odoo:account.move:3:order.paid``), so a step read twice, by a
webhook's wake-up and the poller, is one event. The inbox publishes them after the commit, and
the same automated messages then follow, once each, in stage order. The order's id here is the
sale order's name (``S00042``); the event carries the sale order's id, so the CRM sync files the
order under it instead of making another sale order.

Sale orders we made ourselves (an order of another order system, synced to Odoo) are left out:
that system tells us about them.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from domain import phones
from integrations.crm import OrderChange
from models import CrmRecord, InboxEvent, Order
from models.base import utcnow
from models.db import dialect_insert
from queueing import publish
from queueing.after_commit import publish_after_commit
from settings import settings

log = logging.getLogger(__name__)
SOURCE = "orders"
_PENDING_KEY = "odoo_order_events"


def record(session: Session, changes: list[OrderChange]) -> int:
    """Write the new order events; how many were new."""
    if not changes:
        return 0
    ours = _ours(session, changes)
    rows = []
    for change in changes:
        if change.sale_order_id in ours:
            continue
        event = _event(change)
        if event is None:
            continue
        rows.append(event)
    if not rows:
        return 0
    statement = (
        dialect_insert(session.get_bind().dialect.name)(InboxEvent)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["source", "dedupe_key"])
        .returning(InboxEvent.id)
    )
    new = list(session.scalars(statement))
    for event_id in new:
        publish_after_commit(session, _PENDING_KEY, event_id, publish.enqueue)
    return len(new)


def _ours(session: Session, changes: list[OrderChange]) -> set[int]:
    """The sale orders we made for another order system's orders."""
    ids = {c.sale_order_id for c in changes}
    references = {c.customer_reference for c in changes if c.customer_reference}
    made = {
        record.remote_id
        for record in session.scalars(
            select(CrmRecord).where(CrmRecord.model == "sale.order", CrmRecord.remote_id.in_(ids))
        )
        if (record.data or {}).get("source") != "odoo"
    }
    named = set(session.scalars(select(Order.external_id).where(Order.external_id.in_(references))))
    return made | {c.sale_order_id for c in changes if c.customer_reference in named}


def _event(change: OrderChange) -> dict[str, Any] | None:
    phone = phones.from_user_input(change.phone or "", settings.default_region) if change.phone else None
    if phone is None or not phone.is_valid:
        log.warning(
            "an Odoo order whose customer has no valid phone is not followed",
            extra={"sale_order_id": change.sale_order_id},
        )
        return None
    occurred = _moment(change.changed_at)
    order: dict[str, Any] = {
        "id": change.order_name,
        "odoo_sale_order_id": change.sale_order_id,
        "total": float(change.total) if change.total is not None else None,
        "currency": change.currency,
    }
    if change.tracking_number:
        order.update(tracking_number=change.tracking_number, courier=change.courier)
    if change.estimated_delivery_date:
        order["estimated_delivery_date"] = change.estimated_delivery_date
    payload = {
        "id": f"odoo:{change.source}:{change.type}",
        "type": change.type,
        "occurred_at": occurred.isoformat(),
        "contact": {
            "id": f"odoo-partner-{change.partner_id}",
            "name": change.partner_name,
            "phone": phone.e164,
        },
        "order": {k: v for k, v in order.items() if v is not None},
    }
    now = utcnow()
    return {
        "source": SOURCE,
        "kind": change.type,
        "dedupe_key": payload["id"],
        "payload": payload,
        "occurred_at": occurred,
        "received_at": now,
        "enqueued_at": now,
        "state": "pending",
        "attempts": 0,
    }


def _moment(value: str) -> datetime:
    """Odoo's "YYYY-MM-DD HH:MM:SS" (UTC)."""
    try:
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    except ValueError:
        return datetime.now(UTC)
