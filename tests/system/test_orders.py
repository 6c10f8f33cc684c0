"""Automated order messages, end to end: order-system webhook -> inbox -> worker -> outbox ->
outbound worker -> the (fake, but real HTTP) Cloud API; follow-ups fired by a real beat process.

The worker sends through the real Cloud API client to ``testkit.fakes.cloud_api.FakeCloudApi``;
what the fake accepted is what a customer would have received.
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from models import Contact, DeliveryFollowup, InboxEvent, Order, OutboundMessage
from models.db import session_scope
from models.outbox import QUEUED, SENDING
from queueing.publish import enqueue, send_outbound
from testkit import samples
from testkit.processes import CeleryProcess, wait_for

BUDI_WA = "6281212345678"  # the customer's WhatsApp id
BUDI_TYPED = "0812-1234-5678"  # the same number as the order system has it

pytestmark = pytest.mark.usefixtures("worker")


def post_order(client, event, status: int = 202) -> dict:
    body, headers = samples.encode(event)
    answer = client.post("/webhooks/orders", content=body, headers=headers)
    assert answer.status_code == status, answer.text
    return answer.json()


def customer_writes(client, text: str = "Halo kak, mau pesan") -> None:
    body, headers = samples.encode(samples.inbound_text(BUDI_WA, "Budi Santoso", text))
    assert client.post("/webhooks/whatsapp", content=body, headers=headers).status_code == 200


def settled(timeout: float = 60) -> None:
    """Wait until every inbox event is processed and every outbox row has its end state."""

    def done() -> bool:
        with session_scope() as session:
            pending = session.scalar(select(func.count()).where(InboxEvent.state == "pending"))
            unsent = session.scalar(select(func.count()).where(OutboundMessage.state.in_((QUEUED, SENDING))))
        return pending == 0 and unsent == 0

    wait_for(done, timeout, "inbox processed and outbox settled")


def order_view(client, admin_headers, order_id: str = "SO-1001") -> dict:
    answer = client.get(f"/api/orders/{order_id}", headers=admin_headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


def statuses(view: dict) -> dict[str, str]:
    return {m["trigger"]: m["status"] for m in view["messages"]}


def texts_sent(cloud_api) -> list[str]:
    return [body["text"]["body"] for body in cloud_api.accepted if body["type"] == "text"]


def today_in_jakarta() -> str:
    return datetime.now(ZoneInfo("Asia/Jakarta")).date().isoformat()


def test_each_step_of_an_order_sends_its_message_to_the_customers_whatsapp(
    client, admin_headers, cloud_api, drained
):
    customer_writes(client)  # the 24-hour window is open: plain texts go out
    drained()
    steps = [
        samples.order_event("contact.created"),
        samples.order_event(
            "order.created", total=150000, currency="IDR", estimated_delivery_date="2026-12-20"
        ),
        samples.order_event("order.paid"),
        samples.order_event("order.shipped", courier="JNE", tracking_number="JNE0123456789"),
        samples.order_event("order.received"),
    ]
    for event in steps:  # one after the other, as the order system would send them
        post_order(client, event)
        settled()

    texts = texts_sent(cloud_api)
    assert len(texts) == 5
    assert {body["to"] for body in cloud_api.accepted} == {BUDI_WA}
    welcome, created, paid, shipped, received = texts
    assert "selamat datang di Toko Kami" in welcome and "Budi Santoso" in welcome
    assert "SO-1001" in created and "Rp150.000" in created and "diproses" in created
    assert "pembayaran" in paid and "SO-1001" in paid
    assert "JNE" in shipped and "JNE0123456789" in shipped
    assert "sesuai harapan" in received

    # The order's 0812… phone and the customer's WhatsApp are one contact.
    with session_scope() as session:
        assert (
            session.scalar(select(func.count()).select_from(Contact).where(Contact.merged_into_id.is_(None)))
            == 1
        )
    view = order_view(client, admin_headers)
    contact = client.get(f"/api/contacts/{view['contact_id']}", headers=admin_headers).json()
    assert [(o["order_id"], o["stage"]) for o in contact["orders"]] == [("SO-1001", "received")]
    assert view["stage"] == "received"
    assert statuses(view) == {
        "order_created": "sent",
        "order_paid": "sent",
        "order_delivery": "sent",
        "order_received": "sent",
    }
    assert view["followup"]["state"] == "cancelled"  # received: nothing left to ask


def test_the_shipped_message_links_to_the_orders_tracker_page(client, admin_headers, cloud_api, drained):
    customer_writes(client)
    drained()
    post_order(client, samples.order_event("order.created", total=150000))
    post_order(client, samples.order_event("order.shipped", courier="JNE", tracking_number="JNE0123456789"))
    settled()
    shipped = [text for text in texts_sent(cloud_api) if "JNE0123456789" in text]
    assert len(shipped) == 1
    link = re.search(r"http://testserver/t/\S+", shipped[0])
    assert link, shipped[0]
    assert link.group(0) == order_view(client, admin_headers)["tracker_url"]
    page = client.get(link.group(0), params={"lang": "en"})  # the customer opens it: no sign-in
    assert page.status_code == 200
    assert "JNE0123456789" in page.text and "Shipped" in page.text


def finished(worker, task: str) -> int:
    """How many ``task`` runs the shared worker has finished (its log line per task)."""
    return sum(
        1
        for line in worker.log_path.read_text().splitlines()
        if "succeeded in" in line and f"{task}[" in line
    )


def test_replayed_event_and_duplicated_tasks_send_one_message(client, admin_headers, cloud_api, worker):
    event = samples.order_event("order.created", total=99000)
    assert post_order(client, event)["status"] == "accepted"
    assert post_order(client, event, status=200)["status"] == "duplicate"
    settled()
    with session_scope() as session:
        inbox_ids = list(session.scalars(select(InboxEvent.id)))
        outbound_ids = list(session.scalars(select(OutboundMessage.id)))
    # The broker delivers both tasks again (as after a redelivery): nothing happens twice.
    ingested, sends = finished(worker, "process_inbox_event"), finished(worker, "send_outbound")
    enqueue(inbox_ids)
    send_outbound(outbound_ids * 3)
    wait_for(lambda: finished(worker, "process_inbox_event") == ingested + 1, 30, "the ingest task ran again")
    wait_for(lambda: finished(worker, "send_outbound") == sends + 3, 30, "the send tasks ran again")
    settled()
    assert len(cloud_api.accepted) == 1
    [message] = order_view(client, admin_headers)["messages"]
    assert message["status"] == "sent" and message["attempts"] == 1


def test_events_out_of_order_keep_the_newest_state(client, admin_headers, cloud_api):
    customer_writes(client)
    paid = samples.order_event("order.paid", occurred_at="2026-11-23T10:00:00+07:00", total=150000)
    created = samples.order_event(
        "order.created",
        occurred_at="2026-11-23T09:00:00+07:00",
        total=120000,
        estimated_delivery_date="2026-12-20",
    )
    post_order(client, paid)
    settled()
    post_order(client, created)
    settled()

    view = order_view(client, admin_headers)
    assert view["stage"] == "paid"
    assert view["ordered_at"].startswith("2026-11-23T02:00:00")
    assert float(view["total"]) == 150000  # the older event does not overwrite the newer total
    assert view["estimated_delivery_date"] == "2026-12-20"  # but fills what the newer one lacked
    # "Being processed" after "payment verified" would confuse: the late step sends nothing.
    assert statuses(view) == {"order_paid": "sent"}
    assert len(cloud_api.accepted) == 1


def test_a_500_then_a_200_gives_one_message(client, admin_headers, cloud_api):
    customer_writes(client)
    cloud_api.fail_next(500)
    post_order(client, samples.order_event("order.created", total=10000))
    settled()
    assert len(cloud_api.requests) == 2
    assert len(cloud_api.accepted) == 1
    [message] = order_view(client, admin_headers)["messages"]
    assert (message["status"], message["attempts"]) == ("sent", 2)


def test_rate_limit_answers_back_off_before_trying_again(client, admin_headers, cloud_api):
    customer_writes(client)
    cloud_api.fail_next(429, code=130429, times=2, retry_after=1)
    post_order(client, samples.order_event("order.created", total=10000))
    settled()
    first, second, third = (r["received_at"] for r in cloud_api.requests)
    assert second - first >= 1 and third - second >= 1  # the gateway's Retry-After was honoured
    assert len(cloud_api.accepted) == 1
    assert order_view(client, admin_headers)["messages"][0]["status"] == "sent"


def test_a_message_waiting_to_be_retried_is_cancelled_with_its_order(client, admin_headers, cloud_api):
    customer_writes(client)
    cloud_api.fail_next(429, code=130429, retry_after=5)  # the retry waits at least 5 s
    post_order(client, samples.order_event("order.created", total=10000))
    wait_for(lambda: len(cloud_api.requests) == 1, 30, "the first attempt")
    post_order(client, samples.order_event("order.cancelled"))
    settled()
    time.sleep(6)  # past the retry's time: the retry task finds the message cancelled
    [message] = order_view(client, admin_headers)["messages"]
    assert message["status"] == "cancelled"
    assert cloud_api.accepted == []


def test_gateway_that_keeps_failing_ends_failed_with_its_error(client, admin_headers, cloud_api):
    customer_writes(client)
    cloud_api.fail_next(400, code=131026, times=1)
    post_order(client, samples.order_event("order.created", total=10000))
    settled()
    [message] = order_view(client, admin_headers)["messages"]
    assert message["status"] == "failed"
    assert message["error"]["code"] == 131026
    assert len(cloud_api.requests) == 1  # permanent: never retried


# Meta's re-engagement error on the send itself (131047): tests/system/test_outbound.py.


def test_re_engagement_reported_later_by_webhook_also_shows_blocked_window(
    client, admin_headers, cloud_api, drained
):
    customer_writes(client)
    post_order(client, samples.order_event("order.created", total=10000))
    settled()
    [message] = order_view(client, admin_headers)["messages"]
    error = {"code": 131047, "title": "Re-engagement message"}
    failed = samples.status(message["external_id"], "failed", BUDI_WA, errors=[error])
    body, headers = samples.encode(samples.envelope(statuses=[failed]))
    assert client.post("/webhooks/whatsapp", content=body, headers=headers).status_code == 200
    drained()
    [message] = order_view(client, admin_headers)["messages"]
    assert message["status"] == "blocked_window"
    assert message["error"]["code"] == 131047


def test_a_closed_window_sends_the_approved_template(client, admin_headers, cloud_api):
    # The customer never wrote: only a template may be sent.
    post_order(client, samples.order_event("order.created", total=150000, currency="IDR"))
    settled()
    [body] = cloud_api.accepted
    assert body["type"] == "template"
    assert body["template"]["name"] == "order_created"
    assert body["template"]["language"] == {"code": "id"}
    [component] = body["template"]["components"]
    assert [p["text"] for p in component["parameters"]] == ["Budi Santoso", "SO-1001", "Rp150.000"]
    [message] = order_view(client, admin_headers)["messages"]
    assert (message["status"], message["sent_as"]) == ("sent", "template")


def test_timeout_after_the_gateway_accepted_is_not_resent(client, admin_headers, cloud_api, drained):
    customer_writes(client)
    cloud_api.delay_next(4)  # accepted, but the answer comes after the client's 2 s timeout
    post_order(client, samples.order_event("order.created", total=10000))
    settled()
    wait_for(lambda: len(cloud_api.accepted) == 1, 30, "the fake accepted the message")
    [message] = order_view(client, admin_headers)["messages"]
    assert message["status"] == "failed" and "unconfirmed" in message["error"]
    assert len(cloud_api.requests) == 1  # not resent: the customer has it once

    # Meta's status webhook echoes our outbox id: the row is corrected to what really happened.
    callback = cloud_api.accepted[0]["biz_opaque_callback_data"]
    body, headers = samples.encode(
        samples.envelope(statuses=[samples.status("wamid.LATE", "delivered", BUDI_WA, callback=callback)])
    )
    assert client.post("/webhooks/whatsapp", content=body, headers=headers).status_code == 200
    drained()
    [message] = order_view(client, admin_headers)["messages"]
    assert (message["status"], message["external_id"]) == ("delivered", "wamid.LATE")


def test_delivery_followup_is_fired_by_beat_and_its_delivery_asks_about_the_product(
    client, admin_headers, cloud_api, drained
):
    post_order(
        client,
        samples.order_event(
            "order.shipped", courier="JNE", tracking_number="JNE1", estimated_delivery_date=today_in_jakarta()
        ),
    )
    settled()
    assert [b["template"]["name"] for b in cloud_api.accepted] == ["order_shipped"]
    assert order_view(client, admin_headers)["followup"]["state"] == "scheduled"

    beat = CeleryProcess.beat()
    try:
        wait_for(lambda: len(cloud_api.accepted) == 2, 60, "the follow-up sent by beat")
    finally:
        beat.stop()
    settled()
    followup = cloud_api.accepted[1]
    assert followup["template"]["name"] == "order_delivery_followup"
    view = order_view(client, admin_headers)
    assert view["followup"]["state"] == "fired"

    # The gateway reports the follow-up delivered: "did it meet your expectations?", once.
    wamid = next(m["external_id"] for m in view["messages"] if m["trigger"] == "order_followup_delivery")
    for state in ("delivered", "read"):
        body, headers = samples.encode(samples.envelope(statuses=[samples.status(wamid, state, BUDI_WA)]))
        client.post("/webhooks/whatsapp", content=body, headers=headers)
    drained()
    post_order(client, samples.order_event("order.received"))
    settled()
    names = [b["template"]["name"] for b in cloud_api.accepted]
    assert names == ["order_shipped", "order_delivery_followup", "order_received_feedback"]
    assert statuses(order_view(client, admin_headers))["order_followup_delivery"] == "read"


def test_a_followup_due_tomorrow_is_not_sent_today(client, admin_headers, cloud_api):
    tomorrow = (datetime.now(ZoneInfo("Asia/Jakarta")) + timedelta(days=1)).date().isoformat()
    shipped = samples.order_event("order.shipped", tracking_number="JNE1", estimated_delivery_date=tomorrow)
    post_order(client, shipped)
    settled()
    cloud_api.reset()  # the shipment's own message went out
    beat = CeleryProcess.beat()
    try:
        wait_for(lambda: "fire_due_followups" in beat.output(), 30, "beat to tick")
        time.sleep(3)  # several more ticks
    finally:
        beat.stop()
    settled()
    assert cloud_api.accepted == []
    assert order_view(client, admin_headers)["followup"]["state"] == "scheduled"


def test_followup_moves_with_the_delivery_date_and_is_cancelled_with_the_order(client, admin_headers):
    post_order(
        client,
        samples.order_event("order.shipped", tracking_number="JNE1", estimated_delivery_date="2026-12-20"),
    )
    settled()
    assert order_view(client, admin_headers)["followup"]["due_at"].startswith("2026-12-19T17:00:00")

    post_order(
        client,
        samples.order_event(
            "order.updated",
            estimated_delivery_date="2026-12-24",
            occurred_at=datetime.now().astimezone().isoformat(),
        ),
    )
    stale = samples.order_event(
        "order.updated", estimated_delivery_date="2026-12-01", occurred_at="2026-01-01T00:00:00+07:00"
    )
    post_order(client, stale)
    settled()
    view = order_view(client, admin_headers)
    assert view["estimated_delivery_date"] == "2026-12-24"
    assert view["followup"]["due_at"].startswith("2026-12-23T17:00:00")  # 00:00 in Jakarta

    post_order(client, samples.order_event("order.cancelled"))
    settled()
    view = order_view(client, admin_headers)
    assert view["stage"] == "cancelled"
    assert view["followup"]["state"] == "cancelled"


def test_two_beat_processes_send_each_followup_once(client, cloud_api):
    orders = [f"SO-{n}" for n in range(20)]
    for n, order_id in enumerate(orders):
        event = samples.order_event(
            "order.shipped",
            order_id,
            phone=f"0813-0000-{n:04d}",
            contact_id=f"C-{n}",
            tracking_number=f"JNE{n}",
            estimated_delivery_date=today_in_jakarta(),
        )
        post_order(client, event)
    settled()
    cloud_api.reset()  # the shipments' own messages went out

    beats = [CeleryProcess.beat(), CeleryProcess.beat()]
    try:
        wait_for(lambda: len(cloud_api.accepted) >= len(orders), 60, "every follow-up sent")
        # Let both beats tick a few more times: nothing more may go out.
        wait_for(lambda: _fired() == len(orders), 30, "every follow-up fired")
        time.sleep(3)
    finally:
        for beat in beats:
            beat.stop()
    settled()
    order_ids = [body["template"]["components"][0]["parameters"][1]["text"] for body in cloud_api.accepted]
    assert sorted(order_ids) == sorted(orders)  # each once, none twice


def _fired() -> int:
    with session_scope() as session:
        return session.scalar(select(func.count()).where(DeliveryFollowup.state == "fired"))


@pytest.mark.parametrize(
    ("event", "field"),
    [
        (samples.order_event("order.shipped", courier="JNE"), "order.tracking_number"),
        (samples.order_event("order.created", phone="12"), "contact.phone"),
        (samples.order_event("order.created", phone=""), "contact.phone"),
        ({**samples.order_event("order.paid"), "orders": [{"id": "SO-1"}, {"id": "SO-2"}]}, "orders"),
        ([samples.order_event("order.paid"), samples.order_event("order.paid", "SO-2")], "body"),
        (samples.order_event("order.paid", ids=["SO-1", "SO-2"]), "order.ids"),
        (samples.order_event("order.exploded"), "type"),
        (
            samples.order_event("order.created", estimated_delivery_date="besok"),
            "order.estimated_delivery_date",
        ),
        (
            samples.order_event("order.created", estimated_delivery_date="2026-02-30"),
            "order.estimated_delivery_date",
        ),
        ({k: v for k, v in samples.order_event("order.paid").items() if k != "order"}, "order"),
        ({k: v for k, v in samples.order_event("order.paid").items() if k != "contact"}, "contact"),
        ({**samples.order_event("order.paid"), "occurred_at": "yesterday"}, "occurred_at"),
        (samples.order_event("order.created", items={"sku": "A"}), "order.items"),
        (samples.order_event("order.created", items=["kaos"]), "order.items[0]"),
        (
            samples.order_event("order.created", items=[{"sku": "A", "qty": 1, "price": 1}]),
            "order.items[0].name",
        ),
        (
            samples.order_event("order.created", items=[{"name": "Kaos", "qty": 0, "price": 1}]),
            "order.items[0].qty",
        ),
        (
            samples.order_event("order.created", items=[{"name": "Kaos", "qty": 1, "price": -5}]),
            "order.items[0].price",
        ),
    ],
)
def test_rejected_events_name_the_field_and_change_nothing(client, event, field):
    answer = post_order(client, event, status=422)
    assert answer["field"] == field
    assert answer["error"]
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(InboxEvent)) == 0
        assert session.scalar(select(func.count()).select_from(Order)) == 0


def test_order_webhook_signature(make_client):
    client = make_client(order_webhook_secret="s3cret")
    event = samples.order_event("contact.created")
    body, headers = samples.encode(event)
    assert client.post("/webhooks/orders", content=body, headers=headers).status_code == 401
    body, headers = samples.encode(event, "wrong", header="X-Signature-256")
    assert client.post("/webhooks/orders", content=body, headers=headers).status_code == 401
    body, headers = samples.encode(event, "s3cret", header="X-Signature-256")
    assert client.post("/webhooks/orders", content=body, headers=headers).status_code == 202


def test_unknown_order_is_404(client, admin_headers):
    assert client.get("/api/orders/SO-404", headers=admin_headers).status_code == 404
    assert client.get("/api/orders/SO-404").status_code == 401
