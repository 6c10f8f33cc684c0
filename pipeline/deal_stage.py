"""The deal's stage here, from what happened (domain/deal_stages.py): the same map the CRM's
pipeline follows. ``follow`` is called by the order step (in its transaction) and by the CRM sync
before it writes the lead's stage, so the two never disagree."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from domain import deal_stages
from domain.replies import HUMAN, HUMAN_REPLY
from models import Contact, Conversation, Deal, Order, OutboundMessage
from models.base import utcnow
from models.labels import active_labels
from models.outbox import SENT
from settings import settings

PAID_STAGES = ("paid", "shipped", "received")


def facts(session: Session, contact: Contact) -> deal_stages.Facts:
    return facts_of(session, [contact])[contact.id]


def facts_of(
    session: Session, contacts: list[Contact], labels: dict[int, list[str]] | None = None
) -> dict[int, deal_stages.Facts]:
    """``facts`` of several contacts in a few queries (the CRM sync's batches); ``labels``: their
    active labels when the caller has read them already."""
    ids = [contact.id for contact in contacts]
    orders: dict[int, dict[str, int]] = {}
    for contact_id, stage, count in session.execute(
        select(Order.contact_id, Order.stage, func.count())
        .where(Order.contact_id.in_(ids))
        .group_by(Order.contact_id, Order.stage)
    ):
        orders.setdefault(contact_id, {})[stage] = count
    human = set(
        session.scalars(
            select(OutboundMessage.contact_id)
            .where(
                OutboundMessage.contact_id.in_(ids),
                OutboundMessage.trigger == HUMAN_REPLY,
                OutboundMessage.state == SENT,
            )
            .distinct()
        )
    ) | set(
        session.scalars(
            select(Conversation.contact_id)
            .where(Conversation.contact_id.in_(ids), Conversation.first_responder == HUMAN)
            .distinct()
        )
    )
    labels = active_labels(session, ids) if labels is None else labels
    qualifying = deal_stages.names(settings.crm_qualified_labels)
    result = {}
    for contact in contacts:
        stages = orders.get(contact.id, {})
        result[contact.id] = deal_stages.Facts(
            human_replied=contact.id in human,
            lead_class=contact.lead_class,
            labels=tuple(labels.get(contact.id, [])),
            qualifying_labels=qualifying,
            open_orders=stages.get("created", 0),
            paid_orders=sum(stages.get(stage, 0) for stage in PAID_STAGES),
            cancelled_orders=stages.get("cancelled", 0),
            opted_out=contact.opted_out_at is not None,
        )
    return result


def follow(session: Session, contact: Contact, deal: Deal | None) -> str:
    """The deal's stage now, written on the deal when what happened moves it: forward only (a
    stage a person set further on in Odoo stays), into ``lost``, and out of ``lost`` again."""
    return follow_facts(deal, facts(session, contact))


def follow_facts(deal: Deal | None, known: deal_stages.Facts) -> str:
    """``follow`` with the contact's facts read already."""
    stage = deal_stages.stage_of(known)
    if deal is None:
        return stage
    if deal_stages.moves(deal.stage, stage):
        deal.stage, deal.updated_at = stage, utcnow()
    return deal.stage
