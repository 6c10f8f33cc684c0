"""The CRM sync sweeper: beat's guarantee that a queued sync job is never forgotten.

A sync job whose task was lost (the broker was down at commit, a Redis restart dropped the
queue, a countdown task died with its worker) stays ``queued`` past its due time; a job whose
worker was killed mid-sync stays ``running`` after its lease ran out. Either way the sweeper
publishes the contact's task again. Running a contact twice is harmless: the second task finds
the contact leased, or nothing due. Done jobs older than a week are deleted on the way.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import and_, delete, func, or_, select, update

from domain.replies import HUMAN
from models import Contact, Conversation, CrmRecord, CrmSyncJob, RoutingDecision
from models.base import utcnow
from models.crm import DONE, QUEUED, RUNNING
from models.db import session_scope
from observability.metrics import CRM_REQUEUED
from pipeline import crm_sync
from queueing import names, publish
from queueing.tasks import periodic_task
from settings import settings

log = logging.getLogger(__name__)

BATCH = 1000
# Done jobs are kept this long (the API shows when a contact last synced), then deleted.
KEEP_DONE = timedelta(days=7)


@periodic_task(names.SWEEP_CRM_SYNC)
def sweep_sync_jobs() -> int:
    """Publish again the contacts with a job overdue by INBOX_SWEEP_AFTER_SECONDS or a lapsed
    lease. Returns how many contacts were published."""
    if not settings.odoo_url:
        return 0
    now = utcnow()
    overdue = now - timedelta(seconds=settings.inbox_sweep_after_seconds)
    with session_scope() as session:
        rows = session.execute(
            select(CrmSyncJob.id, CrmSyncJob.contact_id)
            .where(
                or_(
                    and_(CrmSyncJob.state == QUEUED, CrmSyncJob.next_attempt_at < overdue),
                    and_(CrmSyncJob.state == RUNNING, CrmSyncJob.lease_until < now),
                )
            )
            .order_by(CrmSyncJob.next_attempt_at)
            .limit(BATCH)
            .with_for_update(skip_locked=True)
        ).all()
        # Published now: not again before another INBOX_SWEEP_AFTER_SECONDS have passed.
        queued = [job_id for job_id, _ in rows]
        if queued:
            session.execute(
                update(CrmSyncJob)
                .where(CrmSyncJob.id.in_(queued), CrmSyncJob.state == QUEUED)
                .values(next_attempt_at=now)
            )
        old = select(CrmSyncJob.id).where(CrmSyncJob.state == DONE, CrmSyncJob.done_at < now - KEEP_DONE)
        session.execute(delete(CrmSyncJob).where(CrmSyncJob.id.in_(old.limit(BATCH).scalar_subquery())))
    contacts = sorted({contact_id for _, contact_id in rows})
    if contacts:
        publish.sync_contacts(contacts)
        CRM_REQUEUED.inc(len(contacts))
        log.warning("re-published CRM sync for stale jobs", extra={"count": len(contacts)})
    return len(contacts)


# Respond-by times older than this are not turned into activities any more.
RESPONSE_LOOKBACK = timedelta(days=2)


@periodic_task(names.TRACK_RESPONSE_ACTIVITIES)
def track_response_activities() -> int:
    """A conversation waiting for a person past its respond-by time becomes a to-do for its
    salesperson on the lead (one per waiting spell, unique on it); one that was answered since
    gets its to-do marked done. Returns how many activities were queued or closed."""
    if not settings.odoo_url:
        return 0
    now = utcnow()
    changed = 0
    with session_scope() as session:
        latest = (
            select(RoutingDecision.conversation_id, func.max(RoutingDecision.respond_by).label("respond_by"))
            .where(
                RoutingDecision.responder == HUMAN,
                RoutingDecision.respond_by < now,
                RoutingDecision.respond_by > now - RESPONSE_LOOKBACK,
            )
            .group_by(RoutingDecision.conversation_id)
            .subquery()
        )
        waiting = session.execute(
            select(Conversation, latest.c.respond_by)
            .join(latest, latest.c.conversation_id == Conversation.id)
            .where(
                Conversation.awaiting_reply_since.is_not(None),
                Conversation.awaiting_reply_since < latest.c.respond_by,
            )
            .limit(BATCH)
        ).all()
        for conversation, respond_by in waiting:
            key = crm_sync.response_key(conversation.id, conversation.awaiting_reply_since)
            if session.scalar(select(CrmSyncJob.id).where(CrmSyncJob.dedupe_key == key)):
                continue
            contact = session.get(Contact, conversation.contact_id)
            if contact is not None:
                crm_sync.queue_response_activity(
                    session, contact, conversation.id, conversation.awaiting_reply_since, respond_by
                )
                changed += 1
        open_ones = session.scalars(
            select(CrmRecord)
            .where(CrmRecord.model == "mail.activity", CrmRecord.local_key.like("respond:%"))
            .limit(BATCH)
        ).all()
        for record in open_ones:
            data = record.data or {}
            if record.contact_id is None:
                continue
            conversation = session.get(Conversation, int(data.get("conversation_id") or 0))
            still = (
                conversation is not None
                and conversation.awaiting_reply_since is not None
                and (
                    crm_sync.response_key(conversation.id, conversation.awaiting_reply_since)
                    == record.local_key
                )
            )
            if not still:
                crm_sync.queue_response_answered(session, record.contact_id, record.local_key)
                changed += 1
    return changed
