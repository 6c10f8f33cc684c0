"""The send ceiling as the gateway sees it: two real worker processes share one channel's limit,
and no one-second window of arrivals at the fake Cloud API holds more than the ceiling.

Real Celery workers on the tests' private Redis (where the limit lives), real PostgreSQL, and the
fake Cloud API over real HTTP, which stamps each request's arrival with its own clock: the
windows are measured where Meta would count them, not where we decided to send.
"""

from __future__ import annotations

from collections import Counter

from bench.outbound_support import max_in_window
from models.db import session_scope
from models.outbox import SENT
from queueing.publish import send_outbound
from testkit.processes import wait_for
from tests.system import test_faults
from tests.system.test_send_cost import queued_texts

alone, spawn = test_faults.alone, test_faults.spawn

CEILING = 20
MESSAGES = 200


def sent_rows() -> int:
    from sqlalchemy import func, select

    from models import OutboundMessage

    with session_scope() as session:
        return session.scalar(select(func.count()).where(OutboundMessage.state == SENT)) or 0


def test_two_workers_never_exceed_the_ceiling_in_any_second(alone, spawn, cloud_api):
    workers = [
        spawn("worker", concurrency=8, queues="outbound", OUTBOUND_RATE_PER_SECOND=str(CEILING))
        for _ in range(2)
    ]
    for process in workers:
        process.wait_ready()
    ids = queued_texts(MESSAGES)

    send_outbound(ids)
    wait_for(lambda: sent_rows() == MESSAGES, 120, "every message sent")

    # Each message reached the customer once.
    per_row = Counter(body["biz_opaque_callback_data"] for body in cloud_api.accepted)
    assert len(per_row) == MESSAGES and set(per_row.values()) == {1}
    arrivals = sorted(request["received_at"] for request in cloud_api.requests)
    assert len(arrivals) == MESSAGES
    assert max_in_window(arrivals) <= CEILING
    # Both processes sent: the limit held across them, not inside one.
    sends = [process.log_path.read_text(errors="replace").count("'sent'") for process in workers]
    assert all(count >= MESSAGES // 10 for count in sends), sends
