"""Queueing CRM sync jobs, in the caller's transaction.

``queue_sync`` (the contact's lead is out of date: a new conversation, a label
change), ``queue_log`` (new messages to post), ``queue_order_event`` and
``queue_followup_activity`` write a ``crm_sync_jobs`` row in the caller's transaction, so the
sync commits or rolls back with the change that needs it. They do nothing while ``ODOO_URL`` is
unset. "Bring it up to date" jobs (lead, log) are coalesced: at most one waits per contact and
kind, however many changes arrive; jobs with a cause (an order event's note, a follow-up's
activity) are unique on that cause.

**Wake-ups.** After the commit a task is published only for the earliest due of the
transaction's new jobs, and not even that when an older job due no later waits at the head of
its contact: the task that takes that one loops while jobs are due and, when done, wakes the
next waiting one (workers/crm.py), and our job was committed before we looked. So a burst of
conversations starts one task, not two per conversation that nearly all find nothing to do. A
lost publish, or a task that died, is the sweeper's (schedules/crm.py): it publishes again any
job overdue by INBOX_SWEEP_AFTER_SECONDS.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, exists, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, aliased

from domain.order_events import CRM_NOTE_PREFIX
from models import Contact, Order
from models.base import utcnow
from models.crm import ACTIVITY, ACTIVITY_DONE, LEAD, LOG, ORDER, QUEUED, RUNNING, CrmSyncJob
from models.db import dialect_insert, session_scope
from pipeline.crm_jobs import order_note
from queueing import publish
from queueing.after_commit import publish_after_commit
from settings import settings

# New messages wait this long before their log is posted, so a burst of messages (customers
# often send three or four in a row) goes to the CRM as one post.
LOG_BATCH_SECONDS = 5.0
_PENDING_KEY = "crm_to_publish"

log = logging.getLogger(__name__)


def queue_sync(session: Session, contact_id: int, reason: str) -> None:
    """The contact's partner and lead are out of date (new conversation, labels, lead class,
    assignment): sync them. For the labels worker: call it in the transaction that changed them."""
    _queue(session, contact_id, LEAD, reason)


def queue_log(session: Session, contact_id: int) -> None:
    """New messages of the contact: post them to the lead after LOG_BATCH_SECONDS, batched."""
    _queue(session, contact_id, LOG, "messages", delay=LOG_BATCH_SECONDS)


def queue_order_event(session: Session, contact_id: int, order: Order, event: dict[str, Any]) -> None:
    """An order event (once per event id): the order's sale order brought up to date (created,
    confirmed, cancelled) and the event noted on it."""
    session.flush()  # the order's id
    _queue(
        session,
        contact_id,
        ORDER,
        event["type"],
        dedupe_key=f"{CRM_NOTE_PREFIX}{event['id']}",
        payload={
            "order_id": order.id,
            "text": order_note(order, event["type"]),
            # An order run in Odoo (pipeline/odoo_orders.py) is its sale order already.
            "odoo_sale_order_id": (event.get("order") or {}).get("odoo_sale_order_id"),
        },
    )


def queue_followup_activity(session: Session, contact: Contact, order: Order, followup_id: int) -> None:
    """A delivery follow-up went out: a to-do for the salesperson to check on the customer."""
    _queue(
        session,
        contact.id,
        ACTIVITY,
        "delivery_followup",
        dedupe_key=f"followup:{followup_id}",
        payload={
            "summary": f"Delivery follow-up: order {order.external_id}",
            "due": datetime.now(ZoneInfo(settings.timezone)).date().isoformat(),
            "note": f"The customer was asked on WhatsApp whether order {order.external_id} has arrived.",
        },
    )


def queue_response_activity(
    session: Session, contact: Contact, conversation_id: int, waiting_since: datetime, respond_by: datetime
) -> None:
    """The conversation has waited for a person past its respond-by time: a to-do for its
    salesperson on the lead (once per waiting spell)."""
    key = response_key(conversation_id, waiting_since)
    _queue(
        session,
        contact.id,
        ACTIVITY,
        "respond_by",
        dedupe_key=key,
        payload={
            "summary": f"Reply on WhatsApp: {contact.name or contact.phone_e164 or 'customer'}",
            "due": datetime.now(ZoneInfo(settings.timezone)).date().isoformat(),
            "note": (
                "The customer has waited for an answer since "
                f"{waiting_since.astimezone(ZoneInfo(settings.timezone)):%Y-%m-%d %H:%M}; "
                f"the reply was due by {respond_by.astimezone(ZoneInfo(settings.timezone)):%H:%M}."
            ),
            "conversation_id": conversation_id,
        },
    )


def queue_response_answered(session: Session, contact_id: int, key: str) -> None:
    """The conversation was answered: its respond-by activity is done."""
    _queue(session, contact_id, ACTIVITY_DONE, "answered", dedupe_key=f"{key}:done", payload={"marker": key})


def response_key(conversation_id: int, waiting_since: datetime) -> str:
    """One respond-by activity per waiting spell of a conversation."""
    return f"respond:{conversation_id}:{int(waiting_since.timestamp())}"


def _queue(
    session: Session,
    contact_id: int,
    kind: str,
    reason: str,
    *,
    dedupe_key: str | None = None,
    payload: dict[str, Any] | None = None,
    delay: float = 0.0,
) -> None:
    if not settings.odoo_url:
        return
    if dedupe_key is None and session.scalar(
        select(CrmSyncJob.id)
        .where(
            CrmSyncJob.contact_id == contact_id,
            CrmSyncJob.kind == kind,
            CrmSyncJob.state == QUEUED,
            CrmSyncJob.dedupe_key.is_(None),
        )
        .limit(1)
    ):
        return  # one is waiting already: it will pick this change up too
    now = utcnow()
    statement = dialect_insert(session.get_bind().dialect.name)(CrmSyncJob).values(
        contact_id=contact_id,
        kind=kind,
        reason=reason,
        dedupe_key=dedupe_key,
        payload=payload,
        state=QUEUED,
        attempts=0,
        next_attempt_at=now + timedelta(seconds=delay),
        created_at=now,
        updated_at=now,
    )
    if dedupe_key is not None:
        statement = statement.on_conflict_do_nothing(index_elements=["dedupe_key"])
    job_id = session.scalar(statement.returning(CrmSyncJob.id))
    if job_id is not None:
        publish_after_commit(session, _PENDING_KEY, (job_id, contact_id, delay), _publish_first)


def _publish_first(pending: list[tuple[int, int, float]]) -> None:
    """One wake-up for the transaction's new jobs, at the earliest one's due time, unless an
    older job due no later already waits (see the module's doc)."""
    _, contact_id, delay = min(pending, key=lambda item: item[2])
    try:
        if _covered(min(job_id for job_id, _, _ in pending), utcnow() + timedelta(seconds=delay)):
            return
    except OperationalError:
        log.warning("could not look for an earlier CRM sync job; publishing", exc_info=True)
    publish.sync_contacts([contact_id], delay)


def covered_query(before_id: int | None, due: datetime) -> Select[tuple[int, datetime]]:
    """Queued jobs at the head of their contact (no older job of it queued or running), due by
    ``due`` (and older than job ``before_id``): whoever runs one goes on to the others."""
    earlier = aliased(CrmSyncJob)
    query = select(CrmSyncJob.contact_id, CrmSyncJob.next_attempt_at).where(
        CrmSyncJob.state == QUEUED,
        CrmSyncJob.next_attempt_at <= due,
        ~exists().where(
            earlier.contact_id == CrmSyncJob.contact_id,
            earlier.state.in_((QUEUED, RUNNING)),
            earlier.id < CrmSyncJob.id,
        ),
    )
    return query if before_id is None else query.where(CrmSyncJob.id < before_id)


def _covered(before_id: int, due: datetime) -> bool:
    """An older job, due no later, waits at the head of its contact: its task will reach ours.
    (Older only: two new jobs must not each count on the other.)"""
    with session_scope() as session:
        return session.execute(covered_query(before_id, due).limit(1)).first() is not None
