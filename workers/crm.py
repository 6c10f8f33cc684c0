"""CRM sync: an outbox of sync jobs, drained per contact by the ``crm`` queue.

Jobs are queued in the caller's transaction by ``pipeline.crm_sync``.

**One contact at a time.** ``sync_contact(contact_id)`` claims the contact's due jobs, oldest
first, under a transaction lock on the contact (``lock_key``), marking them ``running`` with a
lease longer than any task may live. While a lease is live no other task claims that contact's
jobs, so two workers never create the same partner or lead, and a contact's jobs run in the
order they were queued. A worker killed mid-sync leaves its lease to expire; the sweeper then
publishes the contact again. The CRM is called outside any transaction.

**Failures.** A transient error (Odoo down, timeouts, 5xx) puts the job back with exponential
backoff and jitter, capped at ``CRM_RETRY_MAX_SECONDS``, with no limit on attempts: the backlog
drains when Odoo returns. A failure on our side (the database, the soft time limit) is retried
the same way. The retry is ``unconfirmed``, so it looks in Odoo before writing again, unless
the failure surely left nothing behind: our side can fail right after Odoo did a write we never
recorded, and a job once unconfirmed stays so until it is done. The contact's later jobs wait
behind it (order is kept); other contacts are not affected. A permanent error (validation,
access rights) fails that job with the CRM's error kept, visible in ``GET /api/contacts/{id}``,
and the contact's next jobs go on.
What each job does is in ``pipeline/crm_jobs.py``.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy import and_, delete, exists, func, or_, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, aliased

from domain import backoff
from integrations.crm import Crm, CrmPermanentError, CrmTransientError, crm_for
from models.base import utcnow
from models.crm import DONE, FAILED, QUEUED, RUNNING, CrmCursor, CrmSyncJob
from models.db import dialect_insert, session_scope
from observability.metrics import CRM_MISSING, CRM_SYNC_JOBS
from pipeline import crm_back, crm_jobs, crm_sync, locks, odoo_orders
from pipeline.crm_jobs import Job
from queueing import names, publish
from queueing.app import app
from queueing.tasks import event_task, periodic_task
from settings import settings

log = logging.getLogger(__name__)

BATCH = 50  # jobs claimed at once for one contact
BATCH_CONTACTS = 50  # contacts one task syncs together
RUN_SECONDS = 60.0  # then the task hands over to a fresh one, so no task nears the time limit
LEASE_SECONDS = float(app.conf.task_time_limit or 300) + 30.0  # outlives any task
RETRY_BASE_SECONDS = 1.0
# New jobs are due in at most a log's LOG_BATCH_SECONDS (pipeline/crm_sync.py); later ones are retries.
WAKE_AHEAD_SECONDS = 2 * crm_sync.LOG_BATCH_SECONDS
LEAD_CURSOR = "odoo:crm.lead"
# Rows of crm_cursors that say what the sync found in Odoo, for GET /api/crm (api/crm.py).
CONNECTION_ROW = "odoo:connection"
MISSING_PREFIX = "odoo:missing:"


@cache
def adapter() -> Crm | None:
    return crm_for(settings)


@event_task(names.SYNC_CONTACT)
def sync_contact(contact_id: int) -> str:
    """Run the contact's due sync jobs in order, unless another worker is running them; and,
    while at it, those of up to ``BATCH_CONTACTS`` other contacts with jobs due (each under its
    own lease), so that Odoo's batch calls serve many contacts at once."""
    crm = adapter()
    if crm is None:
        return "off"
    try:
        return _sync_batch(crm, contact_id)
    finally:
        _save_connection(crm)


def _sync_batch(crm: Crm, contact_id: int) -> str:
    if not _claimable(contact_id):
        # Done already, most often by a batch another task took it into: nothing to claim and no
        # batch to start (each due job has a task of its own coming, or the sweeper's).
        return "idle"
    took: list[bool] = []
    try:
        return _sync_rounds(crm, contact_id, took)
    finally:
        if took:
            _wake_next()


def _sync_rounds(crm: Crm, contact_id: int, took: list[bool]) -> str:
    """Claim and run batches while jobs are due (``took`` gets an entry once any were claimed)."""
    started, outcome, batch = time.monotonic(), "idle", [contact_id]
    while True:
        claimed, own_busy, spare = _claim_batch(contact_id, batch)
        if own_busy and outcome == "idle":
            outcome = "busy"
        if not claimed:
            return outcome
        first = not took
        took.append(True)
        if first and spare is not None:
            # More contacts are due than one batch takes: a second task takes the next batch,
            # so that both pool processes work (each wake-up now serves many jobs).
            publish.sync_contacts([spare])
        # Each contact's data is read once per round, after its jobs were claimed, and shared by
        # the batch calls and by its jobs (which keep it up to date as they write).
        loaded: dict[int, crm_jobs.Local | None] = {}
        if len(claimed) > 1:
            try:
                crm_jobs.prefetch(crm, claimed, loaded)
            except (SoftTimeLimitExceeded, OperationalError) as exc:
                for each, jobs in claimed.items():  # Odoo may hold what we did not record
                    _retry_later(each, jobs, _retry_error(jobs[0], exc))
                return "retry"
            except (CrmPermanentError, CrmTransientError) as exc:
                # One by one then: each job searches (by our reference, the partner's open lead)
                # before it creates, so what the batch may have made is found, not made again.
                log.info("CRM batch prefetch failed; syncing one by one", extra={"error": exc.error})
                loaded.clear()  # what the batch found is not known for sure
        retried, finished = set(), Finished()
        try:
            for each, jobs in claimed.items():
                result = _run(crm, each, jobs, loaded, finished)
                if result == "retry":
                    retried.add(each)
                if each == contact_id or outcome in ("idle", "busy"):
                    outcome = result
        finally:
            finished.save()
        batch = [c for c in claimed if c not in retried]
        if not batch:
            return outcome
        if time.monotonic() - started > RUN_SECONDS:
            publish.sync_contacts(batch)  # more may be due: fresh tasks go on from here
            return outcome


def _wake_next() -> None:
    """A task that claimed jobs wakes, as it ends, the next job waiting at the head of its
    contact (now if due, else when due): jobs queued while it ran published no wake-up when an
    older one was waiting (pipeline/crm_sync.py), and this task took that one. The sweeper
    publishes again whatever this misses (the broker away, the worker killed). Only within
    WAKE_AHEAD_SECONDS: a job due later waits for a retry, whose task is published already."""
    try:
        with session_scope() as session:
            row = session.execute(
                crm_sync.covered_query(None, utcnow() + timedelta(seconds=WAKE_AHEAD_SECONDS))
                .order_by(CrmSyncJob.next_attempt_at)
                .limit(1)
            ).first()
        if row is not None:
            delay = max(0.0, (row.next_attempt_at - utcnow()).total_seconds())
            publish.sync_contacts([row.contact_id], delay)
    except Exception:
        log.warning("could not wake the next CRM sync job; the sweeper will", exc_info=True)


POLL_BATCH = 500  # leads read back per call


@periodic_task(names.POLL_ODOO)
def poll_odoo() -> int:
    """Beat's read-back of what changed in Odoo (also published at once by Odoo's webhook, a
    wake-up): the leads written since their cursor (``write_date``, the last moment read
    again), each compared with what we last wrote (pipeline/crm_back.py); and, with
    ODOO_ORDER_SYSTEM, the order steps run in Odoo (pipeline/odoo_orders.py). The first run
    only sets the cursors: what Odoo held before is not news. Returns how many changes were
    taken over."""
    crm = adapter()
    if crm is None:
        return 0
    try:
        taken = _poll_leads(crm)
        if settings.odoo_order_system:
            taken += _poll_orders(crm)
        return taken
    finally:
        _save_connection(crm)


_saved_connection: dict[str, str] = {}


def _save_connection(crm: Crm) -> None:
    """What this process found in the CRM (its version and protocol, the fields and models it
    lacks), written for ``GET /api/crm`` when it changed, and each lack counted once."""
    notices = crm.take_notices()
    connection = crm.connection()
    if not notices and (not connection or connection == _saved_connection):
        return
    # A missing thing's row holds the Odoo version that lacks it; the message is in the log.
    # Named "odoo:missing:<model>" or "odoo:missing:<model>:<field>".
    rows = {
        MISSING_PREFIX + ":".join(filter(None, (model, field))): connection.get("version") or "?"
        for model, field in notices
    }
    if connection and connection != _saved_connection:
        rows[CONNECTION_ROW] = f"{connection['version']} {connection['protocol']}"
    for model, field in notices:
        CRM_MISSING.labels(f"{model}.{field}" if field else model).inc()
    try:
        with session_scope() as session:
            insert = dialect_insert(session.get_bind().dialect.name)(CrmCursor)
            for name, value in rows.items():
                values = {"value": value[:64], "updated_at": utcnow()}
                session.execute(
                    insert.values(name=name[:64], **values).on_conflict_do_update(
                        index_elements=["name"], set_=values
                    )
                )
    except OperationalError:
        log.warning("could not record what Odoo lacks", exc_info=True)
        return
    _saved_connection.clear()
    _saved_connection.update(connection)


def _poll_leads(crm: Crm) -> int:
    since = _cursor(LEAD_CURSOR)
    if since is None:
        return 0
    taken = 0
    for _ in range(20):  # at most 10,000 leads per run; the next run goes on from the cursor
        changes = crm.changed_leads(since, POLL_BATCH)
        for change in changes:
            with session_scope() as session:
                done = crm_back.apply_lead_change(session, crm.name, change)
            if done:
                taken += 1
                log.info("taken over from Odoo", extra={"lead_id": change.lead_id, "what": done})
        latest = changes[-1].changed_at if changes else since
        _save_cursor(LEAD_CURSOR, latest)
        if len(changes) < POLL_BATCH or latest == since:
            return taken
        since = latest
    return taken


def _poll_orders(crm: Crm) -> int:
    models = ("sale.order", "account.move", "stock.picking")
    since = {model: _cursor(f"odoo:{model}") for model in models}
    if all(value is None for value in since.values()):
        return 0
    changes, cursors = crm.changed_orders(since, POLL_BATCH)
    with session_scope() as session:
        new = odoo_orders.record(session, changes)
    for model, value in cursors.items():
        _save_cursor(f"odoo:{model}", value)
    return new


def _cursor(name: str) -> str | None:
    """The cursor; a first read sets it to now (Odoo's format, UTC) and answers None."""
    with session_scope() as session:
        row = session.get(CrmCursor, name)
        if row is not None:
            return row.value
    _save_cursor(name, utcnow().strftime("%Y-%m-%d %H:%M:%S"))
    return None


def _save_cursor(name: str, value: str | None) -> None:
    if not value:
        return
    with session_scope() as session:
        row = session.get(CrmCursor, name, with_for_update=True)
        if row is None:
            session.execute(
                dialect_insert(session.get_bind().dialect.name)(CrmCursor)
                .values(name=name, value=value, updated_at=utcnow())
                .on_conflict_do_nothing(index_elements=["name"])
            )
        elif row.value < value:
            row.value, row.updated_at = value, utcnow()


def _due_contacts(session: Session, limit: int) -> list[int]:
    """Contacts with a job due now and none running under a live lease, those due longest first."""
    now = utcnow()
    running = aliased(CrmSyncJob)
    return list(
        session.scalars(
            select(CrmSyncJob.contact_id)
            .where(
                CrmSyncJob.state == QUEUED,
                CrmSyncJob.next_attempt_at <= now + timedelta(seconds=1),
                ~exists().where(
                    running.contact_id == CrmSyncJob.contact_id,
                    running.state == RUNNING,
                    running.lease_until > now,
                ),
            )
            .group_by(CrmSyncJob.contact_id)
            .order_by(func.min(CrmSyncJob.next_attempt_at))
            .limit(limit)
        )
    )


def _claimable(contact_id: int) -> bool:
    """Whether the contact has a job to claim: one due, or one whose worker's lease lapsed (the
    claim looks again, under its lock)."""
    now = utcnow()
    with session_scope() as session:
        return bool(
            session.scalar(
                select(
                    exists().where(
                        CrmSyncJob.contact_id == contact_id,
                        or_(
                            and_(
                                CrmSyncJob.state == QUEUED,
                                CrmSyncJob.next_attempt_at <= now + timedelta(seconds=1),
                            ),
                            and_(CrmSyncJob.state == RUNNING, CrmSyncJob.lease_until <= now),
                        ),
                    )
                )
            )
        )


def _claim_batch(own: int, batch: list[int]) -> tuple[dict[int, list[Job]], bool, int | None]:
    """The due jobs of the task's own contact and of up to BATCH_CONTACTS - 1 others (the
    batch's, then those due longest), each contact's oldest first, now ``running`` under a lease;
    and whether the own contact was busy (another worker holds a live lease on it). One short
    transaction: the own contact's claim lock waited for, the others' only taken if free at once
    (another worker claiming one this moment takes it); a contact with a live lease is left
    alone. The oldest job not yet due stops a contact's claim, so jobs never overtake one that
    waits for a retry. Third: a due contact left for another batch, if any."""
    with session_scope() as session:
        locks.crm_contact(session, own)
        others = [c for c in dict.fromkeys(batch + _due_contacts(session, BATCH_CONTACTS * 2)) if c != own]
        candidates = [own, *locks.crm_contacts_if_free(session, others[: BATCH_CONTACTS - 1])]
        spare = others[BATCH_CONTACTS - 1] if len(others) >= BATCH_CONTACTS else None
        now = utcnow()
        busy = set(
            session.scalars(
                select(CrmSyncJob.contact_id)
                .where(
                    CrmSyncJob.contact_id.in_(candidates),
                    CrmSyncJob.state == RUNNING,
                    CrmSyncJob.lease_until > now,
                )
                .distinct()
            )
        )
        free = [c for c in candidates if c not in busy]
        if not free:
            return {}, own in busy, None
        ranked = (
            select(
                CrmSyncJob.id,
                func.row_number().over(partition_by=CrmSyncJob.contact_id, order_by=CrmSyncJob.id).label("n"),
            )
            .where(CrmSyncJob.contact_id.in_(free), CrmSyncJob.state.in_((QUEUED, RUNNING)))
            .subquery()
        )
        rows = session.execute(
            select(
                CrmSyncJob.id,
                CrmSyncJob.contact_id,
                CrmSyncJob.kind,
                CrmSyncJob.reason,
                CrmSyncJob.dedupe_key,
                CrmSyncJob.payload,
                CrmSyncJob.attempts,
                CrmSyncJob.state,
                CrmSyncJob.next_attempt_at,
                CrmSyncJob.error,
            )
            .where(CrmSyncJob.id.in_(select(ranked.c.id).where(ranked.c.n <= BATCH)))
            .order_by(CrmSyncJob.contact_id, CrmSyncJob.id)
            .with_for_update()
        ).all()
        claimed: dict[int, list[Job]] = {}
        stopped: set[int] = set()
        for row in rows:
            # A second of slack: a countdown task may run a hair before the time it was set for.
            if row.contact_id in stopped or (
                row.state == QUEUED and row.next_attempt_at > now + timedelta(seconds=1)
            ):
                stopped.add(row.contact_id)
                continue
            claimed.setdefault(row.contact_id, []).append(
                Job(
                    id=row.id,
                    contact_id=row.contact_id,
                    kind=row.kind,
                    reason=row.reason,
                    dedupe_key=row.dedupe_key,
                    payload=dict(row.payload or {}),
                    attempts=row.attempts,
                    # Found still running: its worker died, maybe after Odoo had done it.
                    unconfirmed=row.state == RUNNING or bool((row.error or {}).get("unconfirmed")),
                )
            )
        ids = [job.id for jobs in claimed.values() for job in jobs]
        if ids:
            session.execute(
                update(CrmSyncJob)
                .where(CrmSyncJob.id.in_(ids))
                .values(state=RUNNING, lease_until=now + timedelta(seconds=LEASE_SECONDS), updated_at=now)
            )
        # The own contact first, then the others in the order they were chosen.
        return {c: claimed[c] for c in free if c in claimed}, own in busy, spare


class Finished:
    """The jobs of a round that are done or failed, marked so in one transaction at its end (one
    per job cost as much as the calls). Until then they stay ``running`` under their lease: a
    worker that dies first leaves them to be retried unconfirmed, checking before writing."""

    def __init__(self) -> None:
        self.jobs: list[tuple[Job, str, dict[str, Any] | None]] = []

    def add(self, job: Job, state: str, error: dict[str, Any] | None) -> None:
        self.jobs.append((job, state, error))

    def save(self) -> None:
        if not self.jobs:
            return
        jobs, self.jobs = self.jobs, []
        try:
            _finish_all(jobs)
        except OperationalError as exc:
            # Odoo has it all, we do not know: each contact's jobs again, checking first.
            by_contact: dict[int, list[Job]] = {}
            for job, _, _ in jobs:
                by_contact.setdefault(job.contact_id, []).append(job)
            for contact_id, each in by_contact.items():
                try:
                    _retry_later(contact_id, each, _retry_error(each[0], exc))
                except OperationalError:
                    log.warning("CRM jobs left to their lease", extra={"contact_id": contact_id})


def _run(
    crm: Crm, contact_id: int, jobs: list[Job], loaded: dict[int, crm_jobs.Local | None], finished: Finished
) -> str:
    for index, job in enumerate(jobs):
        try:
            if contact_id not in loaded:
                loaded[contact_id] = crm_jobs.load(crm, contact_id)
            crm_jobs.run(crm, job, loaded[contact_id])
            finished.add(job, DONE, None)
        except (CrmTransientError, SoftTimeLimitExceeded, OperationalError) as exc:
            finished.save()  # the jobs before it first: the retry's task must not find them running
            _retry_later(contact_id, jobs[index:], _retry_error(job, exc))
            return "retry"
        except CrmPermanentError as exc:
            finished.add(job, FAILED, exc.error)
            loaded.pop(contact_id, None)  # read again: the job may have stopped half-way
        except Exception as exc:
            log.exception("CRM sync job failed", extra={"job_id": job.id, "kind": job.kind})
            finished.add(job, FAILED, {"message": f"internal error: {type(exc).__name__}: {exc}"[:2000]})
            loaded.pop(contact_id, None)
    return "done"


def _retry_error(job: Job, exc: Exception) -> dict[str, Any]:
    """The error the retry keeps, ``unconfirmed`` when Odoo may hold a write we did not record:
    an unanswered call, any failure on our side (a database error or the time limit can strike
    right after Odoo answered), or an earlier attempt that was already unconfirmed."""
    if isinstance(exc, CrmTransientError):
        error, unconfirmed = dict(exc.error), exc.unconfirmed or job.unconfirmed
    else:
        # The type only: a database error's text holds the statement's parameters (customer data).
        error, unconfirmed = {"message": f"{type(exc).__name__} on our side"}, True
    if unconfirmed:
        error["unconfirmed"] = True
    return error


def _finish_all(jobs: list[tuple[Job, str, dict[str, Any] | None]]) -> None:
    """Mark the jobs done or failed (each only if still ``running``: ours), in one transaction."""
    now = utcnow()
    with session_scope() as session:
        done = [job.id for job, state, _ in jobs if state == DONE]
        if done:
            session.execute(
                update(CrmSyncJob)
                .where(CrmSyncJob.id.in_(done), CrmSyncJob.state == RUNNING)
                .values(
                    state=DONE,
                    error=None,
                    updated_at=now,
                    lease_until=None,
                    attempts=CrmSyncJob.attempts + 1,
                    done_at=now,
                )
            )
        for job, state, error in jobs:
            if state != DONE:
                session.execute(
                    update(CrmSyncJob)
                    .where(CrmSyncJob.id == job.id, CrmSyncJob.state == RUNNING)
                    .values(state=state, error=error, updated_at=now, lease_until=None)
                    .values(attempts=CrmSyncJob.attempts + 1)
                )
    for job, state, error in jobs:
        CRM_SYNC_JOBS.labels(job.kind, state).inc()
        if state == FAILED:
            log.warning(
                "CRM sync job failed for good", extra={"job_id": job.id, "kind": job.kind, "error": error}
            )


def _retry_later(contact_id: int, jobs: list[Job], error: dict[str, Any]) -> None:
    """Back to ``queued``: the failed job after its backoff, the rest of the batch behind it."""
    head = jobs[0]
    delay = backoff.equal_jitter(head.attempts, RETRY_BASE_SECONDS, settings.crm_retry_max_seconds)
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
