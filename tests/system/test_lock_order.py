"""One lock order (pipeline/locks.py): the status webhook and the send being recorded, at once.

A status webhook that names our outbox row (``biz_opaque_callback_data``) can arrive while the
outbound worker records the same send: the gateway answers the webhook as fast as the request.
Both change the contact's conversation and the message, so both lock the contact, the outbox
row and the message. Taken in opposite orders they deadlock (PostgreSQL aborts one with
``DeadlockDetected``, and the receipt or the send record is retried or lost); taken in one order
the second simply waits for the first.

Each round makes the dangerous interleaving happen instead of hoping for it: a third transaction
holds the contact while the two paths start, one after the other, and let go once both wait.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from integrations.whatsapp.cloud import outbox_callback
from models import Contact, Conversation, DeliveryStatus, Message, OutboundMessage
from models.base import utcnow
from models.db import session_scope
from models.outbox import SENDING, SENT
from pipeline import delivery_reports, locks, sent_messages
from testkit.processes import wait_for

ROUNDS = 12
_numbers = itertools.count(int(time.time()) % 10**6 * 100)


def new_send() -> tuple[int, int, str]:
    """A contact and an outbox row being sent (its answer not recorded yet): ids and its wamid."""
    with session_scope() as session:
        contact = Contact(name="Lock order", phone_e164=f"+62858{next(_numbers) % 10**8:08d}")
        session.add(contact)
        session.flush()
        now = utcnow()
        session.add(Conversation(contact_id=contact.id, started_at=now, last_message_at=now))
        row = OutboundMessage(
            dedupe_key=f"lock-order:{contact.id}",
            trigger="test",
            contact_id=contact.id,
            text="Pesanan Anda sedang diproses",
            state=SENDING,
            sent_as="text",
        )
        session.add(row)
        session.flush()
        return contact.id, row.id, f"wamid.lock-order-{row.id}"


def record_send(session: Session, outbound_id: int, wamid: str) -> None:
    """What the outbound worker does once the gateway accepted the send."""
    row = sent_messages.locked_with_contact(session, outbound_id)
    assert row is not None
    if row.external_id is None:
        sent_messages.mark_sent(session, row, wamid, "text", {"to": "test"}, utcnow())


def record_receipt(session: Session, outbound_id: int, wamid: str) -> None:
    """What the ingest worker does with the status webhook for that send."""
    status = {
        "id": wamid,
        "status": "delivered",
        "timestamp": str(int(time.time())),
        "recipient_id": "6285800000000",
        "biz_opaque_callback_data": outbox_callback(outbound_id),
    }
    delivery_reports.record_status(session, {"status": status})


class Path(threading.Thread):
    """One path in a transaction of its own; its backend pid known before it starts work."""

    def __init__(self, step: Callable[[Session], None]) -> None:
        super().__init__(daemon=True)
        self.step = step
        self.pid: int | None = None
        self.error: BaseException | None = None
        self.ready = threading.Event()

    def run(self) -> None:
        try:
            with session_scope() as session:
                self.pid = session.scalar(text("SELECT pg_backend_pid()"))
                self.ready.set()
                self.step(session)
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            self.ready.set()


def waiting_for_a_lock(pid: int | None) -> bool:
    with session_scope() as session:
        return bool(
            session.scalar(
                select(func.count())
                .select_from(text("pg_stat_activity"))
                .where(text("pid = :pid AND wait_event_type = 'Lock'"))
                .params(pid=pid)
            )
        )


def start_waiting(step: Callable[[Session], None]) -> Path:
    path = Path(step)
    path.start()
    path.ready.wait()
    wait_for(lambda: waiting_for_a_lock(path.pid) or not path.is_alive(), 30, "a path waiting for a lock")
    return path


@pytest.mark.parametrize("first", ["send", "receipt"])
def test_a_receipt_and_the_send_record_at_once_never_deadlock(first):
    for _ in range(ROUNDS):
        contact_id, outbound_id, wamid = new_send()
        paths = {
            "send": lambda s, o=outbound_id, w=wamid: record_send(s, o, w),
            "receipt": lambda s, o=outbound_id, w=wamid: record_receipt(s, o, w),
        }
        second = "receipt" if first == "send" else "send"
        with session_scope() as blocker:
            locks.contact(blocker, contact_id)  # both paths will queue up behind this
            started = [start_waiting(paths[first]), start_waiting(paths[second])]
        for path in started:
            path.join(60)
        assert [repr(path.error) for path in started if path.error is not None] == []

        # Whatever the order, the send is recorded once, with its receipt applied.
        with session_scope() as session:
            row = session.get_one(OutboundMessage, outbound_id)
            [message] = session.scalars(select(Message).where(Message.external_id == wamid)).all()
            receipts = session.scalar(select(func.count()).where(DeliveryStatus.external_id == wamid))
            assert (row.state, row.external_id, row.message_id) == (SENT, wamid, message.id)
            assert (message.status, receipts) == ("delivered", 1)


def test_a_receipt_that_beats_the_send_record_waits_for_it_and_is_applied():
    """No outbox id in the receipt (WAHA, or a send without callback data) and the send's rows not
    committed yet: the receipt cannot know the contact, waits for the message lock, finds the
    contact once the send commits and takes both locks again in order."""
    for _ in range(3):
        contact_id, outbound_id, wamid = new_send()
        with session_scope() as blocker:
            # The send stops after it took the message lock: its CRM log job cannot be written yet
            # (the conversation exists, so the lock on crm_sync_jobs is met only after it).
            blocker.execute(text("LOCK TABLE crm_sync_jobs IN SHARE MODE"))
            send = start_waiting(lambda s, o=outbound_id, w=wamid: record_send(s, o, w))
            status = {"id": wamid, "status": "read", "timestamp": str(int(time.time()))}
            receipt = start_waiting(lambda s, st=status: delivery_reports.record_status(s, {"status": st}))
        for path in (send, receipt):
            path.join(60)
        assert [repr(path.error) for path in (send, receipt) if path.error is not None] == []
        with session_scope() as session:
            [message] = session.scalars(select(Message).where(Message.external_id == wamid)).all()
            assert (message.contact_id, message.status) == (contact_id, "read")
