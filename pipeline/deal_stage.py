"""The deal's stage here, from what happened (domain/deal_stages.py): the same map the CRM's
pipeline follows. ``follow`` is called by the order step (in its transaction) and by the CRM sync
before it writes the lead's stage, so the two never disagree."""

from __future__ import annotations

from sqlalchemy import exists, func, select
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
    orders = dict(
        session.execute(
            select(Order.stage, func.count()).where(Order.contact_id == contact.id).group_by(Order.stage)
        ).all()
    )
    human = session.scalar(
        select(
            exists().where(
                OutboundMessage.contact_id == contact.id,
                OutboundMessage.trigger == HUMAN_REPLY,
                OutboundMessage.state == SENT,
            )
            | exists().where(Conversation.contact_id == contact.id, Conversation.first_responder == HUMAN)
        )
    )
    return deal_stages.Facts(
        human_replied=bool(human),
        lead_class=contact.lead_class,
        labels=tuple(active_labels(session, [contact.id]).get(contact.id, [])),
        qualifying_labels=deal_stages.names(settings.crm_qualified_labels),
        open_orders=orders.get("created", 0),
        paid_orders=sum(orders.get(stage, 0) for stage in PAID_STAGES),
        cancelled_orders=orders.get("cancelled", 0),
        opted_out=contact.opted_out_at is not None,
    )


def follow(session: Session, contact: Contact, deal: Deal | None) -> str:
    """The deal's stage now, written on the deal when what happened moves it: forward only (a
    stage a person set further on in Odoo stays), into ``lost``, and out of ``lost`` again."""
    stage = deal_stages.stage_of(facts(session, contact))
    if deal is None:
        return stage
    if deal_stages.moves(deal.stage, stage):
        deal.stage, deal.updated_at = stage, utcnow()
    return deal.stage
