"""Changes made in the CRM, brought back here: a salesperson or a stage moved in Odoo.

``apply_lead_change`` runs in the caller's transaction. It compares the lead as Odoo holds it with
what we last wrote to it (``crm_records.data``), so our own writes are never taken for a person's
change, and records what it takes over as what we last wrote: the next sync finds nothing to
write back (no ping-pong). A salesperson is an agent's login; one who is no agent here is left
out (the lead keeps them in Odoo). Each change is audited with the actor ``odoo``.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from domain import deal_stages
from integrations.crm import LeadChange
from models import CrmRecord, Deal
from models.base import utcnow
from models.routing import Agent, AuditEntry
from pipeline import locks
from settings import settings

ACTOR = "odoo"


def apply_lead_change(session: Session, crm_name: str, change: LeadChange) -> list[str]:
    """Take over what changed on the lead in the CRM; what was taken over, for the logs."""
    record = session.scalars(
        select(CrmRecord).where(
            CrmRecord.crm == crm_name, CrmRecord.model == "crm.lead", CrmRecord.remote_id == change.lead_id
        )
    ).first()
    if record is None or record.contact_id is None or not record.local_key.startswith("deal:"):
        return []  # not one of our leads
    contact = locks.contact(session, record.contact_id)
    if contact is None:
        return []
    session.refresh(record)
    data = dict(record.data or {})
    taken: list[str] = []
    if change.salesperson != data.get("salesperson") and change.salesperson != contact.assigned_agent:
        known = change.salesperson is None or session.scalar(
            select(Agent.id).where(Agent.login == change.salesperson)
        )
        if known:
            previous, contact.assigned_agent = contact.assigned_agent, change.salesperson
            _audit(
                session,
                "contact.assigned",
                f"contact:{contact.id}",
                change,
                agent=change.salesperson,
                previous=previous,
            )
            taken.append("salesperson")
    if change.salesperson != data.get("salesperson"):
        data["salesperson"] = change.salesperson
    milestone = milestone_of(change, data.get("stage"))
    deal = session.get(Deal, int(record.local_key.split(":", 1)[1]))
    if milestone is not None and milestone != data.get("stage") and deal is not None:
        previous, deal.stage, deal.updated_at = deal.stage, milestone, utcnow()
        _audit(session, "deal.stage_changed", f"deal:{deal.id}", change, stage=milestone, previous=previous)
        data["stage"] = milestone
        taken.append("stage")
    if data != (record.data or {}):
        record.data, record.updated_at = data, utcnow()
    return taken


def milestone_of(change: LeadChange, current: str | None) -> str | None:
    """The deal's milestone for the lead's stage in Odoo: won, lost, else the milestone the
    stage map gives that stage (the current one when several share it; the furthest otherwise);
    None for a stage the map does not name."""
    if change.won:
        return deal_stages.WON
    if change.lost:
        return deal_stages.LOST
    if not change.stage:
        return None
    mapping = deal_stages.parse_stage_map(settings.crm_stage_map)
    named = [m for m in deal_stages.MAPPED if mapping.get(m, "").casefold() == change.stage.casefold()]
    if not named:
        return None
    return current if current in named else named[-1]


def _audit(session: Session, action: str, subject: str, change: LeadChange, **details: object) -> None:
    session.add(
        AuditEntry(
            actor=ACTOR,
            action=action,
            subject=subject,
            details={**details, "crm": "odoo", "lead_id": change.lead_id, "changed_at": change.changed_at},
        )
    )
