"""Order events the database must be able to keep, the phone that decides where an order's
messages go, and when the delivery follow-up is due; end to end through the webhook, a real
Celery worker on Redis, PostgreSQL and the (fake, real HTTP) Cloud API."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from models import Contact, DeliveryFollowup, InboxEvent, Order, OutboundMessage
from models.base import utcnow
from models.db import session_scope
from models.outbox import QUEUED, SENDING
from queueing import names
from queueing.app import app
from queueing.publish import enqueue
from testkit import samples
from testkit.processes import wait_for

pytestmark = pytest.mark.usefixtures("worker")


def post_order(client, event, status: int = 202) -> dict:
    body, headers = samples.encode(event)
    answer = client.post("/webhooks/orders", content=body, headers=headers)
    assert answer.status_code == status, answer.text
    return answer.json()


def settled(timeout: float = 60) -> None:
    def done() -> bool:
        with session_scope() as session:
            pending = session.scalar(select(func.count()).where(InboxEvent.state == "pending"))
            unsent = session.scalar(select(func.count()).where(OutboundMessage.state.in_((QUEUED, SENDING))))
        return pending == 0 and unsent == 0

    try:
        wait_for(done, timeout, "inbox processed and outbox settled")
    except AssertionError as timed_out:
        with session_scope() as session:  # what is stuck, and why
            inbox = [(r.kind, r.state, r.last_error) for r in session.scalars(select(InboxEvent))]
            outbox = [(r.trigger, r.state, r.error) for r in session.scalars(select(OutboundMessage))]
        raise AssertionError(f"{timed_out}; inbox {inbox}; outbox {outbox}") from None


def order_view(client, admin_headers, order_id: str = "SO-1001") -> dict:
    answer = client.get(f"/api/orders/{order_id}", headers=admin_headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


def recipients(cloud_api) -> list[str]:
    return [body["to"] for body in cloud_api.accepted]


def local_day(days: int = 0) -> str:
    return (datetime.now(ZoneInfo("Asia/Jakarta")) + timedelta(days=days)).date().isoformat()


# ---------------------------------------------------------------------------------------------
# Values the database cannot store are refused when they arrive, not lost in the worker


def test_a_courier_longer_than_its_column_is_refused_and_nothing_is_kept(client):
    """Once answered 202, then failed every attempt in the worker and ended failed, unsent."""
    event = samples.order_event("order.shipped", courier="K" * 76, tracking_number="JNE1")
    answer = post_order(client, event, status=422)
    assert answer["field"] == "order.courier"
    assert "64" in answer["error"]
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(InboxEvent)) == 0


def test_a_stored_error_never_holds_the_sql_parameters(client, cloud_api):
    """An event accepted before the limits were right (or any statement that fails) leaves an
    error a person can read, without the customer's data the statement carried."""
    event = samples.order_event(
        "order.shipped", courier="K" * 76, tracking_number="JNE-SECRET-42", name="Siti Rahayu"
    )
    with session_scope() as session:  # as an older producer let it in
        row = InboxEvent(
            source="orders", kind=event["type"], dedupe_key=event["id"], payload=event, state="pending"
        )
        session.add(row)
        session.flush()
        event_id = row.id
    enqueue([event_id])

    def failed() -> InboxEvent | None:
        with session_scope() as session:
            row = session.get_one(InboxEvent, event_id)
            return row if row.last_error else None

    error = wait_for(failed, 60, "the failure recorded").last_error
    assert "value too long" in error
    for secret in ("JNE-SECRET-42", "Siti Rahayu", "K" * 76, "+6281212345678", "parameters"):
        assert secret not in error
    assert cloud_api.accepted == []


# ---------------------------------------------------------------------------------------------
# The phone on the order event decides where the order's messages go; a contact id alone never
# makes two people with different phones one contact

FIRST, SECOND = "0812-1234-5678", "0813-9999-0000"
FIRST_WA, SECOND_WA = "6281212345678", "6281399990000"


def customer_writes(client, wa_id: str, name: str) -> None:
    body, headers = samples.encode(samples.inbound_text(wa_id, name, "Halo kak"))
    assert client.post("/webhooks/whatsapp", content=body, headers=headers).status_code == 200


def contact_view(client, admin_headers, contact_id: int) -> dict:
    answer = client.get(f"/api/contacts/{contact_id}", headers=admin_headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


def live_contacts() -> int:
    with session_scope() as session:
        return session.scalar(select(func.count()).where(Contact.merged_into_id.is_(None)))


def test_a_new_phone_for_the_same_contact_id_gets_that_orders_messages(client, admin_headers, cloud_api):
    """Once the second order's messages went to the first number, where the contact id was seen."""
    post_order(client, samples.order_event("order.created", "SO-1", phone=FIRST, contact_id="C-42"))
    settled()
    post_order(client, samples.order_event("order.created", "SO-2", phone=SECOND, contact_id="C-42"))
    settled()
    assert recipients(cloud_api) == [FIRST_WA, SECOND_WA]
    # The same order, now with the new number: its next step goes there too.
    post_order(
        client,
        samples.order_event("order.shipped", "SO-1", phone=SECOND, contact_id="C-42", tracking_number="JNE1"),
    )
    settled()
    assert recipients(cloud_api) == [FIRST_WA, SECOND_WA, SECOND_WA]
    first, second = order_view(client, admin_headers, "SO-1"), order_view(client, admin_headers, "SO-2")
    assert first["contact_id"] == second["contact_id"] != contact_of(FIRST_WA)
    # The contact id claimed by two numbers is a conflict a person can see and settle.
    [conflict] = second["identity_conflicts"]
    assert conflict["identity"] == "orders:C-42"
    assert {conflict["phone"], conflict["other_phone"]} == {"+6281212345678", "+6281399990000"}


def contact_of(wa_id: str) -> int:
    with session_scope() as session:
        return session.scalars(select(Contact.id).where(Contact.phone_e164 == f"+{wa_id}")).one()


def test_a_contact_id_alone_never_merges_two_people(client, admin_headers, cloud_api):
    """Once an order-system contact id seen with two numbers made two customers one contact."""
    customer_writes(client, FIRST_WA, "Budi")
    customer_writes(client, SECOND_WA, "Siti")
    post_order(
        client, samples.order_event("order.created", "SO-1", phone=FIRST, name="Budi", contact_id="C-7")
    )
    post_order(
        client, samples.order_event("order.created", "SO-2", phone=SECOND, name="Siti", contact_id="C-7")
    )
    settled()
    assert live_contacts() == 2
    budi, siti = contact_of(FIRST_WA), contact_of(SECOND_WA)
    assert order_view(client, admin_headers, "SO-1")["contact_id"] == budi
    assert order_view(client, admin_headers, "SO-2")["contact_id"] == siti
    assert sorted(recipients(cloud_api)) == sorted([FIRST_WA, SECOND_WA])
    for contact_id in (budi, siti):  # seen from either side
        [conflict] = contact_view(client, admin_headers, contact_id)["identity_conflicts"]
        assert conflict["identity"] == "orders:C-7"
        assert {conflict["contact_id"], conflict["other_contact_id"]} == {budi, siti}


def test_the_same_phone_with_a_new_contact_id_is_still_one_contact(client, admin_headers, cloud_api):
    customer_writes(client, FIRST_WA, "Budi")
    post_order(client, samples.order_event("order.created", "SO-1", phone=FIRST, contact_id="C-1"))
    post_order(client, samples.order_event("order.created", "SO-2", phone=FIRST, contact_id="C-2"))
    settled()
    assert live_contacts() == 1
    view = contact_view(client, admin_headers, contact_of(FIRST_WA))
    assert {i["value"] for i in view["identities"]} >= {"orders:C-1", "orders:C-2"}
    assert view["identity_conflicts"] == []


# ---------------------------------------------------------------------------------------------
# The delivery follow-up: only for an order on its way, and only on its day


def finished(worker, task: str) -> int:
    """How many ``task`` runs the shared worker has finished (its log line per task)."""
    return sum(
        1
        for line in worker.log_path.read_text().splitlines()
        if "succeeded in" in line and f"{task}[" in line
    )


def beat_ticks(worker) -> None:
    """One tick of beat's follow-up task, run by the worker, as beat would send it."""
    done = finished(worker, "fire_due_followups")
    app.send_task(names.FIRE_DUE_FOLLOWUPS)
    wait_for(lambda: finished(worker, "fire_due_followups") > done, 30, "a follow-up tick")
    settled()


def followups_sent(cloud_api) -> list[str]:
    return [
        body["template"]["components"][0]["parameters"][1]["text"]
        for body in cloud_api.accepted
        if body["type"] == "template" and body["template"]["name"] == "order_delivery_followup"
    ]


def test_no_followup_until_the_order_ships(client, admin_headers, cloud_api, worker):
    """Once "has your order arrived?" went to a customer whose order had not left the shop."""
    post_order(client, samples.order_event("order.created", estimated_delivery_date=local_day()))
    post_order(client, samples.order_event("order.paid"))
    settled()
    beat_ticks(worker)
    assert followups_sent(cloud_api) == []
    assert order_view(client, admin_headers)["followup"] is None

    post_order(client, samples.order_event("order.shipped", tracking_number="JNE1"))
    settled()
    assert order_view(client, admin_headers)["followup"]["state"] == "scheduled"
    beat_ticks(worker)
    beat_ticks(worker)
    assert followups_sent(cloud_api) == ["SO-1001"]  # once
    assert order_view(client, admin_headers)["followup"]["state"] == "fired"


def test_a_delivery_date_already_past_when_learned_is_not_sent_as_arriving_today(
    client, admin_headers, cloud_api, worker
):
    """Once a date learned a day late went out as "arriving today (<yesterday>)"."""
    yesterday = local_day(-1)
    post_order(
        client,
        samples.order_event("order.shipped", tracking_number="JNE1", estimated_delivery_date=yesterday),
    )
    settled()
    beat_ticks(worker)
    assert followups_sent(cloud_api) == []
    view = order_view(client, admin_headers)
    assert (view["estimated_delivery_date"], view["followup"]["state"]) == (yesterday, "missed")

    # The order system corrects the date to today: now the question fits, and goes once.
    post_order(client, samples.order_event("order.updated", estimated_delivery_date=local_day()))
    settled()
    assert order_view(client, admin_headers)["followup"]["state"] == "scheduled"
    beat_ticks(worker)
    assert followups_sent(cloud_api) == ["SO-1001"]


def test_a_followup_whose_day_went_by_unsent_is_missed_not_sent_late(
    client, admin_headers, cloud_api, worker
):
    post_order(
        client,
        samples.order_event("order.shipped", tracking_number="JNE1", estimated_delivery_date=local_day(2)),
    )
    settled()
    with session_scope() as session:  # two days on, beat was away all of the delivery day
        order = session.scalars(select(Order).where(Order.external_id == "SO-1001")).one()
        order.estimated_delivery_date = datetime.fromisoformat(local_day(-1)).date()
        followup = session.scalars(
            select(DeliveryFollowup).where(DeliveryFollowup.order_id == order.id)
        ).one()
        followup.due_at = utcnow() - timedelta(days=1)
    beat_ticks(worker)
    assert followups_sent(cloud_api) == []
    assert order_view(client, admin_headers)["followup"]["state"] == "missed"
