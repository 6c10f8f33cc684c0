"""The order rules as a property: whatever order the seven event types arrive in, replayed or
not, with beat's ticks, sends and delivery receipts in between, each trigger's message is queued
at most once and never after a later stage's message of the same order.

Each step runs as the system runs it, in its own PostgreSQL transaction: an event through
``pipeline.orders.record_order_event`` (the ingest step, with the payload the producer
validated), a tick through beat's follow-up batch, a send through ``sent_messages.mark_sent``
(what the outbound worker records when the gateway accepts) and a receipt through
``delivery_reports.record_status``. No Celery per example, so hundreds of interleavings run in
a minute or so. Which queued message a sender may claim first is the send-time rule, tested elsewhere.

A fixed seed and a bounded number of examples keep the run the same every time.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from sqlalchemy import select

from domain.order_events import EVENT_TYPES
from domain.order_messages import (
    ORDER_CREATED,
    ORDER_DELIVERY,
    ORDER_FOLLOWUP_DELIVERY,
    ORDER_PAID,
    ORDER_RECEIVED,
    format_date,
)
from models import DeliveryStatus, Order, OutboundMessage
from models.base import utcnow
from models.db import session_scope
from models.outbox import QUEUED
from pipeline import delivery_reports, orders, sent_messages
from producers.orders import validate
from schedules.followups import fire_due_followups
from settings import Settings

# The stage each order message belongs to: none may be queued after one of a later stage.
RANK = {ORDER_CREATED: 1, ORDER_PAID: 2, ORDER_DELIVERY: 3, ORDER_FOLLOWUP_DELIVERY: 4, ORDER_RECEIVED: 5}
# When each step happened at the order system (minutes after the first), whatever the arrival.
MINUTE_OF = {
    "contact.created": 0,
    "order.created": 10,
    "order.paid": 20,
    "order.updated": 25,
    "order.shipped": 30,
    "order.received": 50,
}
TIMEZONE = ZoneInfo("Asia/Jakarta")
_numbers = itertools.count(1)


def today() -> datetime:
    return datetime.now(TIMEZONE)


DATES = st.sampled_from([None, -1, 0, 0, 1])  # no date, yesterday, today (twice as likely), tomorrow
# What may happen after an event arrives: beat ticks, the oldest queued message goes out, the
# gateway reports what went out delivered, or an event that already arrived comes again.
AFTERWARDS = st.lists(st.sampled_from(["tick", "tick", "send", "receipt", "replay"]), max_size=3)


@st.composite
def histories(draw: st.DrawFn) -> tuple[dict[str, dict], list[tuple[str, str | None]]]:
    """One order's events as the order system sent them, and the steps that happen to them here:
    every event in any order (a cancellation only now and then: it ends all messages), replays,
    ticks, sends and receipts in between."""
    number = next(_numbers)
    start = utcnow() - timedelta(hours=2)
    cancelled_at = draw(st.sampled_from([5, 15, 27, 40, 60]))
    phones = [f"0813{number:08d}", f"0814{number:08d}"]  # the order system may give a second phone
    # The delivery date the order system knows at first, and the one an update and the shipment say.
    first, later = draw(DATES), draw(DATES)
    dates = {"order.created": first, "order.paid": first, "order.updated": later, "order.shipped": later}
    events: dict[str, dict] = {}
    for event_type in EVENT_TYPES:
        minute = cancelled_at if event_type == "order.cancelled" else MINUTE_OF[event_type]
        document = {
            "id": f"evt-prop-{number}-{event_type}",
            "type": event_type,
            "occurred_at": (start + timedelta(minutes=minute)).isoformat(),
            "contact": {"id": f"C-prop-{number}", "name": "Budi", "phone": draw(st.sampled_from(phones))},
        }
        if event_type.startswith("order."):
            document["order"] = {"id": f"SO-prop-{number}", "total": 150000, "currency": "IDR"}
            if dates.get(event_type) is not None:
                day = today() + timedelta(days=dates[event_type])
                document["order"]["estimated_delivery_date"] = day.date().isoformat()
            if event_type == "order.shipped":
                document["order"] |= {"courier": "JNE", "tracking_number": f"JNE{number}"}
        events[event_type] = validate(document, Settings()).payload

    steps: list[tuple[str, str | None]] = []
    arrived: list[str] = []
    for event_type in draw(st.permutations(EVENT_TYPES)):
        if event_type == "order.cancelled" and draw(st.integers(0, 3)):
            continue
        steps.append(("event", event_type))
        arrived.append(event_type)
        for then in draw(AFTERWARDS):
            if then == "replay":
                steps.append(("event", draw(st.sampled_from(arrived))))
            else:
                steps.append((then, None))
    return events, steps


def run(kind: str, event_type: str | None, events: dict[str, dict], order_id: str) -> None:
    """One step, in its own transaction, as the system would take it."""
    if kind == "tick":
        fire_due_followups()
        return
    with session_scope() as session:
        if kind == "event":
            orders.record_order_event(session, events[event_type])
            return
        rows = session.scalars(
            select(OutboundMessage)
            .join(Order, Order.id == OutboundMessage.order_id)
            .where(Order.external_id == order_id)
            .order_by(OutboundMessage.id)
        ).all()
        if kind == "send":  # the oldest queued message goes out, as a sender would record it
            queued = [row for row in rows if row.state == QUEUED]
            if queued:
                row = sent_messages.locked_with_contact(session, queued[0].id)
                assert row is not None
                sent_messages.mark_sent(session, row, f"wamid.prop.{row.id}", "text", {}, utcnow())
        else:  # the gateway reports each message sent so far delivered (once: the inbox dedupes)
            sent = [row.external_id for row in rows if row.external_id]
            reported = set(
                session.scalars(
                    select(DeliveryStatus.external_id).where(DeliveryStatus.external_id.in_(sent))
                )
            )
            for row in rows:
                if row.external_id and row.external_id not in reported:
                    at = str(int(utcnow().timestamp()))
                    status = {"id": row.external_id, "status": "delivered", "timestamp": at}
                    delivery_reports.record_status(session, {"status": status})


def queued_messages(order_id: str) -> list[OutboundMessage]:
    with session_scope() as session:
        rows = session.scalars(
            select(OutboundMessage)
            .join(Order, Order.id == OutboundMessage.order_id)
            .where(Order.external_id == order_id)
            .order_by(OutboundMessage.id)
        ).all()
        session.expunge_all()
    return list(rows)


@seed(20261204)
@settings(
    max_examples=400,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=histories())
def test_each_trigger_at_most_once_and_never_after_a_later_stage(history):
    events, steps = history
    order_id = events["order.created"]["order"]["id"]
    cancelled, arrived = False, set()
    for kind, event_type in steps:
        before = {row.id for row in queued_messages(order_id)}
        run(kind, event_type, events, order_id)
        rows = queued_messages(order_id)
        new = [row for row in rows if row.id not in before]
        assert not (cancelled and new), f"queued after the cancellation: {[r.trigger for r in new]}"
        if kind == "event":
            arrived.add(event_type)
        cancelled = "order.cancelled" in arrived

        triggers = [row.trigger for row in rows]
        assert len(triggers) == len(set(triggers)), f"a trigger queued twice: {triggers}"
        ranks = [RANK[trigger] for trigger in triggers]
        assert ranks == sorted(ranks), f"a stage's message after a later one's: {triggers} after {steps}"
        for row in new:
            if row.trigger == ORDER_FOLLOWUP_DELIVERY:
                # Asked only about an order on its way, and only on the delivery date.
                assert "order.shipped" in arrived, steps
                assert format_date(today().date()) in row.text, row.text
