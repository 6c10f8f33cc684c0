"""CRM sync: the outbox of sync jobs, and which CRM record each local thing became.

``CrmSyncJob`` rows are written in the transaction of the change that needs syncing (a new
conversation, new messages, a label change, an order event, a fired follow-up), so a crash never
loses a sync. A job is unique on its cause (``dedupe_key``); jobs that only say "this contact's
lead or log is out of date" are coalesced instead: at most one such job per contact and kind
waits in ``queued``, however many changes arrive meanwhile.

``CrmRecord`` maps local things to the CRM's ids (``contact:12`` -> ``res.partner`` 7,
``deal:31`` -> ``crm.lead`` 40). A retry looks here first, so it never creates a second record.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy import text as sql
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, JSONType, utcnow
from models.types import BigId

# queued -> running (claimed, lease until ``lease_until``) -> done; or failed with its error.
# A transient failure puts the job back to queued with a later ``next_attempt_at``.
QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"

# What a job does (see workers/crm.py).
LEAD, LOG, NOTE, ACTIVITY = "lead", "log", "note", "activity"
# An order event: the order's sale order brought up to date, and the event noted on it.
ORDER = "order"
# A conversation waiting for a person past its respond-by time: the activity closed once answered.
ACTIVITY_DONE = "activity_done"


class CrmSyncJob(Base):
    __tablename__ = "crm_sync_jobs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    # Why it was queued ("new_conversation", "labels", "order.paid", ...): shown in the API.
    reason: Mapped[str] = mapped_column(String(64))
    # The cause, for jobs that must happen once per cause (an order event's note); None for
    # coalesced jobs.
    dedupe_key: Mapped[str | None] = mapped_column(String(255), unique=True)
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    state: Mapped[str] = mapped_column(String(16), default=QUEUED)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    lease_until: Mapped[datetime | None]
    # The CRM's last error, kept while the job waits for a retry and after it failed for good.
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    done_at: Mapped[datetime | None]

    __table_args__ = (
        # Coalescing looks here for a lead/log job already waiting. Not unique: a merge of two
        # contacts moves one's jobs onto the other, and a rare second waiting job is harmless
        # (both bring the same things up to date; the second finds nothing left to do).
        Index(
            "ix_crm_sync_jobs_waiting",
            "contact_id",
            "kind",
            postgresql_where=sql("state = 'queued' AND dedupe_key IS NULL"),
            sqlite_where=sql("state = 'queued' AND dedupe_key IS NULL"),
        ),
        # The worker's and the sweeper's scans: only unfinished jobs are indexed.
        Index(
            "ix_crm_sync_jobs_unfinished",
            "next_attempt_at",
            postgresql_where=sql("state IN ('queued', 'running')"),
            sqlite_where=sql("state IN ('queued', 'running')"),
        ),
    )


class CrmCursor(Base):
    """How far a stream read back from the CRM has been read ("odoo:crm.lead": the last
    ``write_date`` seen)."""

    __tablename__ = "crm_cursors"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class CrmRecord(Base):
    """One local thing and the CRM record it became. ``cursor`` is how far a stream of local
    items (a conversation's messages) has been copied to the record; ``data`` is what we last
    wrote that a person may also change (the tags we set), so we only ever undo our own."""

    __tablename__ = "crm_records"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    crm: Mapped[str] = mapped_column(String(16))  # "odoo"
    model: Mapped[str] = mapped_column(String(64))  # "res.partner", "crm.lead", ...
    local_key: Mapped[str] = mapped_column(String(128))  # "contact:12", "deal:31", "conversation:8"
    remote_id: Mapped[int] = mapped_column(BigInteger)
    # Whose record it is: the API shows a contact's records; a merge moves them to the survivor.
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"), index=True)
    cursor: Mapped[int | None] = mapped_column(BigInteger)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("crm", "model", "local_key"),)
