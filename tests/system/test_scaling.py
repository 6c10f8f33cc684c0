"""Scaling out on the real parts: several worker processes on one queue, and two beats at once.

1. *One contact's work stays in order across processes.* Two ``celery worker -c 3`` processes
   share the queues while a burst of one customer's events arrives in shuffled order: Cloud API
   messages, WAHA label added/removed alternating with increasing event times, and an order's
   events out of order. Six pool processes take them at once; the contact row lock
   (``FOR NO KEY UPDATE``, taken by identity resolution) serialises them, and "newest event time
   wins" decides the state, whatever order they were processed in. Afterwards there is one
   contact, one conversation whose ``message_count`` equals its messages, each label in the state
   of its newest event, the order at its furthest stage with the newest event's details, and each
   order message sent at most once.

2. *A second beat started by mistake does no harm.* ``tests/system/test_orders.py`` already runs two
   beats against due delivery follow-ups (each follow-up sent once), so this test covers what
   else beat drives: the sweepers. Two ``celery beat`` processes (each with its own schedule
   file) run against inbox events whose tasks were lost, outbox messages whose send tasks were
   lost and a broadcast whose expansion task was lost. Twice as many sweep tasks then run,
   concurrently, in two worker processes; ``FOR UPDATE SKIP LOCKED`` claims, idempotent tasks
   and the outbox's unique cause keep the effects single: each event processed once, each
   message and each broadcast recipient reached once at the (fake) Cloud API.

The first test found that an order's details could depend on the order its events were
processed in; the test at the end of this module reproduces that case deterministically.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, update

from models import (
    Broadcast,
    Contact,
    ContactLabel,
    Conversation,
    InboxEvent,
    Label,
    LabelChange,
    Message,
    Order,
    OutboundMessage,
)
from models.base import utcnow
from models.db import session_scope
from models.outbox import QUEUED, SENDING
from testkit import samples
from testkit.processes import wait_for
from tests.system import test_faults
from tests.system.test_faults import count, inbox, new_wa_id, processed

# The fixtures of the fault tests: our own worker and beat processes (stopped after each test),
# and the session's shared worker kept from consuming meanwhile.
spawn = test_faults.spawn
alone = test_faults.alone


def post(client, path: str, body: bytes, headers: dict[str, str], status: int = 200) -> None:
    answer = client.post(path, content=body, headers=headers)
    assert answer.status_code == status, answer.text


def settled() -> bool:
    with session_scope() as session:
        pending = session.scalar(select(func.count()).where(InboxEvent.state == "pending"))
        unsent = session.scalar(select(func.count()).where(OutboundMessage.state.in_((QUEUED, SENDING))))
    return pending == 0 and unsent == 0


def tasks_done(worker, task: str) -> int:
    """How many ``task``s this worker process finished (from its log)."""
    return sum(
        1
        for line in worker.log_path.read_text(errors="replace").splitlines()
        if f"{task}[" in line and "succeeded" in line
    )


def task_intervals(worker, task: str) -> list[tuple[float, float]]:
    """(start, end) of each ``task`` this worker finished, from its log's end time and runtime."""
    intervals = []
    for line in worker.log_path.read_text(errors="replace").splitlines():
        if f"{task}[" not in line or "succeeded" not in line:
            continue
        record = json.loads(line[line.index("{") :])
        end = datetime.strptime(record["time"], "%Y-%m-%d %H:%M:%S,%f").timestamp()
        intervals.append((end - float(record["data"]["runtime"]), end))
    return intervals


def overlapping(intervals: list[tuple[float, float]]) -> int:
    """How many intervals started before an earlier-started one had ended."""
    found, latest_end = 0, float("-inf")
    for start, end in sorted(intervals):
        found += start < latest_end
        latest_end = max(latest_end, end)
    return found


def accepted_per_outbox_row(cloud_api) -> Counter[int]:
    callbacks = [body.get("biz_opaque_callback_data", "") for body in cloud_api.accepted]
    assert all(c.startswith("outbox:") for c in callbacks), callbacks
    return Counter(int(c[7:]) for c in callbacks)


# ---------------------------------------------------------------------------------------------
# 1. One contact, many events, several worker processes
# ---------------------------------------------------------------------------------------------

MESSAGES = 30
LABEL_EVENTS = {"7": 21, "8": 20}  # label id -> events; alternating, starting with "added"


def test_one_contacts_events_through_several_processes_end_in_the_newest_state(
    alone, client, cloud_api, spawn
):
    wa_id = new_wa_id()
    typed = f"0{wa_id[2:5]}-{wa_id[5:9]}-{wa_id[9:]}"  # 0812-XXXX-XXXX, the same person
    chat = f"{wa_id}@c.us"
    base = int(time.time()) - 3600  # an hour ago: one conversation, window open
    deliveries: list[tuple[str, bytes, dict[str, str], int]] = []

    wamids = []
    for i in range(MESSAGES):
        payload = samples.inbound_text(wa_id, "Rina", f"pesan {i}", at=base + 10 * i)
        wamids.append(payload["entry"][0]["changes"][0]["value"]["messages"][0]["id"])
        deliveries.append(("/webhooks/whatsapp", *samples.encode(payload), 200))

    newest_label_ms = {}
    for label_id, events in LABEL_EVENTS.items():
        for i in range(events):
            action = "added" if i % 2 == 0 else "removed"
            at_ms = (base + 5 * i) * 1000 + int(label_id)
            newest_label_ms[label_id] = max(newest_label_ms.get(label_id, 0), at_ms)
            envelope = samples.waha_label_chat(action, chat, label_id, f"Label {label_id}", at_ms=at_ms)
            deliveries.append(("/webhooks/waha", *samples.waha_encode(envelope), 200))

    moments = [datetime.fromtimestamp(base + 60 * i, UTC) for i in range(4)]
    delivery_date = (datetime.now(ZoneInfo("Asia/Jakarta")).date() + timedelta(days=3)).isoformat()
    order_events = [
        # Only one event carries the total; several totals are the last test's case.
        ("order.created", moments[0], {"total": 100000, "currency": "IDR"}),
        ("order.paid", moments[1], {}),
        ("order.updated", moments[2], {"courier": "SiCepat"}),
        (
            "order.shipped",
            moments[3],
            {"courier": "JNE", "tracking_number": "TRK-NEWEST", "estimated_delivery_date": delivery_date},
        ),
    ]
    order_id = f"SO-SCALE-{wa_id[-6:]}"
    contact_fields = {"phone": typed, "name": "Rina", "contact_id": f"C-{wa_id}"}
    for event_type, moment, details in order_events:
        event = samples.order_event(
            event_type, order_id, occurred_at=moment.isoformat(), **contact_fields, **details
        )
        deliveries.append(("/webhooks/orders", *samples.encode(event), 202))
    welcome = samples.order_event("contact.created", None, **contact_fields)
    deliveries.append(("/webhooks/orders", *samples.encode(welcome), 202))

    workers = [spawn("worker", concurrency=3) for _ in range(2)]
    for worker in workers:
        worker.wait_ready()
    random.Random(7).shuffle(deliveries)  # arrival order is not event-time order
    for path, body, headers, status in deliveries:
        post(client, path, body, headers, status)

    wait_for(processed(len(deliveries)), 120, "every event processed")
    wait_for(settled, 60, "the outbox settled")

    # Six pool processes in two workers shared the burst, working on this one contact at the same
    # time (a pool child runs one task at a time: overlapping tasks ran in different processes),
    # and each event took effect once.
    ingest = "workers.ingest.process_inbox_event"
    for worker in workers:
        assert tasks_done(worker, ingest) > 0, f"{worker.name} did nothing"
    assert overlapping([i for worker in workers for i in task_intervals(worker, ingest)]) > 0
    assert all(e.attempts == 1 for e in inbox())

    # One person: the WhatsApp id, the WAHA chat and the order system's typed number.
    with session_scope() as session:
        [contact] = session.scalars(select(Contact).where(Contact.merged_into_id.is_(None))).all()
        assert contact.phone_e164 == f"+{wa_id}"
        assert count(Contact) == 1

        # One conversation; its counter moved once per message, inbound and outbound alike.
        [conversation] = session.scalars(select(Conversation)).all()
        stored = session.scalars(select(Message).where(Message.conversation_id == conversation.id)).all()
        assert conversation.message_count == len(stored)
        inbound = sorted(m.external_id for m in stored if m.direction == "inbound")
        assert inbound == sorted(wamids)
        newest_message = datetime.fromtimestamp(base + 10 * (MESSAGES - 1), UTC)
        assert conversation.last_inbound_at.replace(tzinfo=UTC) == newest_message
        assert contact.last_inbound_at.replace(tzinfo=UTC) == newest_message
        assert conversation.started_at.replace(tzinfo=UTC) == datetime.fromtimestamp(base, UTC)

        # Labels: the newest event of each decides, every event is in the history once.
        states = {
            label.external_id: row
            for row, label in session.execute(
                select(ContactLabel, Label).join(Label, Label.id == ContactLabel.label_id)
            )
        }
        for label_id, events in LABEL_EVENTS.items():
            newest_action_added = (events - 1) % 2 == 0
            row = states[label_id]
            assert row.active is newest_action_added, f"label {label_id}"
            newest = datetime.fromtimestamp(newest_label_ms[label_id] / 1000, UTC)
            assert row.changed_at.replace(tzinfo=UTC) == newest
            history = session.scalars(
                select(LabelChange)
                .join(Label, Label.id == LabelChange.label_id)
                .where(Label.external_id == label_id)
            ).all()
            assert len(history) == events
            assert [c.applied for c in history if c.occurred_at.replace(tzinfo=UTC) == newest] == [True]

        # The order: furthest stage, each step's time from its own event, newest details.
        order = session.scalars(select(Order).where(Order.external_id == order_id)).one()
        assert order.stage == "shipped"
        assert order.ordered_at.replace(tzinfo=UTC) == moments[0]
        assert order.paid_at.replace(tzinfo=UTC) == moments[1]
        assert order.shipped_at.replace(tzinfo=UTC) == moments[3]
        assert (order.total, order.courier, order.tracking_number) == (100000, "JNE", "TRK-NEWEST")
        messages = session.scalars(select(OutboundMessage).where(OutboundMessage.order_id == order.id)).all()
        triggers = Counter(m.trigger for m in messages)
        welcomes = session.scalar(select(func.count()).where(OutboundMessage.trigger == "contact_created"))

    # Whatever order the steps were processed in: the furthest step's message went, none twice.
    assert triggers["order_delivery"] == 1
    assert all(n == 1 for n in triggers.values()), triggers
    assert welcomes == 1
    assert all(n == 1 for n in accepted_per_outbox_row(cloud_api).values())


# ---------------------------------------------------------------------------------------------
# 2. Two beats at once: the sweepers
# ---------------------------------------------------------------------------------------------

NUMBERS = 8
PER_NUMBER = 5
LOST_SENDS = 10
LABELLED = 12


def _contacts(prefix: str, n: int) -> list[int]:
    """``n`` contacts who wrote a minute ago (their window is open: text goes out)."""
    with session_scope() as session:
        contacts = [
            Contact(
                name=f"{prefix} {i}",
                phone_e164=f"+62813{random.randrange(10**8):08d}",
                last_inbound_at=utcnow() - timedelta(minutes=1),
            )
            for i in range(n)
        ]
        session.add_all(contacts)
        session.flush()
        return [c.id for c in contacts]


def test_two_beats_sweep_each_lost_event_message_and_broadcast_once(
    alone, client, cloud_api, spawn, monkeypatch
):
    import producers.inbox

    # Inbox events whose tasks the broker never got (it was down when they were accepted).
    def broker_down(_ids):
        raise ConnectionError("broker unavailable")

    monkeypatch.setattr(producers.inbox, "enqueue", broker_down)
    numbers = [new_wa_id() for _ in range(NUMBERS)]
    sent: list[str] = []
    for wa_id in numbers:
        messages = [samples.text(wa_id, f"pesan {n}") for n in range(PER_NUMBER)]
        sent += [m["id"] for m in messages]
        payload = samples.envelope(messages=messages, contacts=[samples.profile(wa_id, "Andi")])
        post(client, "/webhooks/whatsapp", *samples.encode(payload))
    monkeypatch.undo()
    with session_scope() as session:
        session.execute(update(InboxEvent).values(enqueued_at=utcnow() - timedelta(hours=1)))

    # Outbox messages whose send tasks were lost (a Redis restart after the commit).
    lost_ids = []
    with session_scope() as session:
        for i, contact_id in enumerate(_contacts("Lost", LOST_SENDS)):
            row = OutboundMessage(
                dedupe_key=f"test:lost-send:{i}",
                trigger="broadcast",
                contact_id=contact_id,
                text=f"Pesan {i}",
                state=QUEUED,
                next_attempt_at=utcnow() - timedelta(hours=1),
            )
            session.add(row)
            session.flush()
            lost_ids.append(row.id)

    # A broadcast whose expansion task was lost right after the API answered 202.
    labelled = _contacts("Grade A", LABELLED)
    with session_scope() as session:
        label = Label(session="default", external_id="9", name="Grade A")
        session.add(label)
        session.flush()
        session.add_all(
            ContactLabel(contact_id=c, label_id=label.id, active=True, changed_at=utcnow()) for c in labelled
        )
        broadcast = Broadcast(
            label="Grade A", text="Promo akhir tahun", published_at=utcnow() - timedelta(hours=1)
        )
        session.add(broadcast)
        session.flush()
        broadcast_id = broadcast.id

    workers = [spawn("worker", concurrency=2) for _ in range(2)]
    for worker in workers:
        worker.wait_ready()
    beats = [spawn("beat"), spawn("beat")]

    def broadcast_expanded() -> bool:
        with session_scope() as session:
            return session.get(Broadcast, broadcast_id).state == "expanded"

    wait_for(processed(len(sent)), 90, "every lost event swept and processed")
    wait_for(broadcast_expanded, 60, "the broadcast expanded")
    wait_for(settled, 60, "every message sent")
    time.sleep(4)  # both beats tick a few more times: nothing more may happen
    for beat in beats:
        beat.stop()
    assert settled()

    # Both beats were sweeping, and the sweepers did the work.
    for beat in beats:
        log = beat.log_path.read_text(errors="replace")
        for entry in ("sweep-inbox", "sweep-outbox", "sweep-broadcasts"):
            assert f"Sending due task {entry}" in log, f"{beat.name} never sent {entry}"
    assert sum(tasks_done(w, "schedules.sweepers.sweep_inbox") for w in workers) >= 4

    # Each event processed once: one message row each, counters incremented once.
    assert all(e.attempts == 1 and e.state == "processed" for e in inbox())
    with session_scope() as session:
        inbound = session.scalars(select(Message.external_id).where(Message.direction == "inbound")).all()
        assert sorted(inbound) == sorted(sent)
        for conversation in session.scalars(select(Conversation)):
            messages = session.scalar(select(func.count()).where(Message.conversation_id == conversation.id))
            assert conversation.message_count == messages
        assert session.get(Broadcast, broadcast_id).targeted == LABELLED
        broadcast_rows = session.scalars(
            select(OutboundMessage.id).where(OutboundMessage.broadcast_id == broadcast_id)
        ).all()
        states = Counter(
            session.scalars(
                select(OutboundMessage.state).where(OutboundMessage.id.in_(lost_ids + broadcast_rows))
            )
        )
    assert len(broadcast_rows) == LABELLED
    assert states == {"sent": LOST_SENDS + LABELLED}

    # Each lost message and each broadcast recipient reached the Cloud API exactly once.
    accepted = accepted_per_outbox_row(cloud_api)
    assert {row: accepted[row] for row in lost_ids + broadcast_rows} == dict.fromkeys(
        lost_ids + broadcast_rows, 1
    )
    assert all(n == 1 for n in accepted.values()), accepted


# ---------------------------------------------------------------------------------------------
# Found by the test above: a detail's final value depended on the processing order (one
# details_as_of per order); each detail now keeps the time of the event that set it.
# ---------------------------------------------------------------------------------------------


def test_order_total_comes_from_the_newest_event_that_has_one_whatever_the_processing_order(
    client, monkeypatch
):
    import producers.inbox
    from workers.ingest import process_inbox_event

    monkeypatch.setattr(producers.inbox, "enqueue", lambda _ids: None)  # processed here, in order
    base = datetime.now(UTC) - timedelta(hours=1)
    events = {
        "order.paid": (base, {"total": 120000}),
        "order.updated": (base + timedelta(minutes=1), {"total": 110000}),  # the newest total
        "order.shipped": (base + timedelta(minutes=2), {"courier": "JNE", "tracking_number": "TRK-1"}),
    }
    ids = {}
    for event_type, (moment, details) in events.items():
        event = samples.order_event(event_type, "SO-DETAILS", occurred_at=moment.isoformat(), **details)
        post(client, "/webhooks/orders", *samples.encode(event), 202)
        with session_scope() as session:
            ids[event_type] = session.scalar(select(func.max(InboxEvent.id)))
    # Two workers could take them in this order: the newest event first, then the oldest.
    for event_type in ("order.shipped", "order.paid", "order.updated"):
        assert process_inbox_event(ids[event_type]) == "processed"
    with session_scope() as session:
        total = session.scalars(select(Order.total).where(Order.external_id == "SO-DETAILS")).one()
    # In time order the total is 110000 (order.updated is newer than order.paid); here it is 120000.
    assert total == 110000
