"""Setting a conversation's outcome (domain/outcomes.py says which may replace which).

Order events set ordered, paid and cancelled on the conversation the order came of; an opt-out
sets opted out on the conversation it was written in; the silence sweeper
(schedules/outcomes.py) sets went silent. Each runs under the contact's lock (the sweeper's one
UPDATE rechecks its condition row by row), so two events of one contact never race.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from domain import outcomes
from models import Conversation, Order


def apply(conversation: Conversation, outcome: str, at: datetime) -> bool:
    """Give the conversation this outcome if it outranks the one it has; whether it did."""
    if not outcomes.replaces(conversation.outcome, outcome):
        return False
    conversation.outcome, conversation.outcome_at = outcome, at
    return True


def customer_wrote(conversation: Conversation) -> None:
    """A new customer message: a conversation that had gone silent is open again."""
    if outcomes.reopens(conversation.outcome):
        conversation.outcome, conversation.outcome_at = None, None


def follow_order(session: Session, order: Order, occurred_at: datetime) -> None:
    """The order's state, as the outcome of the conversation it came of."""
    if order.conversation_id is None:
        return
    conversation = session.scalars(
        select(Conversation).where(Conversation.id == order.conversation_id).with_for_update()
    ).one()
    outcome = outcomes.of_order(order.stage, order.paid_at is not None)
    moments = {
        outcomes.CANCELLED: order.cancelled_at,
        outcomes.PAID: order.paid_at,
        outcomes.ORDERED: order.ordered_at,
    }
    apply(conversation, outcome, moments[outcome] or occurred_at)
