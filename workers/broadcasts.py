"""Expanding a broadcast: one outbox row per contact that has the label, sent by the outbound worker.

Contacts are walked in id order, ``BATCH`` at a time, each batch in one transaction that also
moves the broadcast's cursor (``expanded_through``) and its counts. A task that dies half way is
delivered again (late acknowledgement) and resumes at the cursor; a replayed task finds the
broadcast expanded and does nothing; and each row is unique on ``broadcast:{id}:contact:{id}``,
so no contact can get one broadcast twice. Contacts who opted out (STOP/BERHENTI) are skipped
and counted; one who opts out after this, while the message waits for its turn, is skipped by
the outbound worker's claim. Whether a message goes as text or template is the outbound worker's decision at
send time (the customer's 24-hour window then), not this task's.
"""

from __future__ import annotations

from sqlalchemy import select

from domain.replies import BROADCAST
from models import Broadcast, Contact
from models.base import utcnow
from models.broadcasts import EXPANDED
from models.db import session_scope
from models.labels import contacts_with_label
from pipeline import channels, outbox
from queueing import names
from queueing.tasks import event_task

BATCH = 500
TRIGGER = BROADCAST


@event_task(names.EXPAND_BROADCAST)
def expand_broadcast(broadcast_id: int) -> str:
    while not _expand_batch(broadcast_id):
        pass
    return EXPANDED


def _expand_batch(broadcast_id: int) -> bool:
    """Queue the next batch of contacts; True when there is nothing left to expand."""
    with session_scope() as session:
        broadcast = session.get(Broadcast, broadcast_id, with_for_update=True)
        if broadcast is None or broadcast.state == EXPANDED:
            return True
        contacts = session.execute(
            select(Contact.id, Contact.opted_out_at)
            .where(
                Contact.id.in_(contacts_with_label(broadcast.label)),
                Contact.merged_into_id.is_(None),
                Contact.id > broadcast.expanded_through,
            )
            .order_by(Contact.id)
            .limit(BATCH)
        ).all()
        channel_id = channels.default_channel_id(session)  # a broadcast goes out through the default
        for contact_id, opted_out_at in contacts:
            broadcast.targeted += 1
            if opted_out_at is not None:
                broadcast.skipped_opted_out += 1
                continue
            outbox.queue(
                session,
                dedupe_key=f"broadcast:{broadcast.id}:contact:{contact_id}",
                trigger=TRIGGER,
                contact_id=contact_id,
                channel_id=channel_id,
                text=broadcast.text,
                template=broadcast.template,
                broadcast_id=broadcast.id,
                body=broadcast.body,
                media_file_id=broadcast.media_file_id,
            )
        if contacts:
            broadcast.expanded_through = contacts[-1].id
        if len(contacts) < BATCH:
            broadcast.state, broadcast.expanded_at = EXPANDED, utcnow()
            return True
        return False
