"""CRM sync: an outbox of sync jobs, drained per contact by the ``crm`` queue.

**Queueing.** ``queue_sync`` (the contact's lead is out of date: a new conversation, a label
change), ``queue_log`` (new messages to post), ``queue_order_event`` and
``queue_followup_activity`` write a ``crm_sync_jobs`` row in the caller's transaction, so the
sync commits or rolls back with the change that needs it. They do nothing while ``ODOO_URL`` is
unset. "Bring it up to date" jobs (lead, log) are coalesced: at most one waits per contact and
kind, however many changes arrive; jobs with a cause (an order event's note, a follow-up's
activity) are unique on that cause. The task is published after the commit; if that publish is
lost, the sweeper (schedules/crm.py) publishes it again.

**One contact at a time.** ``sync_contact(contact_id)`` claims the contact's due jobs, oldest
first, under a transaction lock on the contact (``lock_key``), marking them ``running`` with a
lease longer than any task may live. While a lease is live no other task claims that contact's
jobs, so two workers never create the same partner or lead, and a contact's jobs run in the
order they were queued. A worker killed mid-sync leaves its lease to expire; the sweeper then
publishes the contact again. The CRM is called outside any transaction.

**Failures.** A transient error (Odoo down, timeouts, 5xx) puts the job back with exponential
backoff and jitter, capped at ``CRM_RETRY_MAX_SECONDS``, with no limit on attempts: the backlog
drains when Odoo returns. The contact's later jobs wait behind it (order is kept); other
contacts are not affected. A permanent error (validation, access rights) fails that job with
the CRM's error kept, visible in ``GET /api/contacts/{id}``, and the contact's next jobs go on.
What each job does is in ``workers/crm_jobs.py``.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy import delete, exists, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from integrations.crm import Crm, CrmPermanentError, CrmTransientError, crm_for
from models import Contact, Order
from models.base import utcnow
from models.crm import ACTIVITY, DONE, FAILED, LEAD, LOG, NOTE, QUEUED, RUNNING, CrmSyncJob
from models.db import dialect_insert, lock_key, session_scope
from observability.metrics import CRM_SYNC_JOBS
from settings import settings
from workers import crm_jobs
from workers.after_commit import publish_after_commit
from workers.celery_app import app

log = logging.getLogger(__name__)

SYNC_CONTACT = "workers.crm.sync_contact"
# New messages wait this long before their log is posted, so a burst of messages (customers
# often send three or four in a row) goes to the CRM as one post.
LOG_BATCH_SECONDS = 5.0
BATCH = 50  # jobs claimed at once for one contact
RUN_SECONDS = 60.0  # then the task hands over to a fresh one, so no task nears the time limit
LEASE_SECONDS = float(app.conf.task_time_limit or 300) + 30.0  # outlives any task
RETRY_BASE_SECONDS = 1.0
_PENDING_KEY = "crm_to_publish"


@dataclass(frozen=True)
class Job:
    """A claimed job, detached from its session: what ``crm_jobs`` needs to run it."""

    id: int
    contact_id: int
    kind: str
    reason: str
    dedupe_key: str | None
    payload: dict[str, Any]
    attempts: int
    unconfirmed: bool  # the last attempt may have reached the CRM: check before writing again


@cache
def adapter() -> Crm | None:
    return crm_for(settings)


# --- queueing (in the caller's transaction) ----------------------------------------------------


def queue_sync(session: Session, contact_id: int, reason: str) -> None:
    """The contact's partner and lead are out of date (new conversation, labels, lead class,
    assignment): sync them. For the labels worker: call it in the transaction that changed them."""
    _queue(session, contact_id, LEAD, reason)


def queue_log(session: Session, contact_id: int) -> None:
    """New messages of the contact: post them to the lead after LOG_BATCH_SECONDS, batched."""
    _queue(session, contact_id, LOG, "messages", delay=LOG_BATCH_SECONDS)


def queue_order_event(session: Session, contact_id: int, order: Order, event: dict[str, Any]) -> None:
    """Note an order event on the contact's lead (once per event id)."""
    _queue(
        session,
        contact_id,
        NOTE,
        event["type"],
        dedupe_key=f"order-event:{event['id']}",
        payload={"text": crm_jobs.order_note(order, event["type"])},
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
    if session.scalar(statement.returning(CrmSyncJob.id)) is not None:
        publish_after_commit(session, _PENDING_KEY, (contact_id, delay), _publish_each)


def publish(contact_ids: list[int], delay: float = 0.0) -> None:
    """One sync task per contact on the ``crm`` queue. Raises if the broker is away."""
    for contact_id in contact_ids:
        app.send_task(SYNC_CONTACT, args=(contact_id,), countdown=delay or None)


def _publish_each(pending: list[tuple[int, float]]) -> None:
    for contact_id, delay in pending:
        publish([contact_id], delay)


# --- the task ----------------------------------------------------------------------------------


@app.task(name=SYNC_CONTACT, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=None)
def sync_contact(contact_id: int) -> str:
    """Run the contact's due sync jobs in order, unless another worker is running them."""
    crm = adapter()
    if crm is None:
        return "off"
    started, outcome = time.monotonic(), "idle"
    while True:
        jobs = _claim(contact_id)
        if jobs is None:
            return "busy" if outcome == "idle" else outcome
        if not jobs:
            return outcome
        outcome = _run(crm, contact_id, jobs)
        if outcome == "retry":
            return outcome
        if time.monotonic() - started > RUN_SECONDS:
            publish([contact_id])  # more may be due: a fresh task goes on from here
            return outcome


def _claim(contact_id: int) -> list[Job] | None:
    """The contact's due jobs, oldest first, now ``running`` under a lease; None if another
    worker holds a live lease on this contact. The oldest job not yet due stops the claim, so
    jobs never overtake one that waits for a retry."""
    with session_scope() as session:
        lock_key(session, f"crm:contact:{contact_id}")
        now = utcnow()
        busy = session.scalar(
            select(
                exists().where(
                    CrmSyncJob.contact_id == contact_id,
                    CrmSyncJob.state == RUNNING,
                    CrmSyncJob.lease_until > now,
                )
            )
        )
        if busy:
            return None
        rows = session.scalars(
            select(CrmSyncJob)
            .where(CrmSyncJob.contact_id == contact_id, CrmSyncJob.state.in_((QUEUED, RUNNING)))
            .order_by(CrmSyncJob.id)
            .limit(BATCH)
            .with_for_update()
        ).all()
        claimed = []
        for row in rows:
            # A second of slack: a countdown task may run a hair before the time it was set for.
            if row.state == QUEUED and row.next_attempt_at > now + timedelta(seconds=1):
                break
            was_running = row.state == RUNNING
            row.state, row.lease_until, row.updated_at = RUNNING, now + timedelta(seconds=LEASE_SECONDS), now
            claimed.append(
                Job(
                    id=row.id,
                    contact_id=row.contact_id,
                    kind=row.kind,
                    reason=row.reason,
                    dedupe_key=row.dedupe_key,
                    payload=dict(row.payload or {}),
                    attempts=row.attempts,
                    # Found still running: its worker died, maybe after Odoo had done it.
                    unconfirmed=was_running or bool((row.error or {}).get("unconfirmed")),
                )
            )
        return claimed


def _run(crm: Crm, contact_id: int, jobs: list[Job]) -> str:
    for index, job in enumerate(jobs):
        try:
            crm_jobs.run(crm, job)
        except (CrmTransientError, SoftTimeLimitExceeded, OperationalError) as exc:
            error = exc.error if isinstance(exc, CrmTransientError) else {"message": f"{type(exc).__name__}"}
            _retry_later(contact_id, jobs[index:], error)
            return "retry"
        except CrmPermanentError as exc:
            _finish(job, FAILED, exc.error)
        except Exception as exc:
            log.exception("CRM sync job failed", extra={"job_id": job.id, "kind": job.kind})
            _finish(job, FAILED, {"message": f"internal error: {type(exc).__name__}: {exc}"[:2000]})
        else:
            _finish(job, DONE, None)
    return "done"


def _finish(job: Job, state: str, error: dict[str, Any] | None) -> None:
    with session_scope() as session:
        row = session.get(CrmSyncJob, job.id, with_for_update=True)
        if row is None or row.state != RUNNING:
            return
        now = utcnow()
        row.state, row.error, row.updated_at, row.lease_until = state, error, now, None
        row.attempts += 1
        if state == DONE:
            row.done_at = now
    CRM_SYNC_JOBS.labels(job.kind, state).inc()
    if state == FAILED:
        log.warning(
            "CRM sync job failed for good", extra={"job_id": job.id, "kind": job.kind, "error": error}
        )


def _retry_later(contact_id: int, jobs: list[Job], error: dict[str, Any]) -> None:
    """Back to ``queued``: the failed job after its backoff, the rest of the batch behind it."""
    head = jobs[0]
    backoff = min(settings.crm_retry_max_seconds, RETRY_BASE_SECONDS * 2**head.attempts)
    delay = random.uniform(backoff / 2, backoff)  # "equal jitter"
    with session_scope() as session:
        when = utcnow() + timedelta(seconds=delay)
        for job in jobs:
            row = session.get(CrmSyncJob, job.id, with_for_update=True)
            if row is None or row.state != RUNNING:
                continue
            _requeue(session, row, when)
            if job is head:
                row.attempts, row.error = row.attempts + 1, error
    CRM_SYNC_JOBS.labels(head.kind, "retry").inc()
    log.info("CRM unavailable; sync retried later", extra={"contact_id": contact_id, "delay": delay})
    sync_contact.apply_async((contact_id,), countdown=delay)


def _requeue(session: Session, row: CrmSyncJob, when: datetime) -> None:
    """``running`` -> ``queued``. A coalesced job's newer twin, queued while this one ran, is
    dropped: this job re-reads the contact when it runs, so it covers the twin's work, and it
    keeps its place in the contact's order (and the contact keeps one waiting job of the kind)."""
    if row.dedupe_key is None:
        session.execute(
            delete(CrmSyncJob).where(
                CrmSyncJob.contact_id == row.contact_id,
                CrmSyncJob.kind == row.kind,
                CrmSyncJob.state == QUEUED,
                CrmSyncJob.dedupe_key.is_(None),
                CrmSyncJob.id != row.id,
            )
        )
        session.flush()
    row.state, row.next_attempt_at, row.lease_until, row.updated_at = QUEUED, when, None, utcnow()
