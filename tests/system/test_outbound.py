"""The outbound send path under the failures that matter to a customer: a Redis blip while sends
wait for their rate-limit slot, a proxy's 5xx after Meta accepted, a receipt that beats a retry,
Meta's re-engagement error, order messages overtaking each other, a STOP written while a broadcast
is on its way, a broadcast that would hold every reply up, and a slot too far away to wait for.

Real Celery workers on the tests' private Redis, real PostgreSQL, and the fake Cloud API (real
HTTP): what the fake accepted is what a customer would have on their phone.
"""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import select

from models import OutboundMessage
from models.base import utcnow
from models.db import session_scope
from models.outbox import QUEUED, SENDING, SENT
from testkit import samples
from testkit.processes import wait_for
from testkit.waha import chat_of, label_contact
from tests.system import test_faults
from tests.system.conftest import REDIS
from tests.system.test_broadcasts import TEMPLATE, progress, start_broadcast
from tests.system.test_broadcasts import customer_writes as customer_writes_in
from tests.system.test_orders import (
    BUDI_WA,
    customer_writes,
    finished,
    order_view,
    post_order,
    settled,
    statuses,
    texts_sent,
)

# The fault tests' fixtures: the session's workers paused, and workers of the test's own.
alone, spawn = test_faults.alone, test_faults.spawn

# A worker of the test's own, for the tests that need other send settings than the session's.
SEND_QUEUES = "ingest,outbound,outbound_bulk,schedules"


def rows() -> list[OutboundMessage]:
    with session_scope() as session:
        return list(session.scalars(select(OutboundMessage).order_by(OutboundMessage.id)))


def sends_per_row(cloud_api) -> Counter[str]:
    """How often the fake accepted each outbox row (``biz_opaque_callback_data``)."""
    return Counter(body["biz_opaque_callback_data"] for body in cloud_api.accepted)


def order_for(n: int, prefix: str) -> dict:
    """``order.created`` for the n-th of several customers, each their own contact."""
    return samples.order_event(
        "order.created",
        f"{prefix}-{n}",
        phone=f"0813-{n + 1:04d}-{4321 + n:04d}",
        contact_id=f"C-{prefix}-{n}",
        name=f"Pelanggan {n}",
        total=10000,
    )


def post_status(client, wamid: str, state: str, callback: str) -> None:
    entry = samples.status(wamid, state, BUDI_WA, callback=callback)
    body, headers = samples.encode(samples.envelope(statuses=[entry]))
    assert client.post("/webhooks/whatsapp", content=body, headers=headers).status_code == 200


# ---------------------------------------------------------------------------------------------
# A Redis blip while sends wait for their slot
# ---------------------------------------------------------------------------------------------


def test_a_redis_blip_while_sends_wait_for_their_slot_loses_none_and_sends_none_twice(
    alone, client, cloud_api, spawn
):
    # One message every ~2 s: of three sends started together, two wait for their slots.
    spawn(
        "worker",
        concurrency=3,
        queues=SEND_QUEUES,
        OUTBOUND_RATE_PER_SECOND="0.5",
        OUTBOUND_MAX_SLOT_WAIT_SECONDS="20",
    ).wait_ready()
    for n in range(3):
        post_order(client, order_for(n, "BLIP"))

    def one_sent_two_waiting() -> bool:
        states = Counter(row.state for row in rows())
        return states[SENT] == 1 and states[SENDING] == 2

    wait_for(one_sent_two_waiting, 60, "one message sent and two waiting for their slots")
    # The broker goes: the worker cancels its running (acks-late) sends, the waiting ones too.
    REDIS.stop()
    REDIS.start()
    spawn("beat")  # the outbox sweeper

    settled(120)
    assert [row.state for row in rows()] == [SENT] * 3
    assert sends_per_row(cloud_api) == Counter({f"outbox:{row.id}": 1 for row in rows()})


# ---------------------------------------------------------------------------------------------
# The rate limiter's wait
# ---------------------------------------------------------------------------------------------


def test_a_slot_too_far_away_gives_the_message_back_instead_of_holding_it(alone, client, cloud_api, spawn):
    # One message every ~5 s and at most 1 s of waiting: the second send cannot keep its claim.
    spawn(
        "worker",
        concurrency=2,
        queues=SEND_QUEUES,
        OUTBOUND_RATE_PER_SECOND="0.2",
        OUTBOUND_MAX_SLOT_WAIT_SECONDS="1",
    ).wait_ready()
    for n in range(2):
        post_order(client, order_for(n, "CAP"))

    def given_back() -> bool:
        waiting = [row for row in rows() if row.state == QUEUED and row.next_attempt_at > utcnow()]
        return len(cloud_api.accepted) == 1 and len(waiting) == 1 and waiting[0].attempts == 0

    wait_for(given_back, 30, "the second message back in the queue, to be tried at its slot")
    settled(60)
    assert sends_per_row(cloud_api) == Counter({f"outbox:{row.id}": 1 for row in rows()})
    first, second = (r["received_at"] for r in cloud_api.requests)
    assert second - first >= 4  # not before its slot, ~5 s later: within the ceiling


# ---------------------------------------------------------------------------------------------
# Meta accepted, but the answer says otherwise
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [502, 504])
def test_a_proxy_error_after_meta_accepted_is_not_resent(
    client, admin_headers, cloud_api, drained, worker, status
):
    customer_writes(client)
    drained()
    cloud_api.accept_then_fail_next(status)
    post_order(client, samples.order_event("order.created", total=10000))
    settled()
    assert len(cloud_api.requests) == 1 and len(cloud_api.accepted) == 1  # the customer has it once
    [message] = order_view(client, admin_headers)["messages"]
    assert message["status"] == "failed" and "unconfirmed" in message["error"]

    # Meta's receipt names our outbox row: the message is corrected to what really happened.
    post_status(client, "wamid.BEHIND_PROXY", "delivered", cloud_api.accepted[0]["biz_opaque_callback_data"])
    drained()
    [message] = order_view(client, admin_headers)["messages"]
    assert (message["status"], message["external_id"]) == ("delivered", "wamid.BEHIND_PROXY")


def test_a_receipt_for_a_message_waiting_to_be_retried_settles_it_and_stops_the_retry(
    client, admin_headers, cloud_api, drained, worker
):
    customer_writes(client)
    drained()
    # Meta took it, but what came back was a bare 500: transient, retried in 4 s.
    cloud_api.accept_then_fail_next(500, retry_after=4)
    post_order(client, samples.order_event("order.created", total=10000))
    [row] = wait_for(lambda: [r for r in rows() if r.state == QUEUED and r.attempts == 1], 30, "the retry")
    sends = finished(worker, "send_outbound")

    post_status(client, "wamid.FIRST_TRY", "sent", f"outbox:{row.id}")
    drained()
    [message] = order_view(client, admin_headers)["messages"]
    assert (message["status"], message["external_id"]) == ("sent", "wamid.FIRST_TRY")

    wait_for(lambda: finished(worker, "send_outbound") > sends, 30, "the retry task to run")
    settled()
    assert len(cloud_api.requests) == 1 and len(cloud_api.accepted) == 1  # no second copy


def test_the_re_engagement_error_is_answered_with_the_template(
    client, admin_headers, cloud_api, drained, worker
):
    customer_writes(client)  # we think the window is open; Meta says it is not
    drained()
    cloud_api.fail_next(400, code=131047)
    post_order(client, samples.order_event("order.created", total=150000, currency="IDR"))
    settled()
    first, second = (r["body"] for r in cloud_api.requests)
    assert (first["type"], second["type"]) == ("text", "template")
    [body] = cloud_api.accepted
    assert body["template"]["name"] == "order_created"
    [message] = order_view(client, admin_headers)["messages"]
    assert (message["status"], message["sent_as"]) == ("sent", "template")


def test_the_re_engagement_error_without_a_template_is_a_closed_window(
    client, admin_headers, cloud_api, drained, worker
):
    chat = chat_of(7)
    label_contact(client, chat, "2", "Grade A")
    customer_writes_in(client, chat)
    drained()
    cloud_api.fail_next(400, code=131047)
    broadcast_id = start_broadcast(client, admin_headers, label="Grade A", text="Promo!")
    wait_for(lambda: progress(client, admin_headers, broadcast_id)["blocked_window"] == 1, 60, "blocked")
    assert len(cloud_api.requests) == 1 and cloud_api.accepted == []


# ---------------------------------------------------------------------------------------------
# Order messages in the order of their steps
# ---------------------------------------------------------------------------------------------


def test_a_later_step_never_overtakes_an_earlier_one_waiting_for_its_retry(
    client, admin_headers, cloud_api, drained, worker
):
    customer_writes(client)
    drained()
    cloud_api.fail_next(429, code=130429, retry_after=3)  # "being processed" must try again in 3 s
    post_order(client, samples.order_event("order.created", total=150000))
    wait_for(lambda: len(cloud_api.requests) == 1, 30, "the first attempt")
    post_order(client, samples.order_event("order.paid"))
    settled()

    created, paid = texts_sent(cloud_api)
    assert "diproses" in created and "pembayaran" in paid
    assert statuses(order_view(client, admin_headers)) == {"order_created": "sent", "order_paid": "sent"}


# ---------------------------------------------------------------------------------------------
# Opting out while a broadcast is on its way
# ---------------------------------------------------------------------------------------------


def test_stop_written_while_the_broadcast_waits_to_be_sent_cancels_it(
    client, admin_headers, cloud_api, drained, worker
):
    chat = chat_of(8)
    label_contact(client, chat, "2", "Grade A")
    customer_writes_in(client, chat)
    drained()
    cloud_api.fail_next(429, code=130429, retry_after=5)  # the broadcast's message waits 5 s
    broadcast_id = start_broadcast(client, admin_headers, label="Grade A", text="Promo akhir tahun!")
    wait_for(lambda: len(cloud_api.requests) == 1, 30, "the first attempt")
    customer_writes_in(client, chat, "STOP")
    drained()

    def settled_broadcast() -> dict | None:
        view = progress(client, admin_headers, broadcast_id)
        return view if view["queued"] == 0 else None

    view = wait_for(settled_broadcast, 60, "the broadcast settled")
    assert cloud_api.accepted == []
    assert (view["sent"], view["skipped_opted_out"]) == (0, 1)


# ---------------------------------------------------------------------------------------------
# A broadcast does not hold the replies up
# ---------------------------------------------------------------------------------------------


def test_an_order_message_goes_out_while_a_long_broadcast_is_still_sending(
    alone, client, admin_headers, cloud_api, drained, spawn
):
    spawn("worker", concurrency=2, queues=SEND_QUEUES, OUTBOUND_RATE_PER_SECOND="10").wait_ready()
    segment = [chat_of(100 + i) for i in range(40)]
    for chat in segment:
        label_contact(client, chat, "2", "Grade A")
    drained()
    broadcast_id = start_broadcast(client, admin_headers, label="Grade A", text="Promo!", template=TEMPLATE)
    wait_for(lambda: len(cloud_api.accepted) >= 3, 60, "the broadcast under way")
    post_order(client, samples.order_event("order.created", total=10000))

    wait_for(lambda: progress(client, admin_headers, broadcast_id)["sent"] == 40, 120, "the broadcast sent")
    settled()
    kinds = [body["template"]["name"] for body in cloud_api.accepted]  # nobody wrote: templates
    position = kinds.index("order_created")
    # Behind the broadcast's queue it would have come last; it went with the next free slots.
    assert len(kinds) - 1 - position >= 15, f"order message sent {position + 1}th of {len(kinds)}"
