"""Order events the database must be able to keep, the phone that decides where an order's
messages go, and when the delivery follow-up is due; end to end through the webhook, a real
Celery worker on Redis, PostgreSQL and the (fake, real HTTP) Cloud API."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from models import InboxEvent, OutboundMessage
from models.db import session_scope
from models.outbox import QUEUED, SENDING
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

    wait_for(done, timeout, "inbox processed and outbox settled")


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
