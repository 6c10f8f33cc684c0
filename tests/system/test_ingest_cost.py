"""What one inbound text costs in SQL: a test that fails if someone adds a statement per message.

The ingest task body (workers/ingest.py) runs here in the test process against the run's real
PostgreSQL and private Redis (the routing task and the live event are published after the
commit), on inbox events stored as the producer stores them; an SQLAlchemy listener counts every
statement the engine executes, COMMIT included (the counter of tests/system/test_send_cost.py).
"""

from __future__ import annotations

from sqlalchemy import select

from models import Contact, InboxEvent, Message
from models.base import utcnow
from models.db import session_scope
from producers.inbox import row_of
from producers.whatsapp import Envelope, inbox_events
from testkit import samples
from tests.system.test_send_cost import counted
from workers.ingest import process_inbox_event

# A new customer's first text, COMMIT included: the inbox row 1, identity 5 (look-up, savepoint,
# contact INSERT with its name and phone, identities, release), the message lock and dedupe 2, the
# conversation 2, the contact's and conversation's updates 2, the message 1, the open deal 2, the
# broadcast touch look-up 1, the row marked processed 1, COMMIT 1; and 4 for the CRM jobs the
# test settings' Odoo queues (a new lead and the message log, each looked up then inserted): 22
# (18 without Odoo, as in bench.ingest). It was 25 before the new
# contact was written whole by its INSERT (no UPDATE, no re-lock of its own new row) and the live
# event's team of a settings-channel conversation needed no query. Plus 2 after the commit, with
# Odoo only: the look-up (and its COMMIT) that wakes one CRM task for the new jobs rather than one
# task per job (docs/crm-odoo.md, "One wake-up per burst"): 24.
NEW_CONTACT_STATEMENTS = 24
# A known customer's next text in the same conversation: 14 (the look-up finds, then locks the
# contact; the conversation, its CRM log job and the deal are found, nothing new inserted but the
# message). Raise either only with a reason written next to it: each is paid for every message.
KNOWN_CONTACT_STATEMENTS = 14


def stored(payloads: list[dict]) -> list[int]:
    """The events stored as the producer stores them, but not published: a worker another test
    left running must not take them before this test's own task body does."""
    events = [event for p in payloads for event in inbox_events(Envelope.model_validate(p))]
    now = utcnow()
    with session_scope() as session:
        rows = [InboxEvent(**row_of(e, now)) for e in events]
        session.add_all(rows)
        session.flush()
        ids = [row.id for row in rows]
    return ids


def per_event(event_ids: list[int]) -> float:
    with counted() as seen:
        outcomes = [process_inbox_event(event_id) for event_id in event_ids]
    assert outcomes == ["processed"] * len(event_ids)
    print(
        f"statements per event: {len(seen) / len(event_ids)}", *seen[: len(seen) // len(event_ids)], sep="\n#"
    )
    return len(seen) / len(event_ids)


def test_an_inbound_text_costs_at_most_its_statements():
    customers = [f"62813000{n:05d}" for n in range(6)]
    first = stored(
        [samples.inbound_text(wa_id, f"Pelanggan {n}", "Halo kak") for n, wa_id in enumerate(customers)]
    )
    process_inbox_event(first[0])  # warm: the engine's pool, the broker connection

    assert per_event(first[1:]) <= NEW_CONTACT_STATEMENTS
    again = stored(
        [
            samples.inbound_text(wa_id, f"Pelanggan {n}", "Masih ada stok?")
            for n, wa_id in enumerate(customers)
        ]
    )
    assert per_event(again) <= KNOWN_CONTACT_STATEMENTS
    with session_scope() as session:  # every message stored once, each in its contact's conversation
        contacts = session.execute(
            select(Contact.id, Contact.name, Contact.phone_e164).where(
                Contact.phone_e164.in_([f"+{wa_id}" for wa_id in customers])
            )
        ).all()
        rows = session.execute(
            select(Message.contact_id, Message.conversation_id).where(
                Message.contact_id.in_([c.id for c in contacts])
            )
        ).all()
    # each new contact written whole by its INSERT: the profile's name and the wa_id's phone
    assert sorted((c.name, c.phone_e164) for c in contacts) == [
        (f"Pelanggan {n}", f"+{wa_id}") for n, wa_id in enumerate(customers)
    ]
    assert len(rows) == 12 and len({c for c, _ in rows}) == 6 and len({v for _, v in rows}) == 6
