"""A contact's CRM sync, as ``GET /api/contacts/{id}`` shows it under ``crm``; and the CRM
itself, ``GET /api/crm``: the Odoo version the workers found, the protocol they speak, and
the fields and models that Odoo lacks (the sync going on without them).

``state`` sums it up: ``off`` (sync not configured and nothing synced), ``synced`` (nothing
waiting), ``pending`` (jobs waiting or running), ``retrying`` (a job waits for a retry after
the CRM failed, its error in ``errors``), ``failed`` (a job stopped for good: the CRM refused
it; its error in ``errors``). A failed lead or log job stops counting once a later job of the
same kind succeeded, since that one brought the same things up to date.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models import CrmRecord, CrmSyncJob
from models.crm import DONE, FAILED, LEAD, LOG, QUEUED, RUNNING, CrmCursor
from models.db import session_scope
from settings import settings

ERRORS_SHOWN = 20
# The rows of crm_cursors the sync worker writes (workers/crm.py _save_connection).
CONNECTION_ROW = "odoo:connection"
MISSING_PREFIX = "odoo:missing:"

router = APIRouter(prefix="/api", tags=["crm"])  # who may call: api/permissions.py


class CrmMissingOut(BaseModel):
    what: str  # "crm.lead.medium_id" (a field) or "utm.campaign" (a model)
    odoo_version: str  # the version that lacked it
    noticed_at: datetime
    message: str


class CrmStatusOut(BaseModel):
    crm: str
    enabled: bool  # ODOO_URL is set
    version: str | None  # as the workers last found it, "19.0"
    protocol: str | None  # jsonrpc | json2
    connected_at: datetime | None
    missing: list[CrmMissingOut]


@router.get("/crm", response_model=CrmStatusOut)
def crm_status() -> CrmStatusOut:
    """How the workers found Odoo. No URL, login or key is shown."""
    with session_scope() as session:
        rows = session.scalars(
            select(CrmCursor).where(
                (CrmCursor.name == CONNECTION_ROW) | CrmCursor.name.startswith(MISSING_PREFIX)
            )
        ).all()
    connection = next((row for row in rows if row.name == CONNECTION_ROW), None)
    version, _, protocol = (connection.value if connection else "").partition(" ")
    missing = []
    for row in sorted((r for r in rows if r.name != CONNECTION_ROW), key=lambda r: r.name):
        model, _, field = row.name[len(MISSING_PREFIX) :].partition(":")
        kind = f"no field {field!r} on {model}" if field else f"no model {model}"
        missing.append(
            CrmMissingOut(
                what=f"{model}.{field}" if field else model,
                odoo_version=row.value,
                noticed_at=row.updated_at,
                message=f"the connected Odoo {row.value} has {kind}: the sync goes on without it",
            )
        )
    return CrmStatusOut(
        crm="odoo",
        enabled=bool(settings.odoo_url),
        version=version or None,
        protocol=protocol or None,
        connected_at=connection.updated_at if connection else None,
        missing=missing,
    )


class CrmJobOut(BaseModel):
    id: int
    kind: str  # lead | log | note | activity
    reason: str  # what queued it: new_conversation, labels, messages, order.paid, ...
    state: str  # queued | running | done | failed
    attempts: int
    error: dict[str, Any] | None
    next_attempt_at: datetime
    updated_at: datetime


class CrmSyncOut(BaseModel):
    crm: str
    state: str  # off | synced | pending | retrying | failed
    partner_id: int | None
    lead_ids: list[int]
    sale_order_ids: list[int]
    pending: int
    last_synced_at: datetime | None
    errors: list[CrmJobOut]


def crm_sync(session: Session, contact_id: int) -> CrmSyncOut:
    records = session.scalars(
        select(CrmRecord).where(CrmRecord.contact_id == contact_id).order_by(CrmRecord.id)
    ).all()
    jobs = session.scalars(
        select(CrmSyncJob)
        .where(CrmSyncJob.contact_id == contact_id, CrmSyncJob.state != DONE)
        .order_by(CrmSyncJob.id)
    ).all()
    done = session.execute(
        select(CrmSyncJob.kind, func.max(CrmSyncJob.id), func.max(CrmSyncJob.done_at))
        .where(CrmSyncJob.contact_id == contact_id, CrmSyncJob.state == DONE)
        .group_by(CrmSyncJob.kind)
    ).all()
    last_done = {kind: job_id for kind, job_id, _ in done}
    failed = [
        job
        for job in jobs
        if job.state == FAILED and not (job.kind in (LEAD, LOG) and last_done.get(job.kind, 0) > job.id)
    ]
    waiting = [job for job in jobs if job.state in (QUEUED, RUNNING)]
    retrying = [job for job in waiting if job.error]
    if failed:
        state = "failed"
    elif retrying:
        state = "retrying"
    elif waiting:
        state = "pending"
    else:
        state = "synced" if settings.odoo_url or records else "off"
    partners = [r.remote_id for r in records if r.model == "res.partner"]
    done_times = [done_at for _, _, done_at in done if done_at is not None]
    return CrmSyncOut(
        crm=records[0].crm if records else "odoo",
        state=state,
        partner_id=partners[-1] if partners else None,
        lead_ids=sorted({r.remote_id for r in records if r.model == "crm.lead"}),
        sale_order_ids=sorted({r.remote_id for r in records if r.model == "sale.order"}),
        pending=len(waiting),
        last_synced_at=max(done_times, default=None),
        errors=[
            CrmJobOut.model_validate(job, from_attributes=True)
            for job in [*failed, *retrying][-ERRORS_SHOWN:]
        ],
    )
