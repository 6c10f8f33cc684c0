"""Order-system events: the order's state, and the automated message each step triggers.

One step per event (``record_order_event``), run by the ingest task in the transaction that
marks the inbox row processed. It resolves the customer through identity resolution (the order's
``0812…`` and the customer's WhatsApp are one contact), moves the order forward, queues the
step's message in the outbox (unique per order and trigger) and (re)schedules the delivery
follow-up, all in that one transaction.

Events can arrive out of order. The stage only moves forward; each step's time is set by the
first event of it; details (total, dates, courier) come from the newest event, and an older one
only fills gaps. A step's message goes out only if no later step was known when its event was
processed: "payment verified" followed by "your order is being processed" would confuse more than
it tells. Once queued, the order's messages also go out in that order, whatever retries and
parallel workers do (pipeline/outbox.py, "One after the other"). A cancelled order gets no
further messages and its follow-up is cancelled.

The phone on the newest event decides whose order it is, and so where its messages go (identity
resolution never lets the order system's contact id alone pull in a contact with another phone).
The delivery follow-up waits for the shipment, and is never sent for a day already gone.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from domain import answer_hours, order_messages
from domain.followup_time import day_gone, followup_due
from domain.order_messages import (
    CONTACT_CREATED,
    ORDER_CREATED,
    ORDER_DELIVERY,
    ORDER_FOLLOWUP_DELIVERY,
    ORDER_PAID,
    ORDER_RECEIVED,
)
from models import Contact, DeliveryFollowup, Order, OrderItem, OutboundMessage
from models.base import utcnow
from models.db import dialect_insert
from models.orders import CANCELLED, FIRED, MISSED, SCHEDULED, STAGES
from models.outbox import QUEUED
from pipeline import (
    attribution,
    channels,
    context,
    conversions,
    crm_sync,
    deal_stage,
    followup_effects,
    identity,
    outbox,
    outcomes,
    tracker,
)
from settings import settings

# The stage each event moves the order to, and the message that step sends.
STAGE_OF_EVENT = {
    "order.created": "created",
    "order.paid": "paid",
    "order.shipped": "shipped",
    "order.received": "received",
}
TRIGGER_OF_STAGE = {
    "created": ORDER_CREATED,
    "paid": ORDER_PAID,
    "shipped": ORDER_DELIVERY,
    "received": ORDER_RECEIVED,
}
STEP_TIME = {"created": "ordered_at", "paid": "paid_at", "shipped": "shipped_at", "received": "received_at"}
DETAILS = ("total", "currency", "estimated_delivery_date", "courier", "tracking_number")
_RANK = {stage: rank for rank, stage in enumerate(STAGES, start=1)}


def record_order_event(session: Session, payload: dict[str, Any]) -> None:
    """Apply one order-system event (as the producer validated it into the inbox)."""
    person = payload["contact"]
    contact = identity.resolve_contact(
        session,
        identity.from_typed_phone(
            person["phone"],
            external_id=f"orders:{person['id']}" if person.get("id") else None,
            name=person.get("name"),
        ),
    )
    deal = context.ensure_open_deal(session, contact)
    # The channel the event names, else the default one (pipeline/channels.py).
    channel_id = channels.id_of(session, payload.get("channel"))
    if payload["type"] == "contact.created":
        queue_message(session, CONTACT_CREATED, contact, None, channel_id)
        return

    occurred_at = datetime.fromisoformat(payload["occurred_at"])
    order, previous_rank = _order_for_update(session, payload["order"]["id"], contact, deal.id)
    _follow_phone(session, order, contact, deal.id, occurred_at)
    _apply_details(order, payload["order"], occurred_at)
    order.channel_id = channel_id  # its messages, and its follow-up later, go out through it
    _apply_items(session, order, payload["order"].get("items"), occurred_at)
    # The order's messages go to the phone of its newest event (that of an older one is stale).
    recipient = contact if order.contact_id == contact.id else session.get_one(Contact, order.contact_id)
    event_type = payload["type"]
    if event_type == "order.created":
        followup_effects.note_order(session, order.contact_id, occurred_at)
    if event_type == "order.cancelled":
        if order.cancelled_at is None:
            order.cancelled_at = occurred_at
        order.stage = CANCELLED
        _cancel_queued(session, order)
    elif event_type == "order.received":
        # "Has it arrived?" is answered: a follow-up still waiting to go out is not sent.
        _cancel_queued(session, order, ORDER_FOLLOWUP_DELIVERY)
    if event_type in STAGE_OF_EVENT:
        stage = STAGE_OF_EVENT[event_type]
        if getattr(order, STEP_TIME[stage]) is None:
            setattr(order, STEP_TIME[stage], occurred_at)
        if order.stage != CANCELLED:
            if _RANK[stage] > _RANK[order.stage]:
                order.stage = stage
            if _RANK[stage] >= previous_rank:
                queue_message(session, TRIGGER_OF_STAGE[stage], recipient, order)
    order.updated_at = utcnow()
    # The conversation it came of and its campaigns (once), then that conversation's outcome.
    attribution.attribute_order(session, order, order.ordered_at or occurred_at)
    outcomes.follow_order(session, order, occurred_at)
    conversions.queue_purchase(session, order)  # a paid order of an ad's conversation: tell Meta
    _schedule_followup(session, order)
    deal_stage.follow(session, contact, deal)  # ordered, won, lost: the deal follows its orders
    crm_sync.queue_order_event(session, contact.id, order, payload)  # a note on the Odoo lead, if synced


def queue_message(
    session: Session, trigger: str, contact: Contact, order: Order | None, channel_id: int | None = None
) -> int | None:
    """Render the trigger's message from the current data and put it in the outbox, once ever;
    through the order's channel (``channel_id`` for a message without an order)."""
    template = order_messages.templates_from(settings.order_messages_file)[trigger]
    text, template_call = template.render(_values(contact, order))
    cause = f"order:{order.external_id}" if order else f"contact:{contact.id}"
    return outbox.queue(
        session,
        dedupe_key=f"{cause}:{trigger}",
        trigger=trigger,
        contact_id=contact.id,
        channel_id=order.channel_id if order else channel_id,
        order_id=order.id if order else None,
        text=text,
        template=template_call,
    )


def on_followup_delivered(session: Session, external_id: str) -> None:
    """The follow-up reached the customer's phone: time to ask how the order was (once)."""
    sent = session.scalars(
        select(OutboundMessage).where(
            OutboundMessage.external_id == external_id,
            OutboundMessage.trigger == ORDER_FOLLOWUP_DELIVERY,
        )
    ).first()
    if sent is None or sent.order_id is None:
        return
    order = session.scalars(
        select(Order).where(Order.id == sent.order_id).with_for_update(key_share=True)
    ).one()
    if order.stage != CANCELLED:
        contact = session.get_one(Contact, order.contact_id)
        queue_message(session, ORDER_RECEIVED, contact, order)


def _cancel_queued(session: Session, order: Order, trigger: str | None = None) -> None:
    """Cancel the order's messages still queued (or only this trigger's)."""
    conditions = [OutboundMessage.order_id == order.id]
    if trigger is not None:
        conditions.append(OutboundMessage.trigger == trigger)
    outbox.cancel_queued(session, *conditions)


def _order_for_update(
    session: Session, external_id: str, contact: Contact, deal_id: int
) -> tuple[Order, int]:
    """The order, locked; with the rank of the stage it had before this event (0 when new)."""
    insert = dialect_insert(session.get_bind().dialect.name)
    now = utcnow()
    created = session.scalar(
        insert(Order)
        .values(
            external_id=external_id,
            contact_id=contact.id,
            deal_id=deal_id,
            stage="created",
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["external_id"])
        .returning(Order.id)
    )
    order = session.scalars(
        select(Order).where(Order.external_id == external_id).with_for_update(key_share=True)
    ).one()
    return order, 0 if created is not None else _RANK.get(order.stage, len(STAGES) + 1)


def _follow_phone(
    session: Session, order: Order, contact: Contact, deal_id: int, occurred_at: datetime
) -> None:
    """The newest event's phone decides whose order it is, and so where its messages go: an
    event with a new phone moves the order (and its messages still queued) to that phone's
    contact; an older event's phone changes nothing."""
    times = dict(order.detail_times or {})
    # Orders stored before the contact had a time: as of their details.
    known = times.get("contact") or (order.details_as_of.isoformat() if order.details_as_of else None)
    if known is not None and occurred_at < datetime.fromisoformat(known):
        return
    times["contact"] = occurred_at.isoformat()
    order.detail_times = times
    if order.contact_id == contact.id:
        return
    order.contact_id, order.deal_id = contact.id, deal_id
    session.execute(
        update(OutboundMessage)
        .where(OutboundMessage.order_id == order.id, OutboundMessage.state == QUEUED)
        .values(contact_id=contact.id, updated_at=utcnow())
    )


def _apply_details(order: Order, details: dict[str, Any], occurred_at: datetime) -> None:
    """Each detail comes from the newest event that carries it."""
    times = dict(order.detail_times or {})
    for name in DETAILS:
        value = details.get(name)
        if value is None:
            continue
        if name == "total":
            value = Decimal(str(value))
        elif name == "estimated_delivery_date":
            value = datetime.strptime(value, "%Y-%m-%d").date()
        # Orders stored before detail_times existed: their details are as of details_as_of.
        known = times.get(name) or (
            order.details_as_of.isoformat()
            if getattr(order, name) is not None and order.details_as_of
            else None
        )
        if known is None or occurred_at >= datetime.fromisoformat(known):
            setattr(order, name, value)
            times[name] = occurred_at.isoformat()
    order.detail_times = times
    if order.details_as_of is None or occurred_at > order.details_as_of:
        order.details_as_of = occurred_at


def _apply_items(
    session: Session, order: Order, items: list[dict[str, Any]] | None, occurred_at: datetime
) -> None:
    """The order's lines (``items``, optional) come whole from the newest event that lists them."""
    if items is None:
        return
    times = dict(order.detail_times or {})
    known = times.get("items")
    if known is not None and occurred_at < datetime.fromisoformat(known):
        return
    session.execute(delete(OrderItem).where(OrderItem.order_id == order.id))
    for position, item in enumerate(items):
        session.add(
            OrderItem(
                order_id=order.id,
                position=position,
                sku=str(item["sku"]) if item.get("sku") is not None else None,
                name=item["name"],
                qty=Decimal(str(item["qty"])),
                price=Decimal(str(item["price"])),
            )
        )
    times["items"] = occurred_at.isoformat()
    order.detail_times = times


def _schedule_followup(session: Session, order: Order) -> None:
    """Schedule, move or cancel the delivery follow-up; one that already fired stays as it is.

    Only an order on its way has one: "has it arrived?" before it was shipped would confuse. A
    delivery date whose day is already over when it is learned (or when the order ships) is not
    asked about as arriving "today": the follow-up is ``missed`` (visible on the order), and a
    newer date for today or later schedules it again. A due time passed earlier today still
    fires at the next tick.
    """
    followup = session.scalars(
        select(DeliveryFollowup).where(DeliveryFollowup.order_id == order.id).with_for_update()
    ).first()
    if order.stage in (CANCELLED, "received"):
        if followup is not None and followup.state == SCHEDULED:
            followup.state, followup.updated_at = CANCELLED, utcnow()
        return
    if order.stage != "shipped" or order.estimated_delivery_date is None:
        return
    due = _at_their_hour(
        session.get_one(Contact, order.contact_id),
        followup_due(order.estimated_delivery_date, settings.followup_cron, settings.timezone),
    )
    state = MISSED if day_gone(due, settings.timezone, utcnow()) else SCHEDULED
    if followup is None:
        session.add(DeliveryFollowup(order_id=order.id, due_at=due, state=state))
    elif followup.state != FIRED and (followup.due_at, followup.state) != (due, state):
        followup.due_at, followup.state, followup.updated_at = due, state, utcnow()


def _at_their_hour(contact: Contact, due: datetime) -> datetime:
    """The follow-up's cron time, or later that day at the hour the customer usually writes (no
    later than FOLLOWUP_LATEST_HOUR: it asks whether the order arrived "today")."""
    zone = ZoneInfo(settings.timezone)
    local = due.astimezone(zone)
    latest = local.replace(hour=settings.followup_latest_hour, minute=0, second=0, microsecond=0)
    return answer_hours.at_usual_hour(due, latest, answer_hours.usual_hours(contact.answer_hours), zone)


def _values(contact: Contact, order: Order | None) -> dict[str, Any]:
    values: dict[str, Any] = {"name": contact.name, "business": settings.business_name}
    if order is not None:
        values |= {
            "order_id": order.external_id,
            "total": order_messages.format_total(order.total, order.currency)
            if order.total is not None
            else None,
            "courier": order.courier,
            "tracking_number": order.tracking_number,
            "estimated_delivery_date": order.estimated_delivery_date,
            "tracker_url": tracker.public_url_of(order.id),
        }
    return values
