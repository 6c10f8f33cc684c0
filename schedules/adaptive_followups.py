"""Beat fires due adaptive follow-ups (scheduled by workers/adaptive_followups.py).

Each tick claims due rows with ``FOR UPDATE SKIP LOCKED`` (two beats never take the same row)
and decides, under the contact's lock, whether the nudge still makes sense: not when the
customer answered, the conversation ended (thanks, goodbye, an order placed), automation is
paused for the contact, a human owns the conversation, the contact opted out, or the rules say
no more. Otherwise it goes to the outbox, unique per follow-up; outside the 24-hour window the
outbound worker sends the file's template instead of the text (or marks it blocked_window).
"""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from domain.automation_content import ADAPTIVE_FOLLOWUP
from models import AdaptiveFollowup, Contact, Conversation, Message, Order
from models.base import utcnow
from models.conversations import INBOUND
from models.db import session_scope
from models.routing import CANCELLED, HELD_OUT, PENDING, QUEUED
from observability.metrics import ADAPTIVE_FOLLOWUPS
from pipeline import adaptive_followups, channels, followup_effects, locks
from pipeline.routing import queue_automation_message
from queueing import names
from queueing.tasks import periodic_task

log = logging.getLogger(__name__)

BATCH = 200


@periodic_task(names.FIRE_DUE_ADAPTIVE_FOLLOWUPS)
def fire_due_adaptive_followups() -> int:
    """Queue (or cancel, with the reason) every due follow-up. Returns how many were queued."""
    with session_scope() as session:
        due = session.execute(
            select(AdaptiveFollowup.id, AdaptiveFollowup.contact_id)
            .where(AdaptiveFollowup.state == PENDING, AdaptiveFollowup.due_at <= utcnow())
            .order_by(AdaptiveFollowup.due_at)
            .limit(BATCH)
        ).all()
    queued = sum(_fire(followup_id, contact_id) for followup_id, contact_id in due)
    if queued:
        log.info("adaptive follow-ups queued", extra={"count": queued})
    return queued


def _fire(followup_id: int, contact_id: int) -> bool:
    """One follow-up in its own short transaction: the contact's lock first, as everywhere, then
    the row (SKIP LOCKED: another beat has it). True if it was queued."""
    with session_scope() as session:
        contact = locks.contact(session, contact_id)
        followup = session.scalars(
            select(AdaptiveFollowup)
            .where(AdaptiveFollowup.id == followup_id, AdaptiveFollowup.state == PENDING)
            .with_for_update(skip_locked=True)
        ).first()
        if followup is None:
            return False
        followup.updated_at = utcnow()
        reason = _why_not(session, followup, contact)
        if reason or contact is None:
            followup.state, followup.reason = CANCELLED, reason or "the contact is gone"
            ADAPTIVE_FOLLOWUPS.labels("cancelled").inc()
            return False
        if followup_effects.held_out(followup.id):
            followup.state, followup.reason = HELD_OUT, "held back: the silence nudges are compared with"
            ADAPTIVE_FOLLOWUPS.labels("held_out").inc()
            return False
        followup.outbound_id = queue_automation_message(
            session,
            contact,
            ADAPTIVE_FOLLOWUP,
            f"adaptive_followup:{followup.id}",
            channels.conversation_channel_id(session, followup.conversation_id),
        )
        followup.state = QUEUED
    ADAPTIVE_FOLLOWUPS.labels("queued").inc()
    return True


def _why_not(session: Session, followup: AdaptiveFollowup, contact: Contact | None) -> str | None:
    if contact is None:
        return "the contact is gone"
    conversation = session.get_one(Conversation, followup.conversation_id)
    # Stored after our question went out: the customer's timestamps have whole seconds only, so
    # when we stored their message says more than when they say they wrote it.
    if session.scalar(
        select(Message.id)
        .where(
            Message.contact_id == contact.id,
            Message.direction == INBOUND,
            Message.created_at > followup.asked_at,
        )
        .limit(1)
    ):
        return "the customer answered"
    if contact.last_outbound_at is not None and contact.last_outbound_at > followup.asked_at:
        return "a newer message of ours came after the question"  # that one has its own follow-up
    if conversation.closed_at is not None and conversation.closed_at >= followup.asked_at.replace(
        microsecond=0
    ):
        return f"the conversation ended: {conversation.closed_reason}"
    if contact.automation_paused_at is not None:
        return "automation is paused for this contact"
    if conversation.owner_agent:
        return f"{conversation.owner_agent} took over the conversation"
    if contact.opted_out_at is not None:
        return "the contact opted out"
    if session.scalar(
        select(Order.id).where(Order.contact_id == contact.id, Order.created_at > followup.asked_at).limit(1)
    ):
        return "the customer placed an order"
    rules = adaptive_followups.rules_for(session, contact.id)
    if not rules.enabled:
        return f"adaptive follow-ups are off ({rules.scope} rules)"
    if followup.attempt > rules.max_attempts:
        return f"at most {rules.max_attempts} follow-ups ({rules.scope} rules)"
    return None
