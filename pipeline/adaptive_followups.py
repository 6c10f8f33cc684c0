"""Adaptive follow-ups: when our message asked the customer something, a nudge is scheduled for
the moment their silence becomes unusual for them.

The delay is ADAPTIVE_FOLLOWUP_FACTOR times the customer's typical response time (learnt in
pipeline.context), bounded by the rules' minimum and maximum; a customer we know nothing about
gets the minimum. At most ``max_attempts`` nudges follow one another. The row waits in
``adaptive_followups``; beat fires it (schedules/adaptive_followups.py) and checks then whether
the customer answered, the conversation ended, or a person or a pause stopped automation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from domain import answer_hours, intent
from domain.automation_content import ADAPTIVE_FOLLOWUP
from domain.replies import MAY_AWAIT_ANSWER
from models import AdaptiveFollowup, Contact, Conversation, FollowupRules, Message, OutboundMessage
from settings import settings

DEFAULT_SCOPE = "default"


@dataclass(frozen=True)
class Rules:
    enabled: bool
    min_delay_seconds: float
    max_delay_seconds: float
    max_attempts: int
    scope: str  # which rules apply: "default", "contact:<id>", or "settings"


def contact_scope(contact_id: int) -> str:
    return f"contact:{contact_id}"


def rules_for(session: Session, contact_id: int | None) -> Rules:
    """The contact's own rules, else the default rules set through the API, else the settings."""
    scopes = [DEFAULT_SCOPE] if contact_id is None else [contact_scope(contact_id), DEFAULT_SCOPE]
    rows = {
        row.scope: row
        for row in session.scalars(select(FollowupRules).where(FollowupRules.scope.in_(scopes)))
    }
    for scope in scopes:
        if scope in rows:
            row = rows[scope]
            return Rules(row.enabled, row.min_delay_seconds, row.max_delay_seconds, row.max_attempts, scope)
    return Rules(
        enabled=settings.adaptive_followup_max_attempts > 0,
        min_delay_seconds=settings.adaptive_followup_min_seconds,
        max_delay_seconds=settings.adaptive_followup_max_seconds,
        max_attempts=settings.adaptive_followup_max_attempts,
        scope="settings",
    )


def delay_for(contact: Contact, rules: Rules) -> timedelta:
    typical = contact.typical_response_seconds
    wanted = rules.min_delay_seconds if typical is None else typical * settings.adaptive_followup_factor
    return timedelta(seconds=min(rules.max_delay_seconds, max(rules.min_delay_seconds, wanted)))


def due_at(contact: Contact, rules: Rules, asked_at: datetime, window_closes: datetime | None) -> datetime:
    """After the adaptive delay, at the first hour in which the customer usually writes, as long
    as that is inside the rules' maximum delay and the 24-hour window (a nudge after it would
    have to be a template)."""
    latest = asked_at + timedelta(seconds=rules.max_delay_seconds)
    if window_closes is not None:
        latest = min(latest, window_closes)
    return answer_hours.at_usual_hour(
        asked_at + delay_for(contact, rules),
        latest,
        answer_hours.usual_hours(contact.answer_hours),
        ZoneInfo(settings.timezone),
    )


def after_our_message(session: Session, contact: Contact, sent: OutboundMessage, message: Message) -> None:
    """Called when an outbox row went out as ``message``: schedule a nudge if it asked something."""
    if sent.trigger not in MAY_AWAIT_ANSWER or not intent.asks_question(sent.text):
        return
    attempt = 1
    if sent.trigger == ADAPTIVE_FOLLOWUP:
        previous = session.scalar(
            select(AdaptiveFollowup.attempt).where(AdaptiveFollowup.outbound_id == sent.id)
        )
        attempt = (previous or 0) + 1
    rules = rules_for(session, contact.id)
    if not rules.enabled or attempt > rules.max_attempts:
        return
    session.add(
        AdaptiveFollowup(
            contact_id=contact.id,
            conversation_id=message.conversation_id,
            after_message_id=message.id,
            asked_at=message.occurred_at,
            attempt=attempt,
            due_at=due_at(
                contact,
                rules,
                message.occurred_at,
                session.get_one(Conversation, message.conversation_id).window_expires_at,
            ),
            rules_scope=rules.scope,
        )
    )
