"""Every lock the pipeline takes, and the one order they are taken in.

Two transactions that take the same locks in opposite orders can deadlock, so every path takes
them in this order, and never a lock above one it already holds:

1. **The contact** (``contact``): its row ``FOR NO KEY UPDATE``, following merges to the
   survivor. Every step that changes what we know of a person takes it first, so one contact's
   events are applied one at a time, in order. ``NO KEY`` lets rows that point at the contact
   (their foreign-key checks take ``KEY SHARE``) be inserted meanwhile. Identity resolution,
   which may merge several contacts, locks them all at once in id order (pipeline/identity.py).
2. **The contact's rows**: its conversation, order, outbox row, routing decision or labels,
   locked ``FOR UPDATE`` by the step that changes them.
3. **One WhatsApp message** (``message``): a transaction-scoped advisory lock on its id, so a
   message and a receipt for it that arrive together are applied one after the other.
4. **Last, at commit: the labels page's roll-up** (``pipeline/label_flow.py``): its unique rows
   and day counters, in sorted order (label, day, action; a counter after its rows), taken by
   ``before_commit`` after everything else, so they can close no cycle.

A step that starts from a message id rather than a person (a receipt: the status webhook, a WAHA
ack) first finds the message's contact in our rows and locks it, then the message
(``contact_then_message``); it never takes the contact while it holds the message.

The CRM sync's claim lock (``crm_contact``) is taken in a short transaction of its own that takes
no other lock: its task's own contact waited for, then, for the contacts it batches with it, only
those free at once (``crm_contacts_if_free``, never waited for), so two claims cannot deadlock.
On SQLite, writers are serialised by ``BEGIN IMMEDIATE`` and the advisory locks are no-ops.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from models import Contact
from models.contacts import current_contact
from models.db import lock_key


def contact(session: Session, contact_id: int) -> Contact | None:
    """The current contact (after merges), locked first and fresh from the database."""
    found = current_contact(session, contact_id)
    if found is None:
        return None
    return session.scalars(
        select(Contact)
        .where(Contact.id == found.id)
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    ).one()


def message(session: Session, external_id: str) -> None:
    """The lock on one WhatsApp message id (ours or the customer's), held until commit."""
    lock_key(session, f"wamid:{external_id}")


def contact_then_message(session: Session, external_id: str, contact_of: Callable[[], int | None]) -> None:
    """The contact of a message (``contact_of`` finds it in our rows, None if none names it yet),
    then the message, in that order.

    While nothing names the contact, the send being recorded may hold the message lock and
    commit the rows that do as we wait for it. Then the message lock is given back (a savepoint
    rolled back releases it) and both are taken again, contact first: holding the message while
    waiting for its contact could deadlock with a twin receipt that took them in order.
    """
    contact_id = contact_of()
    if contact_id is None and session.get_bind().dialect.name == "postgresql":
        savepoint = session.begin_nested()
        message(session, external_id)
        contact_id = contact_of()
        if contact_id is None:
            savepoint.commit()  # RELEASE: the lock stays, held until the transaction ends
            return
        savepoint.rollback()
    if contact_id is not None:
        contact(session, contact_id)
    message(session, external_id)


def crm_contact(session: Session, contact_id: int) -> None:
    """The lock that makes claiming a contact's CRM jobs one worker's at a time."""
    lock_key(session, f"crm:contact:{contact_id}")


def crm_contacts_if_free(session: Session, contact_ids: list[int]) -> list[int]:
    """Of these contacts, those whose ``crm_contact`` lock could be taken at once, now held until
    commit; the others are being claimed by another worker this moment. It never waits, so it may
    follow ``crm_contact`` in the same transaction without risking a deadlock."""
    if not contact_ids or session.get_bind().dialect.name != "postgresql":
        return contact_ids
    taken = set(
        session.scalars(
            text(
                "SELECT c FROM unnest(CAST(:ids AS bigint[])) AS c "
                "WHERE pg_try_advisory_xact_lock(hashtextextended('crm:contact:' || c, 0))"
            ),
            {"ids": contact_ids},
        )
    )
    return [c for c in contact_ids if c in taken]
